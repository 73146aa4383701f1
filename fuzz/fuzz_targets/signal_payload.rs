#![no_main]
//! The sealed payload parser (what a peer's opened `encrypted_payload` or
//! `encrypted_candidate` holds): never panics, and whatever parses
//! round-trips.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_signal::fuzzing::payload(data);
});
