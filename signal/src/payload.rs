//! What travels inside sealed payloads (JSON, end-to-end encrypted),
//! version 2: every payload names its own context.
//!
//! ```text
//! { "v": 2, "type": "invite" | "answer" | "reveal" | "candidates" | "restart",
//!   "call_id": "<uuid>", "from": "alice", "to": "bob",
//!   "counter": 0, "sent_at": 1800000000,
//!   ...the body's fields... }
//! ```
//!
//! The receiver checks the context against the wire message that carried it
//! ([`Payload::check`]): the type must fit the message (`invite` in
//! `call_invite`, `answer` in `call_answer`, `reveal` and `candidates` in
//! `call_ice_candidate`), `call_id`, `from` and `to` must be the call's, and
//! `counter` must grow within the call for each sender, so the server
//! cannot move a sealed payload to another call, another message or another
//! user, nor replay one inside a call. The outer wire is strict; these
//! inner payloads ignore unknown fields so that newer clients can add some.
//!
//! Values are parsed here, once: a fingerprint is 32 bytes, a profile and a
//! codec are enums (an unknown name parses as `Unknown` and never matches).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::{B64Bytes, CallId, UserId};
use crate::Error;

/// The payload format version.
pub const PAYLOAD_VERSION: u8 = 2;

/// The 32 secret random bytes each side contributes to the call key.
pub type CallNonce = B64Bytes<32>;

/// A `sha-256` certificate fingerprint: 32 bytes, written on the wire as
/// `sha-256 AA:BB:...` (32 uppercase hex pairs; any case accepted).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha-256 ")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for CertFingerprint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (alg, hex) = s.trim().split_once(' ').ok_or(Error::BadFingerprint)?;
        if !alg.eq_ignore_ascii_case("sha-256") {
            return Err(Error::BadFingerprint);
        }
        let mut out = [0u8; 32];
        let mut parts = hex.trim().split(':');
        for b in &mut out {
            let p = parts.next().ok_or(Error::BadFingerprint)?;
            if p.len() != 2 {
                return Err(Error::BadFingerprint);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| Error::BadFingerprint)?;
        }
        if parts.next().is_some() {
            return Err(Error::BadFingerprint);
        }
        Ok(Self(out))
    }
}

impl Serialize for CertFingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CertFingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An SRTP protection profile, by its name in the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SrtpProfile {
    /// `AEAD_AES_128_GCM` (RFC 7714).
    #[serde(rename = "AEAD_AES_128_GCM")]
    AeadAes128Gcm,
    /// Cryptic's ChaCha20-Poly1305 profile.
    #[serde(rename = "CRYPTIC_CHACHA20_POLY1305")]
    CrypticChaCha20Poly1305,
    /// A profile this version does not know.
    #[serde(other)]
    Unknown,
}

impl SrtpProfile {
    /// The name in the payload (and in the key schedule's transcript).
    pub fn name(self) -> &'static str {
        match self {
            SrtpProfile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpProfile::CrypticChaCha20Poly1305 => "CRYPTIC_CHACHA20_POLY1305",
            SrtpProfile::Unknown => "unknown",
        }
    }
}

/// An audio codec, by its name in the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AudioCodec {
    /// Opus, 48 kHz, stereo signalling (RFC 7587): `opus/48000/2`.
    #[serde(rename = "opus/48000/2")]
    Opus,
    /// Redundant audio (RFC 2198) around Opus: `red/48000/2`. Each packet
    /// may carry copies of the frames sent before it.
    #[serde(rename = "red/48000/2")]
    Red,
    /// A codec this version does not know.
    #[serde(other)]
    Unknown,
}

impl AudioCodec {
    /// The name in the payload (and in the transcript).
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus/48000/2",
            AudioCodec::Red => "red/48000/2",
            AudioCodec::Unknown => "unknown",
        }
    }
}

/// The sender's ICE description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IceParams {
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
}

impl IceParams {
    /// The ICE description from its parts.
    pub fn new(ufrag: String, pwd: String, candidates: Vec<String>, done: bool) -> Self {
        Self {
            ice_ufrag: ufrag,
            ice_pwd: pwd,
            candidates,
            end_of_candidates: done,
        }
    }
}

/// The three values each side contributes to the call key: the caller
/// commits to them in the invite and reveals them after the answer; the
/// callee sends them in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Contribution {
    /// An ephemeral X25519 public key, one per call.
    pub ephemeral_key: B64Bytes<32>,
    /// 32 fresh random bytes.
    pub call_nonce: CallNonce,
    /// The fingerprint of the sender's per-call DTLS certificate.
    pub dtls_fingerprint: CertFingerprint,
}

