//! A man in the middle that completes DTLS with each side using its own
//! certificate (as a server or relay substituting keys would) makes both
//! sides fail with `FingerprintMismatch`, and neither releases a key.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::handshake::pipe::{Impairment, MemoryTransport};
use cryptic_dtls_srtp::handshake::{handshake, HandshakeConfig, Identity, Role};
use cryptic_dtls_srtp::{Error, Fingerprint};

#[tokio::test(start_paused = true)]
async fn a_relay_terminating_dtls_with_its_own_certificates_is_caught_by_both_sides() {
    let caller = Identity::generate().unwrap();
    let callee = Identity::generate().unwrap();
    let mitm_toward_caller = Identity::generate().unwrap();
    let mitm_toward_callee = Identity::generate().unwrap();

    // caller (server) <-> mitm (client) ... mitm (server) <-> callee (client)
    let (caller_end, mitm_end_1) = MemoryTransport::pair(Impairment::none(), Impairment::none());
    let (mitm_end_2, callee_end) = MemoryTransport::pair(Impairment::none(), Impairment::none());

    let (caller_result, callee_result, mitm_1, mitm_2) = tokio::join!(
        // Each honest side expects the other's fingerprint, as signaled end
        // to end.
        handshake(
            caller_end,
            &caller,
            callee.fingerprint(),
            HandshakeConfig::new(Role::Server)
        ),
        handshake(
            callee_end,
            &callee,
            caller.fingerprint(),
            HandshakeConfig::new(Role::Client)
        ),
        // The attacker knows the real fingerprints (the server sees no
        // payloads, but assume the worst) and accepts anyone.
        handshake(
            mitm_end_1,
            &mitm_toward_caller,
            caller.fingerprint(),
            HandshakeConfig::new(Role::Client)
        ),
        handshake(
            mitm_end_2,
            &mitm_toward_callee,
            callee.fingerprint(),
            HandshakeConfig::new(Role::Server)
        ),
    );
    assert_eq!(caller_result.unwrap_err(), Error::FingerprintMismatch);
    assert_eq!(callee_result.unwrap_err(), Error::FingerprintMismatch);
    // The attacker's own handshakes fail too: the honest sides abort.
    assert!(mitm_1.is_err());
    assert!(mitm_2.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_peer_with_a_different_certificate_than_signaled_is_refused() {
    let a = Identity::generate().unwrap();
    let b = Identity::generate().unwrap();
    let wrong: Fingerprint = Identity::generate().unwrap().fingerprint();
    let (ta, tb) = MemoryTransport::pair(Impairment::none(), Impairment::none());
    let (ra, rb) = tokio::join!(
        handshake(ta, &a, wrong, HandshakeConfig::new(Role::Server)),
        handshake(tb, &b, a.fingerprint(), HandshakeConfig::new(Role::Client)),
    );
    assert_eq!(ra.unwrap_err(), Error::FingerprintMismatch);
    assert!(rb.is_err());
}
