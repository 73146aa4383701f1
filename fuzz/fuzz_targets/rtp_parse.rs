#![no_main]
//! `rtp_parse`: arbitrary bytes must never panic, hang or corrupt state.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_dtls_srtp::fuzzing::rtp_parse(data);
});
