//! The version-2 key schedule against values computed independently from
//! its written description (`tests/vectors/callkey_v2.py`, Python's
//! `cryptography` package): the fixed vectors below are that script's
//! output, and the test also runs the script and compares line by line.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::process::Command;

use cryptic_signal::callkey::{self, EphemeralSecret, Side};
use cryptic_signal::payload::{AudioCodec, CertFingerprint, Contribution, SrtpProfile};
use cryptic_signal::wire::{CallId, UserId};
use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every value of the schedule, as `name hex` lines (the script's format).
fn ours() -> String {
    let call_id = CallId::from_bytes([
        0x0f, 0x8f, 0xad, 0x5b, 0xd9, 0xcb, 0x46, 0x9f, 0xa1, 0x65, 0x70, 0x86, 0x77, 0x28, 0x95,
        0x0e,
    ]);
    let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
    let (sa, sb) = (
        EphemeralSecret::from_bytes([0x11; 32]),
        EphemeralSecret::from_bytes([0x22; 32]),
    );
    let fp_a: [u8; 32] = std::array::from_fn(|i| i as u8);
    let fp_b: [u8; 32] = std::array::from_fn(|i| 0xff - i as u8);
    let ca = Contribution::new(sa.public_key(), [0x33; 32], CertFingerprint(fp_a));
    let cb = Contribution::new(sb.public_key(), [0x44; 32], CertFingerprint(fp_b));
    let commitment = callkey::commitment(&call_id, &ca);
    let aes_first = [
        SrtpProfile::AeadAes128Gcm,
        SrtpProfile::CrypticChaCha20Poly1305,
    ];
    let chacha_first = [
        SrtpProfile::CrypticChaCha20Poly1305,
        SrtpProfile::AeadAes128Gcm,
    ];
    let caller = Side {
        user: &alice,
        identity_key: [0xa1; 32],
        contribution: &ca,
        profiles: &aes_first,
        codecs: &[AudioCodec::Opus],
    };
    let callee = Side {
        user: &bob,
        identity_key: [0xb1; 32],
        contribution: &cb,
        profiles: &chacha_first,
        codecs: &[AudioCodec::Opus],
    };
    let t = callkey::transcript(&call_id, &commitment, &caller, &callee);
    let k = sa.call_key(&cb.ephemeral_key.0, &t).unwrap();
    // The callee derives the same key from its side of the exchange.
    assert_eq!(sb.call_key(&ca.ephemeral_key.0, &t).unwrap(), k);
    let exported: Vec<u8> = (0..56).collect();
    let srtp = k.bind_srtp(&exported, SrtpProfile::AeadAes128Gcm);
    [
        ("caller_public", hex(&sa.public_key())),
        ("callee_public", hex(&sb.public_key())),
        ("commitment", hex(&commitment)),
        ("transcript_sha256", hex(&Sha256::digest(&t))),
        ("k_call", hex(k.as_bytes())),
        ("sas", k.sas().replace(' ', "")),
        ("srtp_aes128gcm", hex(&srtp)),
    ]
    .iter()
    .map(|(n, v)| format!("{n} {v}\n"))
    .collect()
}

const VECTORS: &str = "\
caller_public 7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13
callee_public 0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20
commitment 87b742f6e014f5bfbbc429a1e2073643ac1708fd12fa6d9d470f71bf5fb94cd9
transcript_sha256 0c78ec83663102f6b3976e45dd1a45982595b1ce7b9f2639d313880afe5b6a28
k_call 8e8f1b35c09669543cc3d3423efd8b87be2cb78062788de2f5170460038215ef
sas 663826
srtp_aes128gcm a91ca3d63484848445bad4d2845c4a0e993a057e739a7c2be50e5ecd7d4e771c55fe21a74845c9905f604840aed5960b767a5f6ed7f7fcf2
";

#[test]
fn the_key_schedule_matches_the_published_vectors() {
    assert_eq!(ours(), VECTORS);
}

#[test]
fn the_key_schedule_matches_an_independent_python_implementation() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/callkey_v2.py");
    let out = match Command::new("python3").arg(script).output() {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        Ok(o) => {
            cryptic_tests::skip(format!(
                "python3 with the cryptography package is needed (Debian python3-cryptography): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return;
        }
        Err(e) => {
            cryptic_tests::skip(format!("python3 is needed: {e}"));
            return;
        }
    };
    assert_eq!(ours(), out);
}
