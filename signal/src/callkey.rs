//! The per-call key and the short authentication string (SAS).
//!
//! # Version 2 (what calls use)
//!
//! Commit, answer, reveal, then a key from a fresh X25519 exchange bound to
//! a transcript of everything both sides said. Neither side can choose its
//! values after seeing the other's, so a server in the middle cannot grind
//! for a SAS that both users will read alike. `||` is concatenation; `lp(x)`
//! is `x`'s length as 4 bytes big-endian, then `x`.
//!
//! ```text
//! commitment = SHA-256("cryptic_call_commit_v2" || call_id (16 raw bytes)
//!                      || caller's ephemeral X25519 public key (32)
//!                      || caller's call_nonce (32) || caller's DTLS fingerprint (32 raw bytes))
//!
//! transcript = "cryptic_transcript_v2"
//!              || lp(call_id) || lp(caller user id) || lp(callee user id)
//!              || lp(caller identity key) || lp(callee identity key)      (Curve25519, 32 each)
//!              || lp(commitment)
//!              || lp(caller nonce) || lp(callee nonce)
//!              || lp(caller ephemeral) || lp(callee ephemeral)
//!              || lp(caller fingerprint) || lp(callee fingerprint)
//!              || lp(caller's SRTP profile names joined by ",") || lp(callee's ...)
//!              || lp(caller's codec names joined by ",") || lp(callee's ...)
//!
//! K_call     = HKDF-SHA256(ikm = X25519(own ephemeral secret, peer's ephemeral public),
//!                          salt = SHA-256(transcript), info = "cryptic_audio_call_v2", L = 32)
//! SAS        = HKDF-Expand-SHA256(PRK = K_call, info = "cryptic_sas_v2", L = 4),
//!              big-endian u32 mod 1,000,000, six digits "123 456"
//! SRTP keys  = HKDF-SHA256(ikm = DTLS-SRTP exporter output, salt = K_call,
//!                          info = "cryptic_srtp_v2" || profile name, L = exporter length),
//!              split as the exporter output is (RFC 5764 section 4.2)
//! ```
//!
//! An X25519 result of all zeros (a low-order public key) is refused.
//!
//! # Version 1 (broken, kept to document the weakness)
//!
//! The callee chose its nonce after reading the caller's, so a server
//! holding both end-to-end sessions could grind nonces until both SAS
//! matched. [`CallKey::derive`] is kept only for the test that shows it.
//!
//! ```text
//! K_call = HKDF-SHA256(salt = call_id as its 36-byte lowercase hyphenated UUID text,
//!                      ikm  = caller's call_nonce (32 bytes) || callee's call_nonce (32 bytes),
//!                      info = "cryptic_audio_call_v1", L = 32)
//!
//! SAS    = HKDF-Expand-SHA256(PRK = K_call,
//!                             info = "cryptic_sas_v1" || 0x00 || F_caller || 0x00 || F_callee,
//!                             L = 4)
//!          read as a big-endian u32, modulo 1,000,000, printed as six decimal
//!          digits with leading zeros, grouped "123 456".
//! ```
//!
//! `F_caller` and `F_callee` are the caller's and the callee's DTLS
//! certificate fingerprints in canonical form, as ASCII: `sha-256 ` followed
//! by the 32 digest bytes as uppercase hex pairs joined by `:` (see
//! [`canonical_fingerprint`]); the order is by role, never by who computes.
//! Both sides therefore display the same string exactly when they agree on
//! both nonces (which only travel sealed) and on both certificates.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::payload::{AudioCodec, CallNonce, Contribution, SrtpProfile};
use crate::wire::{CallId, UserId};
use crate::Error;

/// Prefix of the commitment hash (version 2).
pub const COMMIT_LABEL: &[u8] = b"cryptic_call_commit_v2";
/// Prefix of the transcript (version 2).
pub const TRANSCRIPT_LABEL: &[u8] = b"cryptic_transcript_v2";
/// HKDF info of the version-2 call key.
pub const CALL_KEY_INFO_V2: &[u8] = b"cryptic_audio_call_v2";
/// HKDF info of the version-2 SAS.
pub const SAS_INFO_V2: &[u8] = b"cryptic_sas_v2";
/// Prefix of the HKDF info that binds SRTP keys to the call key.
pub const SRTP_INFO_V2: &[u8] = b"cryptic_srtp_v2";

/// The commitment the invite carries to the caller's contribution.
pub fn commitment(call_id: &CallId, caller: &Contribution) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMIT_LABEL);
    h.update(call_id.as_bytes());
    h.update(caller.ephemeral_key.0);
    h.update(caller.call_nonce.0);
    h.update(caller.dtls_fingerprint.0);
    h.finalize().into()
}

