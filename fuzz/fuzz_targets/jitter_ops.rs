#![no_main]
//! Placeholder until the jitter buffer lands.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
