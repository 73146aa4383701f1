//! # cryptic-signal: setting up calls without trusting the server
//!
//! ```text
//!  client A --WebSocket/mTLS--> [ signaling server ] --WebSocket/mTLS--> client B
//!            sealed invite / answer / candidates (end-to-end encrypted)
//!            call_relay_frame: opaque DTLS/SRTP datagrams when ICE fails
//! ```
//!
//! The protocol core does no I/O: [`wire`] (strict JSON messages and the
//! binary relay frame), [`payload`] (what is sealed inside), [`e2e`]
//! (vodozemac Olm sessions, key pinning, profile storage), [`callkey`]
//! (K_call and the short authentication string) and [`call`] (the sans-IO
//! call state machine). The I/O lives in [`certs`] and [`profile`] (files),
//! [`server`] (tokio + rustls + tokio-tungstenite + SQLite) and [`client`]
//! (the client connection library).
//!
//! A client's intended sequence:
//!
//! 1. [`profile::Profile::load`] the profile directory and open its
//!    [`e2e::E2eStore`] with [`profile::Profile::e2e`].
//! 2. [`client::connect`] with [`profile::Profile::client_config`]; it returns
//!    once the server's `welcome` arrived ([`client::Connection::user`],
//!    [`client::Connection::ice_servers`]).
//! 3. [`client::Connection::publish_keys`] with
//!    [`e2e::E2eStore::keys_to_publish`]; publish more when the returned
//!    count of unclaimed one-time keys runs low.
//! 4. To call bob: unless [`e2e::E2eStore::has_session`], call
//!    [`client::Connection::fetch_keys`] and [`e2e::E2eStore::start_session`];
//!    seal a [`payload::Payload`] (an [`payload::Invite`] carrying the
//!    commitment of [`callkey::commitment`]) with [`e2e::E2eStore::seal`];
//!    [`call::CallMachine::place_call`]; send every message from
//!    [`call::CallMachine::poll_transmit`]. Then [`client::Connection::split`].
//! 5. Feed each received [`client::Incoming::Message`] to
//!    [`call::CallMachine::handle_message`], drain
//!    [`call::CallMachine::poll_event`], open the sealed payloads of
//!    `Incoming`/`Answer`/`Candidate` events with [`e2e::E2eStore::unseal`]
//!    (an [`Error::PeerKeyChanged`] there means: reject with
//!    [`wire::RejectReason::KeyChanged`] and ask the user), and wake up at
//!    [`call::CallMachine::poll_timeout`] for
//!    [`call::CallMachine::handle_timeout`].
//! 6. Check every opened payload with [`payload::Payload::check`]; after
//!    the answer the caller reveals its [`payload::Contribution`]; both
//!    derive K_call ([`callkey::EphemeralSecret::call_key`] over
//!    [`callkey::transcript`]) and show [`callkey::CallKey::sas`]. The caller
//!    is the DTLS server, the callee the DTLS client ([`call::Role`]). The
//!    client crate's `CallSession` does all of this.
//! 7. When ICE fails, tunnel DTLS/SRTP datagrams with
//!    [`client::Sender::try_send_relay`]; they arrive as
//!    [`client::Incoming::Relay`]. Report [`call::CallMachine::media_connected`]
//!    / [`call::CallMachine::media_failed`]; end with
//!    [`call::CallMachine::hangup`].
//!
//! The operator's side: [`certs::CertificateAuthority`] (`ca init`,
//! `ca issue <user>` with [`profile::Profile::write`]) and
//! `server::Server` / `server::run` (`server`, or embedded for a demo; the
//! `server` feature, on by default).

pub mod call;
pub mod callkey;
pub mod certs;
pub mod client;
pub mod e2e;
mod envelope;
pub mod payload;
pub mod profile;
#[cfg(feature = "server")]
pub mod server;
pub mod uri;
pub mod wire;

#[doc(hidden)]
pub mod fuzzing;

use wire::{ErrorCode, UserId};

