//! The two AEAD backends behind `CryptoProvider` (ring, the default, and
//! RustCrypto) produce identical SRTP and SRTCP packets for both profiles and
//! open each other's output, so either can stand in for the other.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::crypto::{CryptoProvider, RingProvider, RustCryptoProvider};
use cryptic_dtls_srtp::rtp::RtpHeader;
use cryptic_dtls_srtp::srtp::{Config, MasterKey, Profile, SrtpContext};

fn context(profile: Profile, provider: &dyn CryptoProvider) -> SrtpContext {
    let key = vec![0x11; profile.master_key_len()];
    let master = MasterKey::new(profile, &key, &[0x22; 12]).unwrap();
    SrtpContext::with_provider(&master, Config::default(), provider).unwrap()
}

#[test]
fn ring_and_rustcrypto_seal_identical_bytes_and_open_each_other() {
    for profile in [Profile::AeadAes128Gcm, Profile::CrypticChaCha20Poly1305] {
        let mut ring_tx = context(profile, &RingProvider);
        let mut rc_tx = context(profile, &RustCryptoProvider);
        let mut ring_rx = context(profile, &RingProvider);
        let mut rc_rx = context(profile, &RustCryptoProvider);
        for (seq, size) in [(1u16, 0usize), (2, 1), (3, 80), (4, 160), (5, 1200)] {
            let payload = vec![seq as u8; size];
            let mut plain = vec![0u8; 12 + size];
            RtpHeader::new(111, seq, 0, 9)
                .write_packet(&payload, 0, &mut plain)
                .unwrap();
            let mut a = vec![0u8; plain.len() + 16];
            let mut b = vec![0u8; plain.len() + 16];
            ring_tx.protect_rtp(&plain, &mut a).unwrap();
            rc_tx.protect_rtp(&plain, &mut b).unwrap();
            assert_eq!(a, b, "{profile:?} size {size}");
            let mut out = vec![0u8; a.len()];
            assert_eq!(rc_rx.unprotect_rtp(&a, &mut out).unwrap(), plain.len());
            assert_eq!(ring_rx.unprotect_rtp(&b, &mut out).unwrap(), plain.len());
            assert_eq!(out[..plain.len()], plain[..]);

            let rtcp = [0x80, 201, 0, 1, 0, 0, 0, 9];
            let mut a = [0u8; 28];
            let mut b = [0u8; 28];
            ring_tx.protect_rtcp(&rtcp, &mut a).unwrap();
            rc_tx.protect_rtcp(&rtcp, &mut b).unwrap();
            assert_eq!(a, b);
            let mut out = [0u8; 28];
            assert_eq!(rc_rx.unprotect_rtcp(&a, &mut out).unwrap(), 8);
        }
    }
}
