#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hako_fuzz::targets::api_request(data));