/// One side of a call as the transcript records it.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// The user.
    pub user: &'a UserId,
    /// Its long-term Curve25519 identity key.
    pub identity_key: [u8; 32],
    /// Its contribution.
    pub contribution: &'a Contribution,
    /// The SRTP profiles it offered, in its order.
    pub profiles: &'a [SrtpProfile],
    /// The codecs it offered, in its order.
    pub codecs: &'a [AudioCodec],
}

/// Everything both sides said, in the fixed encoding of the module docs.
pub fn transcript(
    call_id: &CallId,
    commitment: &[u8; 32],
    caller: &Side<'_>,
    callee: &Side<'_>,
) -> Vec<u8> {
    fn lp(out: &mut Vec<u8>, x: &[u8]) {
        // Every field is far below 4 GiB.
        out.extend_from_slice(&(x.len() as u32).to_be_bytes());
        out.extend_from_slice(x);
    }
    let names = |p: &[SrtpProfile]| p.iter().map(|p| p.name()).collect::<Vec<_>>().join(",");
    let codecs = |c: &[AudioCodec]| c.iter().map(|c| c.name()).collect::<Vec<_>>().join(",");
    let mut t = TRANSCRIPT_LABEL.to_vec();
    lp(&mut t, call_id.as_bytes());
    lp(&mut t, caller.user.as_str().as_bytes());
    lp(&mut t, callee.user.as_str().as_bytes());
    lp(&mut t, &caller.identity_key);
    lp(&mut t, &callee.identity_key);
    lp(&mut t, commitment);
    lp(&mut t, &caller.contribution.call_nonce.0);
    lp(&mut t, &callee.contribution.call_nonce.0);
    lp(&mut t, &caller.contribution.ephemeral_key.0);
    lp(&mut t, &callee.contribution.ephemeral_key.0);
    lp(&mut t, &caller.contribution.dtls_fingerprint.0);
    lp(&mut t, &callee.contribution.dtls_fingerprint.0);
    lp(&mut t, names(caller.profiles).as_bytes());
    lp(&mut t, names(callee.profiles).as_bytes());
    lp(&mut t, codecs(caller.codecs).as_bytes());
    lp(&mut t, codecs(callee.codecs).as_bytes());
    t
}

/// An ephemeral X25519 secret for one call; wiped on drop.
pub struct EphemeralSecret(x25519_dalek::StaticSecret);

impl std::fmt::Debug for EphemeralSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EphemeralSecret(..)")
    }
}

impl EphemeralSecret {
    /// A secret from 32 random bytes (drawn by the caller's generator).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(x25519_dalek::StaticSecret::from(bytes))
    }

    /// The public key to send.
    pub fn public_key(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.0).to_bytes()
    }

    /// K_call from our secret, the peer's public key and the transcript
    /// (see the module docs). Fails on a low-order peer key.
    pub fn call_key(&self, peer_public: &[u8; 32], transcript: &[u8]) -> Result<CallKey, Error> {
        Ok(CallKey::from_shared(
            &*self.shared_secret(peer_public)?,
            transcript,
        ))
    }

    /// The X25519 result with the peer's public key. Fails on a low-order
    /// peer key (an all-zero result).
    pub fn shared_secret(&self, peer_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
        let shared = self
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(*peer_public));
        if !shared.was_contributory() {
            return Err(Error::BadPayload(
                "the peer's ephemeral key is of low order".into(),
            ));
        }
        Ok(Zeroizing::new(*shared.as_bytes()))
    }
}

/// HKDF info of the call key.
pub const CALL_KEY_INFO: &[u8] = b"cryptic_audio_call_v1";
/// Prefix of the SAS HKDF info.
pub const SAS_INFO: &[u8] = b"cryptic_sas_v1";

/// The 32-byte per-call key; wiped on drop, never sent.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CallKey([u8; 32]);

impl std::fmt::Debug for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallKey(..)")
    }
}

impl CallKey {
    /// K_call from an X25519 result and the transcript (see the module
    /// docs).
    pub fn from_shared(shared: &[u8; 32], transcript: &[u8]) -> Self {
        let salt: [u8; 32] = Sha256::digest(transcript).into();
        let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
        let mut k = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        let _ = hk.expand(CALL_KEY_INFO_V2, &mut k);
        Self(k)
    }

    /// Derives K_call (see the module docs).
    pub fn derive(call_id: &CallId, caller_nonce: &CallNonce, callee_nonce: &CallNonce) -> Self {
        let salt = call_id.to_string();
        let mut ikm = [0u8; 64];
        ikm[..32].copy_from_slice(&caller_nonce.0);
        ikm[32..].copy_from_slice(&callee_nonce.0);
        let hk = Hkdf::<Sha256>::new(Some(salt.as_bytes()), &ikm);
        ikm.zeroize();
        let mut k = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        let _ = hk.expand(CALL_KEY_INFO, &mut k);
        Self(k)
    }