impl Contribution {
    /// A contribution from its parts.
    pub fn new(ephemeral_key: [u8; 32], call_nonce: [u8; 32], fp: CertFingerprint) -> Self {
        Self {
            ephemeral_key: B64Bytes(ephemeral_key),
            call_nonce: B64Bytes(call_nonce),
            dtls_fingerprint: fp,
        }
    }
}

/// The body of the invite: a commitment to the caller's contribution, not
/// the contribution itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Invite {
    /// See [`crate::callkey::commitment`].
    pub commitment: B64Bytes<32>,
    /// The caller's ICE description.
    #[serde(flatten)]
    pub ice: IceParams,
    /// Codecs, preferred first.
    pub audio_codecs: Vec<AudioCodec>,
    /// SRTP profiles, preferred first.
    pub srtp_profiles: Vec<SrtpProfile>,
}

impl Invite {
    /// An invite body from its parts.
    pub fn new(
        commitment: [u8; 32],
        ice: IceParams,
        audio_codecs: Vec<AudioCodec>,
        srtp_profiles: Vec<SrtpProfile>,
    ) -> Self {
        Self {
            commitment: B64Bytes(commitment),
            ice,
            audio_codecs,
            srtp_profiles,
        }
    }
}

/// The body of the answer: the callee's contribution and description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Answer {
    /// The callee's contribution.
    #[serde(flatten)]
    pub contribution: Contribution,
    /// The callee's ICE description.
    #[serde(flatten)]
    pub ice: IceParams,
    /// Codecs, preferred first.
    pub audio_codecs: Vec<AudioCodec>,
    /// SRTP profiles, preferred first.
    pub srtp_profiles: Vec<SrtpProfile>,
}

impl Answer {
    /// An answer body from its parts.
    pub fn new(
        contribution: Contribution,
        ice: IceParams,
        audio_codecs: Vec<AudioCodec>,
        srtp_profiles: Vec<SrtpProfile>,
    ) -> Self {
        Self {
            contribution,
            ice,
            audio_codecs,
            srtp_profiles,
        }
    }
}

/// The body of the reveal: the caller's contribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reveal {
    /// The caller's contribution.
    #[serde(flatten)]
    pub contribution: Contribution,
}

impl Reveal {
    /// A reveal of `contribution`.
    pub fn new(contribution: Contribution) -> Self {
        Self { contribution }
    }
}

/// The body of a trickled candidate update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Candidates {
    /// RFC 8839 `candidate:...` strings (usually one).
    #[serde(default)]
    pub candidates: Vec<String>,
    /// True when no more candidates will follow.
    #[serde(default)]
    pub end_of_candidates: bool,
    /// The ICE generation these candidates belong to: 0 before any
    /// restart, then the [`Restart::generation`] they follow. The receiver
    /// drops candidates of another generation than its own.
    #[serde(default)]
    pub generation: u32,
}

impl Candidates {
    /// An update from its parts (generation 0).
    pub fn new(candidates: Vec<String>, end_of_candidates: bool) -> Self {
        Self {
            candidates,
            end_of_candidates,
            generation: 0,
        }
    }

    /// The same update, for ICE generation `generation`.
    pub fn for_generation(mut self, generation: u32) -> Self {
        self.generation = generation;
        self
    }
}

/// The body of an ICE restart (RFC 8445 section 2.4) in the middle of a
/// call: the sender's new ICE description. The DTLS association and the
/// SRTP contexts are kept; only the connectivity checks start over.
///
/// `generation` numbers the restarts of one call: the first is 1, and a
/// side that starts one uses one more than the largest it has seen from
/// either side. A receiver at a smaller generation restarts its own agent
/// and answers with a `restart` of the same generation; at the same
/// generation (both sides restarted at once, or this is the answer) it only
/// takes the new credentials; a smaller generation than its own is stale and
/// dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Restart {
    /// The restart's number in this call, from 1.
    pub generation: u32,
    /// The sender's new ICE description.
    #[serde(flatten)]
    pub ice: IceParams,
}

impl Restart {
    /// A restart of `generation` with the new description `ice`.
    pub fn new(generation: u32, ice: IceParams) -> Self {
        Self { generation, ice }
    }
}

