//! The AEAD_AES_128_GCM test vectors of RFC 7714 sections 16.1 and 17.1/17.3,
//! byte for byte. The vectors give session keys directly, so they enter
//! through `SrtpContext::with_session_keys`; the key derivation is checked
//! against RFC 3711 appendix B.3 in the crate's unit tests and against
//! libsrtp in `tests/tests/srtp-interop-libsrtp.rs`.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::crypto::RingProvider;
use cryptic_dtls_srtp::srtp::{Config, Profile, SrtpContext};
use cryptic_dtls_srtp::Error;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const KEY: &str = "000102030405060708090a0b0c0d0e0f";
/// "Quid pro quo"
const SALT: &str = "517569642070726f2071756f";

const RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f
                   6d6e6973 20646976 69736120 696e2070 61727465 73207472 6573";
const SRTP: &str = "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c
                    9d7e4bca be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf
                    8833899d 7f27beb1 6a9152cf 765ee439 0cce";

const RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a
                    0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";
const SRTCP_ENCRYPTED: &str = "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99
                               7ff5c0f7 6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded
                               0bb9275b c84aa458 96cf4d2f c5abf872 45d9eade 800005d4";
const SRTCP_AUTH_ONLY: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a
                               0000e930 4c756e61 deadbeef deadbeef deadbeef deadbeef
                               deadbeef 841dd968 3dd78ec9 2ae58790 125f62b3 000005d4";

fn context(config: Config) -> SrtpContext {
    let (key, salt) = (hex(KEY), hex(SALT));
    SrtpContext::with_session_keys(
        Profile::AeadAes128Gcm,
        (&key, &salt),
        (&key, &salt),
        config,
        &RingProvider,
    )
    .unwrap()
}

#[test]
fn section_16_1_1_srtp_encryption_matches_byte_for_byte() {
    let mut out = [0u8; 128];
    let n = context(Config::default())
        .protect_rtp(&hex(RTP), &mut out)
        .unwrap();
    assert_eq!(out[..n], hex(SRTP)[..]);
}

#[test]
fn section_16_1_2_srtp_decryption_recovers_the_packet_once() {
    let mut rx = context(Config::default());
    let mut out = [0u8; 128];
    let n = rx.unprotect_rtp(&hex(SRTP), &mut out).unwrap();
    assert_eq!(out[..n], hex(RTP)[..]);
    assert_eq!(
        rx.unprotect_rtp(&hex(SRTP), &mut out),
        Err(Error::Replayed { index: 0xf17b })
    );
}

#[test]
fn section_17_1_srtcp_encryption_matches_byte_for_byte() {
    let mut tx = context(Config::default());
    tx.set_next_srtcp_index(0x4d61_7273, 0x5d4).unwrap();
    let mut out = [0u8; 128];
    let n = tx.protect_rtcp(&hex(RTCP), &mut out).unwrap();
    assert_eq!(out[..n], hex(SRTCP_ENCRYPTED)[..]);
}

#[test]
fn section_17_1_srtcp_decryption_recovers_the_compound() {
    let mut rx = context(Config::default());
    let mut out = [0u8; 128];
    let n = rx.unprotect_rtcp(&hex(SRTCP_ENCRYPTED), &mut out).unwrap();
    assert_eq!(out[..n], hex(RTCP)[..]);
    assert_eq!(
        rx.unprotect_rtcp(&hex(SRTCP_ENCRYPTED), &mut out),
        Err(Error::Replayed { index: 0x5d4 })
    );
}

#[test]
fn section_17_3_srtcp_authentication_only_matches_byte_for_byte() {
    let mut tx = context(Config::default().with_rtcp_encryption(false));
    tx.set_next_srtcp_index(0x4d61_7273, 0x5d4).unwrap();
    let mut out = [0u8; 128];
    let n = tx.protect_rtcp(&hex(RTCP), &mut out).unwrap();
    assert_eq!(out[..n], hex(SRTCP_AUTH_ONLY)[..]);

    let mut rx = context(Config::default());
    let mut plain = [0u8; 128];
    let m = rx.unprotect_rtcp(&out[..n], &mut plain).unwrap();
    assert_eq!(plain[..m], hex(RTCP)[..]);
}

#[test]
fn section_17_3_tampering_the_cleartext_body_fails_authentication() {
    let mut wire = hex(SRTCP_AUTH_ONLY);
    wire[20] ^= 0x01;
    let mut out = [0u8; 128];
    assert_eq!(
        context(Config::default()).unprotect_rtcp(&wire, &mut out),
        Err(Error::AuthenticationFailed)
    );
}