/// Everything that can go wrong in this crate.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    // peer or server misbehaviour
    /// The peer's identity key differs from the pinned one; the user must accept it
    /// ([`e2e::E2eStore::accept_new_key`]) before calls with this peer go on.
    PeerKeyChanged {
        /// The peer.
        user: UserId,
    },
    /// A key bundle's signatures do not verify.
    BadSignature,
    /// A sealed message could not be opened (altered, replayed, or not for us).
    DecryptFailed,
    /// An opened payload is not a valid payload.
    BadPayload(String),
    /// An invite's timestamp is outside the freshness window: it never rings.
    StaleInvite,
    /// An invite whose call id was already seen: a replay, it never rings.
    ReplayedInvite,
    /// A DTLS fingerprint is not `sha-256` followed by 32 hex pairs.
    BadFingerprint,
    /// The server answered with an error.
    Server {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The server sent something that breaks the protocol.
    Protocol(String),
    /// The connection is closed.
    Closed,
    /// The server sent nothing, not even a pong to our pings, for this
    /// long: the connection is taken as lost (its path may have died).
    Unresponsive(std::time::Duration),
    // local problems and API misuse
    /// No session with that user: fetch their keys and start one.
    NoSession {
        /// The peer.
        user: UserId,
    },
    /// The call machine cannot do that in its current state.
    InvalidState(&'static str),
    /// Profile or store files could not be read or written.
    Storage(Cause),
    /// Certificates or keys could not be created or parsed.
    Certificate(Cause),
    /// TLS set-up failed.
    Tls(Cause),
    /// Network I/O failed (connect, handshake, bind).
    Io(std::io::Error),
    /// The key directory (SQLite) failed.
    Database(Cause),
    /// A setting is wrong (a server flag, the contents of a file it names).
    Config(Cause),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::PeerKeyChanged { user } => write!(
                f,
                "the identity key of {user} changed since it was first seen; refusing until you \
                 accept the new key: run `cryptic-call trust {user}` to compare and accept it"
            ),
            Error::BadSignature => f.write_str("key bundle signature does not verify"),
            Error::DecryptFailed => f.write_str("sealed payload could not be opened"),
            Error::BadPayload(e) => write!(f, "bad payload: {e}"),
            Error::StaleInvite => f.write_str(
                "the invite's time is more than two minutes from ours (a replay, or a clock far off)",
            ),
            Error::ReplayedInvite => f.write_str("this invite was already seen: a replay"),
            Error::BadFingerprint => f.write_str("malformed DTLS fingerprint"),
            Error::Server { code, message } => write!(f, "server error {code:?}: {message}"),
            Error::Protocol(e) => write!(f, "protocol violation: {e}"),
            Error::Closed => f.write_str("connection closed"),
            Error::Unresponsive(d) => write!(
                f,
                "the server sent nothing for {} s, not even a pong to our pings: connection lost",
                d.as_secs()
            ),
            Error::NoSession { user } => write!(f, "no end-to-end session with {user}"),
            Error::InvalidState(e) => write!(f, "invalid state: {e}"),
            Error::Storage(e) => write!(f, "storage: {e}"),
            Error::Certificate(e) => write!(f, "certificate: {e}"),
            Error::Tls(e) => write!(f, "tls: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::Database(e) => write!(f, "key directory: {e}"),
            Error::Config(e) => write!(f, "configuration: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Storage(c)
            | Error::Certificate(c)
            | Error::Tls(c)
            | Error::Database(c)
            | Error::Config(c) => c.source(),
            _ => None,
        }
    }
}

/// What failed, in words, and the error underneath when there is one (kept
/// as the [`std::error::Error::source`] of [`Error`]).
#[derive(Debug)]
pub struct Cause {
    what: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A cause with no error underneath.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            source: None,
        }
    }

    /// `what` failed because of `source`.
    pub fn because(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(s) if self.what.is_empty() => write!(f, "{s}"),
            Some(s) => write!(f, "{}: {s}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl From<String> for Cause {
    fn from(what: String) -> Self {
        Cause::new(what)
    }
}

impl From<&str> for Cause {
    fn from(what: &str) -> Self {
        Cause::new(what)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
