#![no_main]
//! STUN messages (with and without integrity), TURN ChannelData and RFC 8839
//! candidate strings from arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_ice::fuzzing::stun_parse(data);
});
