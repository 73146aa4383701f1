//! The wire protocol: JSON text frames and one compact binary frame.
//!
//! Every message is a JSON object whose `type` names it. Parsing is strict:
//! unknown types, unknown fields, missing fields, wrong types, invalid values
//! and anything over [`MAX_MESSAGE_BYTES`] are a [`WireError`] carrying a
//! machine-readable [`ErrorCode`], never a panic.
//!
//! Relay frames have a second, compact form for binary WebSocket frames
//! ([`RelayFrame`]): `0x52 'R' | call_id (16 bytes) | seq (u64, big endian) |
//! encrypted frame`. The server forwards both forms without looking inside
//! the encrypted frame.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest message (text or binary) accepted from the wire, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// First byte of a binary relay frame.
pub const RELAY_FRAME_TAG: u8 = 0x52;

/// Length of a binary relay frame's header (tag, call id, seq).
pub const RELAY_HEADER_LEN: usize = 1 + 16 + 8;

pub(crate) const B64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::STANDARD_NO_PAD;

/// A call identifier: a random UUID (version 4) chosen by the caller.
///
/// On the JSON wire it is the canonical lowercase hyphenated form
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`); parsing accepts either case.
/// The same 36-character lowercase string is the HKDF salt of the call key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId([u8; 16]);

impl CallId {
    /// A fresh random (version 4) call id.
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Self(b)
    }

    /// The call id from its 16 raw bytes.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// The 16 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({self})")
    }
}

impl FromStr for CallId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 36 {
            return Err("call_id must be a 36-character UUID");
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if s[i] != b'-' {
                    return Err("call_id must be a hyphenated UUID");
                }
                i += 1;
                continue;
            }
            let hi = hex_val(s[i]).ok_or("call_id has a non-hex digit")?;
            let lo = hex_val(s[i + 1]).ok_or("call_id has a non-hex digit")?;
            out[n] = (hi << 4) | lo;
            n += 1;
            i += 2;
        }
        Ok(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for CallId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CallId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A user name: 1 to 64 bytes of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
/// letter or digit. It is the common name of the user's client certificate.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Checks and wraps a user name.
    pub fn new(s: &str) -> Result<Self, &'static str> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 64 {
            return Err("user name must be 1 to 64 characters");
        }
        if !b[0].is_ascii_lowercase() && !b[0].is_ascii_digit() {
            return Err("user name must start with a lowercase letter or digit");
        }
        if !b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        }) {
            return Err("user name may only hold a-z, 0-9, '.', '_' and '-'");
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl FromStr for UserId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// `N` bytes carried as unpadded standard base64 (public keys, signatures).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct B64Bytes<const N: usize>(pub [u8; N]);

impl<const N: usize> B64Bytes<N> {
    /// The unpadded base64 form.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Parses the unpadded base64 form of exactly `N` bytes.
    pub fn from_base64(s: &str) -> Result<Self, &'static str> {
        let v = B64.decode(s).map_err(|_| "not unpadded base64")?;
        let a: [u8; N] = v.try_into().map_err(|_| "wrong key or signature length")?;
        Ok(Self(a))
    }
}

impl<const N: usize> fmt::Debug for B64Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl<const N: usize> Serialize for B64Bytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de, const N: usize> Deserialize<'de> for B64Bytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// A 32-byte public key (Curve25519 or Ed25519).
pub type PublicKey = B64Bytes<32>;
/// A 64-byte Ed25519 signature.
pub type Signature = B64Bytes<64>;

/// Opaque base64 text (unpadded standard alphabet, non-empty), kept as text:
/// relay frames and sealed payloads are forwarded without being decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Base64Text(String);

impl Base64Text {
    /// Encodes bytes.
    pub fn encode(bytes: &[u8]) -> Self {
        Self(B64.encode(bytes))
    }

    /// Checks that `s` is non-empty, unpadded standard base64.
    pub fn new(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("empty base64 text");
        }
        if s.len() % 4 == 1 {
            return Err("truncated base64 text");
        }
        if !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        {
            return Err("not unpadded standard base64");
        }
        Ok(Self(s.to_owned()))
    }

    /// Decodes the bytes.
    pub fn decode(&self) -> Result<Vec<u8>, &'static str> {
        B64.decode(&self.0).map_err(|_| "bad base64")
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Base64Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Text({} chars)", self.0.len())
    }
}

impl Serialize for Base64Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Base64Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A sealed (end-to-end encrypted) Olm message: `"<type>:<base64>"` where
/// type is `0` (pre-key message, starts a session) or `1` (normal message).
/// See [`crate::e2e`].
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    kind: u8,
    body: Base64Text,
}

impl Sealed {
    /// Wraps an Olm message's type and bytes.
    pub fn new(kind: u8, body: &[u8]) -> Result<Self, &'static str> {
        if kind > 1 {
            return Err("sealed message type must be 0 or 1");
        }
        if body.is_empty() {
            return Err("empty sealed message");
        }
        Ok(Self {
            kind,
            body: Base64Text::encode(body),
        })
    }

    /// The Olm message type: 0 pre-key, 1 normal.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The Olm message bytes.
    pub fn body(&self) -> Result<Vec<u8>, &'static str> {
        self.body.decode()
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed(type {}, {} chars)", self.kind, self.body.0.len())
    }
}

impl FromStr for Sealed {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, b) = s
            .split_once(':')
            .ok_or("sealed message must be <type>:<base64>")?;
        let kind = match k {
            "0" => 0,
            "1" => 1,
            _ => return Err("sealed message type must be 0 or 1"),
        };
        Ok(Self {
            kind,
            body: Base64Text::new(b)?,
        })
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}:{}", self.kind, self.body.0))
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a callee declined a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The callee is already in a call.
    Busy,
    /// The callee's user declined.
    Declined,
    /// The callee let it ring until the ring timeout.
    Timeout,
    /// The callee's pinned key for the caller changed; the user must accept it first.
    KeyChanged,
    /// The offer could not be opened or had nothing in common (codecs, SRTP profiles).
    Incompatible,
    /// The callee is not connected.
    Unavailable,
}

/// Why a call ended (optional on `call_hangup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HangupReason {
    /// A user hung up (or cancelled before the answer).
    Normal,
    /// The caller gave up before an answer.
    Cancelled,
    /// Nobody answered within the ring timeout.
    Timeout,
    /// Media never connected, or stopped (consent freshness, DTLS failure).
    MediaFailed,
    /// Sent by the server: the other participant disconnected.
    PeerDisconnected,
    /// Sent by the server: it is shutting down.
    ServerShutdown,
    /// Glare: both invited each other; this call lost (see [`crate::call`]).
    Glare,
    /// The sender aborted the call because the peer's DTLS certificate did
    /// not match the fingerprint received end to end (someone in the middle).
    SecurityAbort,
}

