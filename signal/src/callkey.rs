//! The per-call key and the short authentication string (SAS).
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
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::payload::CallNonce;
use crate::wire::CallId;
use crate::Error;

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
