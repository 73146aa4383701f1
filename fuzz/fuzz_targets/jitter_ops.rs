#![no_main]
//! Arbitrary sequences of packet inserts (sequence, timestamp, arrival,
//! payload length, SSRC) and polls: no panic, bounded memory.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_jitter::fuzzing::jitter_ops(data);
});