/// Machine-readable error codes (`error.code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, or not a JSON object, or not UTF-8.
    Malformed,
    /// `type` names no message we know.
    UnknownType,
    /// A required field is missing.
    MissingField,
    /// A field is not one of the message's fields.
    UnknownField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A field has the right type but an invalid value (bad UUID, user name, key...).
    InvalidValue,
    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// A binary frame that is not a relay frame.
    BadBinaryFrame,
    /// `from_user` differs from the identity in the client certificate.
    ForgedSender,
    /// The addressee is not connected.
    UserOffline,
    /// No published keys for that user.
    NoKeys,
    /// Too many messages, or a second unanswered invite too soon.
    RateLimited,
    /// The sender already takes part in another call.
    AlreadyInCall,
    /// No such call.
    UnknownCall,
    /// The sender is not a participant of that call (or the message goes to the wrong peer).
    NotParticipant,
    /// The call is not in a state that allows this message (e.g. relay before answer).
    CallNotActive,
    /// A per-call relay rate or byte cap was exceeded.
    RelayLimit,
    /// A newer connection for the same user replaced this one.
    SessionReplaced,
    /// Too many bad messages: the server closes the connection.
    TooManyErrors,
    /// The server is shutting down.
    ServerShutdown,
    /// The server failed internally (e.g. key directory unavailable).
    Internal,
    /// A message type only the server sends.
    NotAllowed,
    /// The operator revoked this user or this certificate: the login is
    /// refused, or an open connection ended when the server reloaded its
    /// revocation list. (Older clients read it as `Other`.)
    CertificateRevoked,
    /// A code this version does not know (forward compatibility when reading).
    #[serde(other)]
    Other,
}

