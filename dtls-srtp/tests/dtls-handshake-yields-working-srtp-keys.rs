//! Two peers complete the DTLS-SRTP handshake over an in-memory pipe, each
//! checking the other's fingerprint, and the keys they export drive SRTP
//! contexts that understand each other, for both SRTP profiles.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::handshake::pipe::{Impairment, MemoryTransport};
use cryptic_dtls_srtp::handshake::{handshake, HandshakeConfig, Identity, Role};
use cryptic_dtls_srtp::rtp::RtpHeader;
use cryptic_dtls_srtp::srtp::{Config, Profile, SrtpContext};
use cryptic_dtls_srtp::Fingerprint;

fn rtp(seq: u16) -> Vec<u8> {
    let mut out = vec![0u8; 12 + 80];
    RtpHeader::new(111, seq, 960, 7)
        .write_packet(&[0x33; 80], 0, &mut out)
        .unwrap();
    out
}

fn assert_understand(tx: &mut SrtpContext, rx: &mut SrtpContext, seq: u16) {
    let plain = rtp(seq);
    let mut wire = [0u8; 256];
    let n = tx.protect_rtp(&plain, &mut wire).unwrap();
    let mut out = [0u8; 256];
    let m = rx.unprotect_rtp(&wire[..n], &mut out).unwrap();
    assert_eq!(out[..m], plain[..]);
}

#[tokio::test(start_paused = true)]
async fn both_roles_derive_keys_that_work_in_both_directions_for_both_profiles() {
    for profile in [Profile::AeadAes128Gcm, Profile::CrypticChaCha20Poly1305] {
        let (a, b) = MemoryTransport::pair(Impairment::none(), Impairment::none());
        let caller = Identity::generate().unwrap();
        let callee = Identity::generate().unwrap();
        let (server, client) = tokio::join!(
            handshake(
                a,
                &caller,
                callee.fingerprint(),
                HandshakeConfig::new(Role::Server).with_profile(profile)
            ),
            handshake(
                b,
                &callee,
                caller.fingerprint(),
                HandshakeConfig::new(Role::Client).with_profile(profile)
            ),
        );
        let (server, client) = (server.unwrap(), client.unwrap());
        assert_eq!(server.peer_fingerprint(), callee.fingerprint());
        assert_eq!(client.peer_fingerprint(), caller.fingerprint());
        assert_eq!(server.srtp_keys().profile, profile);

        let (mut s_out, mut s_in) = server.srtp_keys().contexts(Config::default()).unwrap();
        let (mut c_out, mut c_in) = client.srtp_keys().contexts(Config::default()).unwrap();
        assert_understand(&mut c_out, &mut s_in, 1);
        assert_understand(&mut s_out, &mut c_in, 1);
        // The two directions use different keys: a packet reflected back to
        // its sender does not authenticate.
        let mut wire = [0u8; 256];
        let n = c_out.protect_rtp(&rtp(2), &mut wire).unwrap();
        let mut out = [0u8; 256];
        assert!(c_in.unprotect_rtp(&wire[..n], &mut out).is_err());
        server.close().await;
        client.close().await;
    }
}

#[tokio::test(start_paused = true)]
async fn fingerprints_travel_as_strings_and_come_back_equal() {
    let id = Identity::generate().unwrap();
    let text = id.fingerprint().to_string();
    assert!(text.starts_with("sha-256 "));
    assert_eq!(text.parse::<Fingerprint>().unwrap(), id.fingerprint());
    assert_eq!(Fingerprint::of_der(id.certificate_der()), id.fingerprint());
    // Every call gets a fresh certificate.
    assert_ne!(
        Identity::generate().unwrap().fingerprint(),
        id.fingerprint()
    );
}
