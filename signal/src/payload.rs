//! What travels inside sealed payloads (JSON, end-to-end encrypted).
//!
//! The outer wire is strict; these inner payloads ignore unknown fields so
//! that newer clients can add fields without breaking older ones.

use serde::{Deserialize, Serialize};

use crate::wire::B64Bytes;

/// The 32 secret random bytes each side contributes to the call key
/// (unpadded base64 on the wire). See [`crate::callkey`].
pub type CallNonce = B64Bytes<32>;

/// The sealed body of `call_invite` and `call_answer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallOffer {
    /// `sha-256 AA:BB:...` of the sender's per-call DTLS certificate.
    pub dtls_fingerprint: String,
    /// ICE username fragment.
    pub ice_ufrag: String,
    /// ICE password.
    pub ice_pwd: String,
    /// RFC 8839 `candidate:...` attribute strings gathered so far.
    #[serde(default)]
    pub candidates: Vec<String>,
    /// True when no more candidates will be trickled.
    #[serde(default)]
    pub end_of_candidates: bool,
    /// E.g. `["opus/48000/2"]`, in preference order.
    pub audio_codecs: Vec<String>,
    /// E.g. `["AEAD_AES_128_GCM", "CRYPTIC_CHACHA20_POLY1305"]`, in preference order.
    pub srtp_profiles: Vec<String>,
    /// 32 fresh random bytes, secret (only ever sent sealed).
    pub call_nonce: CallNonce,
}

impl CallOffer {
    /// An offer with a fresh random nonce from `rng`.
    #[allow(clippy::too_many_arguments)]
    pub fn new<R: rand::Rng + ?Sized>(
        rng: &mut R,
        dtls_fingerprint: String,
        ice_ufrag: String,
        ice_pwd: String,
        candidates: Vec<String>,
        end_of_candidates: bool,
        audio_codecs: Vec<String>,
        srtp_profiles: Vec<String>,
    ) -> Self {
        let mut n = [0u8; 32];
        rng.fill_bytes(&mut n);
        Self {
            dtls_fingerprint,
            ice_ufrag,
            ice_pwd,
            candidates,
            end_of_candidates,
            audio_codecs,
            srtp_profiles,
            call_nonce: B64Bytes(n),
        }
    }

    /// JSON bytes to seal.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses an opened payload (unknown fields ignored).
    pub fn from_bytes(b: &[u8]) -> Result<Self, crate::Error> {
        serde_json::from_slice(b).map_err(|e| crate::Error::BadPayload(e.to_string()))
    }
}

/// The sealed body of `call_ice_candidate`: trickled candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CandidateUpdate {
    /// RFC 8839 `candidate:...` strings (usually one).
    #[serde(default)]
    pub candidates: Vec<String>,
    /// True when no more candidates will follow.
    #[serde(default)]
    pub end_of_candidates: bool,
}

impl CandidateUpdate {
    /// An update.
    pub fn new(candidates: Vec<String>, end_of_candidates: bool) -> Self {
        Self {
            candidates,
            end_of_candidates,
        }
    }

    /// JSON bytes to seal.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses an opened payload (unknown fields ignored).
    pub fn from_bytes(b: &[u8]) -> Result<Self, crate::Error> {
        serde_json::from_slice(b).map_err(|e| crate::Error::BadPayload(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn offer_ignores_unknown_fields_and_keeps_known_ones() {
        let o = CallOffer::new(
            &mut rand::rng(),
            "sha-256 AA:BB".into(),
            "uf".into(),
            "pw".into(),
            vec!["candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into()],
            false,
            vec!["opus/48000/2".into()],
            vec!["AEAD_AES_128_GCM".into()],
        );
        let mut v: serde_json::Value = serde_json::from_slice(&o.to_bytes()).unwrap();
        v["video_codecs"] = serde_json::json!(["av1"]);
        let back = CallOffer::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, o);
    }
}