/// A key signed by its owner's Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedKey {
    /// Curve25519 public key.
    pub key: PublicKey,
    /// Ed25519 signature over [`crate::e2e::one_time_key_statement`] of `key`.
    pub signature: Signature,
}

macro_rules! wire_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
    };
}

wire_struct!(
    /// `call_invite`: the caller offers a call.
    CallInvite {
        /// Random UUID chosen by the caller.
        call_id: CallId,
        /// Sender (checked against the certificate by the server).
        from_user: UserId,
        /// Addressee.
        to_user: UserId,
        /// Sealed [`crate::payload::Payload`] with an [`crate::payload::Invite`].
        encrypted_payload: Sealed,
    }
);
wire_struct!(
    /// `call_answer`: the callee accepts.
    CallAnswer {
        /// The call.
        call_id: CallId,
        /// Sender.
        from_user: UserId,
        /// Addressee.
        to_user: UserId,
        /// Sealed [`crate::payload::Payload`] with an [`crate::payload::Answer`].
        encrypted_payload: Sealed,
    }
);
wire_struct!(
    /// `call_ice_candidate`: one more trickled candidate.
    CallIceCandidate {
        /// The call.
        call_id: CallId,
        /// Sender.
        from_user: UserId,
        /// Addressee.
        to_user: UserId,
        /// Sealed [`crate::payload::Payload`] with a [`crate::payload::Reveal`] or [`crate::payload::Candidates`].
        encrypted_candidate: Sealed,
    }
);
wire_struct!(
    /// `call_reject`: the callee declines.
    CallReject {
        /// The call.
        call_id: CallId,
        /// Sender.
        from_user: UserId,
        /// Addressee.
        to_user: UserId,
        /// Why.
        reason: RejectReason,
    }
);
wire_struct!(
    /// `call_hangup`: either side ends the call (the caller cancels with it too).
    CallHangup {
        /// The call.
        call_id: CallId,
        /// Sender.
        from_user: UserId,
        /// Addressee.
        to_user: UserId,
        /// Why, if the sender says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<HangupReason>,
    }
);
wire_struct!(
    /// `call_relay_frame` (JSON form): an opaque media datagram forwarded by the server.
    CallRelayFrame {
        /// The call.
        call_id: CallId,
        /// Sender.
        from_user: UserId,
        /// Addressee.
        to_user: UserId,
        /// Sender's frame counter.
        seq: u64,
        /// The datagram (already DTLS/SRTP protected), base64.
        encrypted_frame: Base64Text,
    }
);
wire_struct!(
    /// `keys_publish`: upload identity keys, one-time keys and a fallback key.
    KeysPublish {
        /// Curve25519 identity key.
        identity_key: PublicKey,
        /// Ed25519 signing key.
        signing_key: PublicKey,
        /// Signature by `signing_key` over [`crate::e2e::identity_statement`].
        identity_signature: Signature,
        /// Fresh one-time keys (at most 100 per message).
        one_time_keys: Vec<SignedKey>,
        /// The current fallback key, used when one-time keys run out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback_key: Option<SignedKey>,
    }
);
wire_struct!(
    /// `keys_published`: the server stored them; how many one-time keys remain.
    KeysPublished {
        /// Unclaimed one-time keys left in the directory for this user.
        one_time_key_count: u32,
    }
);
wire_struct!(
    /// `keys_fetch`: ask for a user's key bundle (claims one one-time key).
    KeysFetch {
        /// Whose keys.
        user: UserId,
    }
);
wire_struct!(
    /// `keys_bundle`: the answer to `keys_fetch`.
    KeysBundle {
        /// Whose keys.
        user: UserId,
        /// Curve25519 identity key.
        identity_key: PublicKey,
        /// Ed25519 signing key.
        signing_key: PublicKey,
        /// Signature over [`crate::e2e::identity_statement`].
        identity_signature: Signature,
        /// A one-time key handed out once, or the fallback key.
        one_time_key: SignedKey,
        /// True when `one_time_key` is the fallback key (none were left).
        fallback: bool,
    }
);
wire_struct!(
    /// `error`: something went wrong; `code` is machine-readable.
    ErrorMessage {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable detail (never keys or payloads).
        message: String,
        /// The call this is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
        /// With `rate_limited`: whole seconds to wait before trying again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u32>,
    }
);
wire_struct!(
    /// `welcome`: sent by the server once a connection is accepted.
    Welcome {
        /// The identity taken from the client certificate.
        user: UserId,
        /// STUN/TURN server URIs the operator advertises (may be empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<String>,
    }
);
wire_struct!(
    /// `ping`: keep-alive; answered with `pong` carrying the same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    }
);
wire_struct!(
    /// `pong`: answer to `ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    }
);