    /// The key bytes (for further derivations by the client).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The version-2 short authentication string, `"123 456"`.
    pub fn sas(&self) -> String {
        let mut out = [0u8; 4];
        if let Ok(hk) = Hkdf::<Sha256>::from_prk(&self.0) {
            let _ = hk.expand(SAS_INFO_V2, &mut out);
        }
        let n = u32::from_be_bytes(out) % 1_000_000;
        format!("{:03} {:03}", n / 1000, n % 1000)
    }

    /// SRTP key material bound to this call key: the DTLS-SRTP exporter
    /// output mixed with K_call for `profile` (same length as `exported`).
    pub fn bind_srtp(&self, exported: &[u8], profile: SrtpProfile) -> Zeroizing<Vec<u8>> {
        let hk = Hkdf::<Sha256>::new(Some(&self.0), exported);
        let mut info = SRTP_INFO_V2.to_vec();
        info.extend_from_slice(profile.name().as_bytes());
        let mut out = Zeroizing::new(vec![0u8; exported.len()]);
        // The exporter output is at most 88 bytes, far below the limit.
        let _ = hk.expand(&info, &mut out);
        out
    }

    /// The six-digit short authentication string, `"123 456"` (see the module docs).
    pub fn short_auth_string(
        &self,
        caller_fingerprint: &str,
        callee_fingerprint: &str,
    ) -> Result<String, Error> {
        let a = canonical_fingerprint(caller_fingerprint)?;
        let b = canonical_fingerprint(callee_fingerprint)?;
        let mut info = Vec::with_capacity(SAS_INFO.len() + 2 + a.len() + b.len());
        info.extend_from_slice(SAS_INFO);
        info.push(0);
        info.extend_from_slice(a.as_bytes());
        info.push(0);
        info.extend_from_slice(b.as_bytes());
        let hk = Hkdf::<Sha256>::from_prk(&self.0).map_err(|_| Error::BadFingerprint)?;
        let mut out = [0u8; 4];
        let _ = hk.expand(&info, &mut out);
        let n = u32::from_be_bytes(out) % 1_000_000;
        Ok(format!("{:03} {:03}", n / 1000, n % 1000))
    }
}

/// Canonical form of a `sha-256` fingerprint: `sha-256 ` then uppercase hex
/// pairs joined by `:`. Accepts any case for the algorithm and the digits.
pub fn canonical_fingerprint(fp: &str) -> Result<String, Error> {
    let fp = fp.trim();
    let (alg, hex) = fp.split_once(' ').ok_or(Error::BadFingerprint)?;
    if !alg.eq_ignore_ascii_case("sha-256") {
        return Err(Error::BadFingerprint);
    }
    let parts: Vec<&str> = hex.trim().split(':').collect();
    if parts.len() != 32
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(Error::BadFingerprint);
    }
    Ok(format!("sha-256 {}", parts.join(":").to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::B64Bytes;

    const FP_A: &str = "sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    const FP_B: &str = "sha-256 FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00:FF:EE:DD:CC:BB:AA:99:88:77:66:55:44:33:22:11:00";

    fn fixed() -> CallKey {
        let id: CallId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        CallKey::derive(&id, &B64Bytes([0x11; 32]), &B64Bytes([0x22; 32]))
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // Expected values computed independently with Python's hmac/hashlib
    // (RFC 5869 written out by hand), from the formula in the module docs.
    #[test]
    fn call_key_matches_the_fixed_vector() {
        assert_eq!(
            hex(fixed().as_bytes()),
            "1cb19739880f431146b54bb590e97c0e1563c384e99e0613d1bfb7a6931068bc"
        );
    }

    #[test]
    fn sas_matches_the_fixed_vector_and_ignores_fingerprint_case() {
        let k = fixed();
        assert_eq!(k.short_auth_string(FP_A, FP_B).unwrap(), "453 186");
        let lower = FP_A.to_ascii_lowercase();
        assert_eq!(k.short_auth_string(&lower, FP_B).unwrap(), "453 186");
    }

    #[test]
    fn sas_depends_on_role_order_nonces_and_call_id() {
        let k = fixed();
        let s = k.short_auth_string(FP_A, FP_B).unwrap();
        assert_ne!(k.short_auth_string(FP_B, FP_A).unwrap(), s);
        let id: CallId = "0f8fad5b-d9cb-469f-a165-70867728950f".parse().unwrap();
        let k2 = CallKey::derive(&id, &B64Bytes([0x11; 32]), &B64Bytes([0x22; 32]));
        assert_ne!(k2, k);
        let k3 = CallKey::derive(&id, &B64Bytes([0x22; 32]), &B64Bytes([0x11; 32]));
        assert_ne!(k3, k2);
    }

    #[test]
    fn rejects_malformed_fingerprints() {
        let k = fixed();
        assert!(k.short_auth_string("sha-1 00:11", FP_B).is_err());
        assert!(k.short_auth_string(&FP_A[..FP_A.len() - 3], FP_B).is_err());
        assert!(k.short_auth_string("sha-256", FP_B).is_err());
    }
}
