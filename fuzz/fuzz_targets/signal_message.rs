#![no_main]
//! The signaling message parser (JSON text frames and binary relay frames):
//! never panics, and whatever parses round-trips.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_signal::fuzzing::message(data);
});