/// Most users in one [`PresenceShare`] list.
pub const MAX_PRESENCE_CONTACTS: usize = 200;

wire_struct!(
    /// `presence_share`: the users this user shares presence with. Two
    /// users see whether the other is online only once both listed each
    /// other (presence is not a directory for strangers). Replaces the
    /// previous list; an empty list shares with nobody.
    PresenceShare {
        /// The contacts, at most [`MAX_PRESENCE_CONTACTS`].
        contacts: Vec<UserId>,
    }
);
wire_struct!(
    /// `presence`: a mutual contact is online, or went offline.
    Presence {
        /// The contact.
        user: UserId,
        /// Whether the contact is connected now.
        online: bool,
    }
);

/// Every JSON message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Message {
    /// See [`CallInvite`].
    CallInvite(CallInvite),
    /// See [`CallAnswer`].
    CallAnswer(CallAnswer),
    /// See [`CallIceCandidate`].
    CallIceCandidate(CallIceCandidate),
    /// See [`CallReject`].
    CallReject(CallReject),
    /// See [`CallHangup`].
    CallHangup(CallHangup),
    /// See [`CallRelayFrame`].
    CallRelayFrame(CallRelayFrame),
    /// See [`KeysPublish`].
    KeysPublish(KeysPublish),
    /// See [`KeysPublished`].
    KeysPublished(KeysPublished),
    /// See [`KeysFetch`].
    KeysFetch(KeysFetch),
    /// See [`KeysBundle`].
    KeysBundle(KeysBundle),
    /// See [`ErrorMessage`].
    Error(ErrorMessage),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// See [`Ping`].
    Ping(Ping),
    /// See [`Pong`].
    Pong(Pong),
    /// See [`PresenceShare`].
    PresenceShare(PresenceShare),
    /// See [`Presence`].
    Presence(Presence),
}

const TYPES: &[&str] = &[
    "call_invite",
    "call_answer",
    "call_ice_candidate",
    "call_reject",
    "call_hangup",
    "call_relay_frame",
    "keys_publish",
    "keys_published",
    "keys_fetch",
    "keys_bundle",
    "error",
    "welcome",
    "ping",
    "pong",
    "presence_share",
    "presence",
];

/// A message that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// Machine-readable code to send back.
    pub code: ErrorCode,
    /// Detail for logs and the error message.
    pub detail: String,
}

