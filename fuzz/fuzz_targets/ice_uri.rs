#![no_main]
//! The STUN/TURN server URIs of `welcome` (credentials percent-encoded):
//! never panics, and whatever parses round-trips.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_signal::fuzzing::ice_uri(data);
});
