#![no_main]
//! The bytes of a TURN stream (TCP or TLS) split into STUN and padded
//! ChannelData messages: never panics, bounded memory, whole messages only.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_ice::fuzzing::turn_stream(data);
});
