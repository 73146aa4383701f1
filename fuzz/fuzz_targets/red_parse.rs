#![no_main]
//! `red_parse`: arbitrary bytes as a redundant-audio (RFC 2198) payload
//! must never panic, and what parses must write back the same.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_audio::fuzzing::red_parse(data);
});
