#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hako_fuzz::runtime_config(data));