/// The body of a payload, by its type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Body {
    /// In `call_invite`.
    Invite(Invite),
    /// In `call_answer`.
    Answer(Answer),
    /// In `call_ice_candidate`, from the caller, once.
    Reveal(Reveal),
    /// In `call_ice_candidate`.
    Candidates(Candidates),
    /// In `call_ice_candidate`, from either side, once the call is
    /// answered.
    Restart(Restart),
}

impl Body {
    /// The type's name.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Invite(_) => Kind::Invite,
            Body::Answer(_) => Kind::Answer,
            Body::Reveal(_) => Kind::Reveal,
            Body::Candidates(_) => Kind::Candidates,
            Body::Restart(_) => Kind::Restart,
        }
    }
}

/// The type of a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// [`Invite`].
    Invite,
    /// [`Answer`].
    Answer,
    /// [`Reveal`].
    Reveal,
    /// [`Candidates`].
    Candidates,
    /// [`Restart`].
    Restart,
}

/// A sealed payload's plaintext: its context and its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Payload {
    /// [`PAYLOAD_VERSION`].
    pub v: u8,
    /// The call.
    pub call_id: CallId,
    /// The sender.
    pub from: UserId,
    /// The recipient.
    pub to: UserId,
    /// The sender's count of payloads in this call, from 0.
    pub counter: u64,
    /// When it was sealed, Unix seconds (checked on invites).
    pub sent_at: i64,
    /// What it says.
    #[serde(flatten)]
    pub body: Body,
}

/// What the receiver expects of a payload: the wire message that carried
/// it decides these.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The types the carrying message may hold.
    pub kinds: &'a [Kind],
    /// The call of the carrying message.
    pub call_id: CallId,
    /// The peer.
    pub from: &'a UserId,
    /// Us.
    pub to: &'a UserId,
    /// The smallest counter still acceptable (one more than the last seen).
    pub min_counter: u64,
}

impl Payload {
    /// A version-2 payload.
    pub fn new(
        call_id: CallId,
        from: UserId,
        to: UserId,
        counter: u64,
        sent_at: i64,
        body: Body,
    ) -> Self {
        Self {
            v: PAYLOAD_VERSION,
            call_id,
            from,
            to,
            counter,
            sent_at,
            body,
        }
    }

    /// JSON bytes to seal.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these types cannot fail: no maps with non-string keys.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses an opened payload (unknown fields ignored).
    pub fn from_bytes(b: &[u8]) -> Result<Self, Error> {
        let p: Payload = serde_json::from_slice(b).map_err(|e| Error::BadPayload(e.to_string()))?;
        if p.v != PAYLOAD_VERSION {
            return Err(Error::BadPayload(format!(
                "payload version {} (this client speaks {PAYLOAD_VERSION})",
                p.v
            )));
        }
        Ok(p)
    }

