#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hako_fuzz::targets::image_spec(data));
