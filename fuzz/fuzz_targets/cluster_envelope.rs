#![no_main]
//! The envelopes between cluster nodes (read from Redis pub/sub): never
//! panics, and whatever parses encodes back to the same bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_signal::fuzzing::cluster_envelope(data);
});