impl WireError {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.detail)
    }
}

impl std::error::Error for WireError {}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    t: std::borrow::Cow<'a, str>,
}

impl Message {
    /// Parses a JSON text frame strictly.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                format!("{} bytes over the cap", text.len()),
            ));
        }
        let head: TypeOnly<'_> = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                return Err(match e.classify() {
                    serde_json::error::Category::Data
                        if e.to_string().contains("missing field `type`") =>
                    {
                        WireError::new(ErrorCode::MissingField, "missing field `type`")
                    }
                    serde_json::error::Category::Data => {
                        WireError::new(ErrorCode::Malformed, "not a message object")
                    }
                    _ => WireError::new(ErrorCode::Malformed, format!("not JSON: {e}")),
                })
            }
        };
        if !TYPES.contains(&head.t.as_ref()) {
            return Err(WireError::new(
                ErrorCode::UnknownType,
                "unknown message type",
            ));
        }
        serde_json::from_str(text).map_err(|e| {
            let s = e.to_string();
            let code = if s.contains("missing field") {
                ErrorCode::MissingField
            } else if s.contains("unknown field") {
                ErrorCode::UnknownField
            } else if s.contains("invalid type") || s.contains("invalid length") {
                ErrorCode::WrongType
            } else if matches!(e.classify(), serde_json::error::Category::Data) {
                ErrorCode::InvalidValue
            } else {
                ErrorCode::Malformed
            };
            // serde's message names the field but never echoes values.
            WireError::new(code, s)
        })
    }

    /// Parses a text frame given as bytes (must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                format!("{} bytes over the cap", bytes.len()),
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| WireError::new(ErrorCode::Malformed, "not UTF-8"))?;
        Self::parse(text)
    }

    /// Serializes to a JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: all keys are strings and no
        // custom serializer returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The call this message is about, if any.
    pub fn call_id(&self) -> Option<CallId> {
        match self {
            Message::CallInvite(m) => Some(m.call_id),
            Message::CallAnswer(m) => Some(m.call_id),
            Message::CallIceCandidate(m) => Some(m.call_id),
            Message::CallReject(m) => Some(m.call_id),
            Message::CallHangup(m) => Some(m.call_id),
            Message::CallRelayFrame(m) => Some(m.call_id),
            Message::Error(m) => m.call_id,
            _ => None,
        }
    }

    /// `(from_user, to_user)` of a call message.
    pub fn route(&self) -> Option<(&UserId, &UserId)> {
        match self {
            Message::CallInvite(m) => Some((&m.from_user, &m.to_user)),
            Message::CallAnswer(m) => Some((&m.from_user, &m.to_user)),
            Message::CallIceCandidate(m) => Some((&m.from_user, &m.to_user)),
            Message::CallReject(m) => Some((&m.from_user, &m.to_user)),
            Message::CallHangup(m) => Some((&m.from_user, &m.to_user)),
            Message::CallRelayFrame(m) => Some((&m.from_user, &m.to_user)),
            _ => None,
        }
    }

    /// An `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>, call_id: Option<CallId>) -> Self {
        Message::Error(ErrorMessage {
            code,
            message: message.into(),
            call_id,
            retry_after: None,
        })
    }

    /// A `rate_limited` error that says how long to wait.
    pub fn rate_limited(message: impl Into<String>, call_id: Option<CallId>, wait_s: u32) -> Self {
        Message::Error(ErrorMessage {
            code: ErrorCode::RateLimited,
            message: message.into(),
            call_id,
            retry_after: Some(wait_s),
        })
    }
}

/// A relay frame in the compact binary form, borrowing its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayFrame<'a> {
    /// The call.
    pub call_id: CallId,
    /// Sender's frame counter.
    pub seq: u64,
    /// The opaque datagram.
    pub frame: &'a [u8],
}