    /// Checks the payload's context against what the carrying message says.
    pub fn check(&self, expect: &Expect<'_>) -> Result<(), Error> {
        let wrong = |what: &str| Err(Error::BadPayload(format!("sealed {what} does not match")));
        if !expect.kinds.contains(&self.body.kind()) {
            return wrong("message type");
        }
        if self.call_id != expect.call_id {
            return wrong("call id");
        }
        if &self.from != expect.from {
            return wrong("sender");
        }
        if &self.to != expect.to {
            return wrong("recipient");
        }
        if self.counter < expect.min_counter {
            return Err(Error::BadPayload("sealed payload replayed".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn reveal() -> Payload {
        let fp = CertFingerprint([7; 32]);
        Payload::new(
            "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap(),
            user("alice"),
            user("bob"),
            3,
            1_800_000_000,
            Body::Reveal(Reveal {
                contribution: Contribution::new([1; 32], [2; 32], fp),
            }),
        )
    }

    #[test]
    fn payloads_round_trip_with_their_context() {
        let p = reveal();
        let b = p.to_bytes();
        let text = String::from_utf8(b.clone()).unwrap();
        assert!(text.contains("\"type\":\"reveal\""), "{text}");
        assert!(text.contains("sha-256 07:07"), "{text}");
        assert_eq!(Payload::from_bytes(&b).unwrap(), p);
    }

    #[test]
    fn context_mismatches_are_refused_each_with_its_reason() {
        let p = reveal();
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let ok = Expect {
            kinds: &[Kind::Reveal, Kind::Candidates],
            call_id: p.call_id,
            from: &alice,
            to: &bob,
            min_counter: 3,
        };
        assert!(p.check(&ok).is_ok());
        let cases = [
            (
                Expect {
                    kinds: &[Kind::Answer],
                    ..ok
                },
                "message type",
            ),
            (
                Expect {
                    call_id: "0f8fad5b-d9cb-469f-a165-70867728950f".parse().unwrap(),
                    ..ok
                },
                "call id",
            ),
            (Expect { from: &carol, ..ok }, "sender"),
            (Expect { to: &carol, ..ok }, "recipient"),
            (
                Expect {
                    min_counter: 4,
                    ..ok
                },
                "replayed",
            ),
        ];
        for (e, why) in cases {
            let err = p.check(&e).unwrap_err().to_string();
            assert!(err.contains(why), "{err} / {why}");
        }
    }

    #[test]
    fn restarts_round_trip_and_candidates_default_to_generation_0() {
        let mut p = reveal();
        p.body = Body::Restart(Restart::new(
            2,
            IceParams::new(
                "Abc1".into(),
                "abcdefghijklmnopqrstuvwx".into(),
                vec!["candidate:1 1 udp 2130706431 198.51.100.1 5000 typ host".into()],
                false,
            ),
        ));
        let b = p.to_bytes();
        let text = String::from_utf8(b.clone()).unwrap();
        assert!(text.contains("\"type\":\"restart\""), "{text}");
        assert!(text.contains("\"generation\":2"), "{text}");
        assert_eq!(Payload::from_bytes(&b).unwrap(), p);
        assert_eq!(p.body.kind(), Kind::Restart);
        let (alice, bob) = (user("alice"), user("bob"));
        let expect = Expect {
            kinds: &[Kind::Reveal, Kind::Candidates],
            call_id: p.call_id,
            from: &alice,
            to: &bob,
            min_counter: 0,
        };
        assert!(p.check(&expect).is_err(), "a restart only where allowed");
        let old = br#"{"v":2,"type":"candidates","call_id":"0f8fad5b-d9cb-469f-a165-70867728950e","from":"bob","to":"alice","counter":2,"sent_at":1800000000,"candidates":[],"end_of_candidates":true}"#;
        match Payload::from_bytes(old).unwrap().body {
            Body::Candidates(c) => assert_eq!(c.generation, 0),
            other => panic!("{other:?}"),
        }
        for bad in [
            r#""generation":-1"#,
            r#""generation":4294967296"#,
            r#""generation":"1""#,
        ] {
            let t = text.replace("\"generation\":2", bad);
            assert!(Payload::from_bytes(t.as_bytes()).is_err(), "{t}");
        }
    }

    #[test]
    fn the_fuzz_seeds_of_restarts_and_generations_hold_the_round_trip() {
        for seed in [
            include_str!("../../fuzz/corpus/signal_payload/seed-restart"),
            include_str!("../../fuzz/corpus/signal_payload/seed-candidates-generation"),
        ] {
            let p = Payload::from_bytes(seed.as_bytes()).unwrap();
            assert!(matches!(p.body, Body::Restart(_) | Body::Candidates(_)));
            crate::fuzzing::payload(seed.as_bytes());
        }
    }

    #[test]
    fn unknown_profiles_and_codecs_parse_but_never_match() {
        let p: Vec<SrtpProfile> =
            serde_json::from_str(r#"["SRTP_NULL", "AEAD_AES_128_GCM"]"#).unwrap();
        assert_eq!(p, [SrtpProfile::Unknown, SrtpProfile::AeadAes128Gcm]);
        let c: Vec<AudioCodec> = serde_json::from_str(r#"["g711", "opus/48000/2"]"#).unwrap();
        assert_eq!(c, [AudioCodec::Unknown, AudioCodec::Opus]);
    }

    #[test]
    fn fingerprints_parse_strictly_and_print_canonically() {
        let s = "sha-256 00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13:14:15:16:17:18:19:1a:1b:1c:1d:1e:1f";
        let fp: CertFingerprint = s.parse().unwrap();
        assert_eq!(
            fp.to_string(),
            s.to_ascii_uppercase().replace("SHA-256", "sha-256")
        );
        for bad in [
            "sha-1 00:11",
            "sha-256",
            &s[..s.len() - 3],
            &format!("{s}:00"),
        ] {
            assert!(bad.parse::<CertFingerprint>().is_err(), "{bad}");
        }
        let v = Payload::from_bytes(br#"{"v":1}"#).unwrap_err().to_string();
        assert!(v.contains("payload"), "{v}");
    }
}
