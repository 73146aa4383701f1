#![no_main]
//! `dtls_handshake`: arbitrary datagrams interleaved with a real handshake
//! between two of our peers must never panic or hang it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cryptic_dtls_srtp::fuzzing::dtls_handshake(data);
});