impl<'a> RelayFrame<'a> {
    /// Parses a binary WebSocket frame.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                "binary frame over the cap",
            ));
        }
        if bytes.len() <= RELAY_HEADER_LEN || bytes[0] != RELAY_FRAME_TAG {
            return Err(WireError::new(
                ErrorCode::BadBinaryFrame,
                "not a relay frame",
            ));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[1..17]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[17..25]);
        Ok(Self {
            call_id: CallId(id),
            seq: u64::from_be_bytes(seq),
            frame: &bytes[RELAY_HEADER_LEN..],
        })
    }

    /// Appends the binary form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(RELAY_HEADER_LEN + self.frame.len());
        out.push(RELAY_FRAME_TAG);
        out.extend_from_slice(&self.call_id.0);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(self.frame);
    }

    /// The binary form.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn code(s: &str) -> ErrorCode {
        Message::parse(s).unwrap_err().code
    }

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn parses_and_round_trips_a_hangup() {
        let s = format!(
            r#"{{"type":"call_hangup","call_id":"{ID}","from_user":"alice","to_user":"bob"}}"#
        );
        let m = Message::parse(&s).unwrap();
        assert_eq!(m.to_json(), s);
        assert_eq!(m.call_id().unwrap().to_string(), ID);
    }

    #[test]
    fn classifies_bad_input_with_codes() {
        assert_eq!(code("nope"), ErrorCode::Malformed);
        assert_eq!(code("[1,2]"), ErrorCode::Malformed);
        assert_eq!(code(r#"{"a":1}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":"call_dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"ping"}"#), ErrorCode::MissingField);
        assert_eq!(code(r#"{"type":"ping","nonce":"x"}"#), ErrorCode::WrongType);
        assert_eq!(
            code(r#"{"type":"ping","nonce":1,"extra":2}"#),
            ErrorCode::UnknownField
        );
        let bad_id = r#"{"type":"call_hangup","call_id":"zz","from_user":"alice","to_user":"bob"}"#;
        assert_eq!(code(bad_id), ErrorCode::InvalidValue);
        let bad_user = format!(
            r#"{{"type":"call_hangup","call_id":"{ID}","from_user":"Alice!","to_user":"bob"}}"#
        );
        assert_eq!(code(&bad_user), ErrorCode::InvalidValue);
        let big = format!(
            r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(&big), ErrorCode::TooLarge);
        assert_eq!(
            Message::parse_bytes(&[0xff, 0xfe]).unwrap_err().code,
            ErrorCode::Malformed
        );
    }

    #[test]
    fn sealed_payload_is_type_colon_base64() {
        let s = format!(
            r#"{{"type":"call_invite","call_id":"{ID}","from_user":"alice","to_user":"bob","encrypted_payload":"0:AAEC"}}"#
        );
        let Message::CallInvite(m) = Message::parse(&s).unwrap() else {
            panic!("not an invite")
        };
        assert_eq!(m.encrypted_payload.kind(), 0);
        assert_eq!(m.encrypted_payload.body().unwrap(), vec![0, 1, 2]);
        let bad = s.replace("0:AAEC", "2:AAEC");
        assert_eq!(code(&bad), ErrorCode::InvalidValue);
    }

    #[test]
    fn binary_relay_frame_round_trips() {
        let id: CallId = ID.parse().unwrap();
        let f = RelayFrame {
            call_id: id,
            seq: 7,
            frame: b"srtp",
        };
        let v = f.to_vec();
        assert_eq!(RelayFrame::parse(&v).unwrap(), f);
        assert_eq!(
            RelayFrame::parse(&v[..RELAY_HEADER_LEN]).unwrap_err().code,
            ErrorCode::BadBinaryFrame
        );
    }

    #[test]
    fn random_call_ids_are_version_4_uuids() {
        let id = CallId::random(&mut rand::rng());
        let s = id.to_string();
        assert_eq!(&s[14..15], "4");
        assert_eq!(s.parse::<CallId>().unwrap(), id);
    }
}
