#![no_main]
//! `srtp_unprotect`: arbitrary bytes must never panic, hang or corrupt state.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_dtls_srtp::fuzzing::srtp_unprotect(data);
});
