#![no_main]
//! `rtcp_parse`: arbitrary bytes must never panic, hang or corrupt state.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_dtls_srtp::fuzzing::rtcp_parse(data);
});
