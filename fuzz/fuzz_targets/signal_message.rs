#![no_main]
//! Placeholder until its issue lands.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
