//! The client's errors: whose fault, in plain words, with their sources.

use std::fmt;

/// Why a call could not run. Outcomes of calls that did run (rejected,
/// busy, failed media...) are not errors: they are in the call's report.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The signaling connection failed or the server refused a request.
    Signaling(cryptic_signal::Error),
    /// A local socket could not be opened.
    Io(std::io::Error),
    /// The call could not start (no end-to-end session, bad ICE settings).
    Session(crate::session::SessionError),
    /// DTLS could not be set up (certificate generation).
    Dtls(cryptic_dtls_srtp::Error),
    /// The microphone, the speaker or an audio file could not be used.
    Audio(String),
}

impl Error {
    /// Whether the peer or the server caused it (rather than this machine
    /// or its user).
    pub fn is_peer_fault(&self) -> bool {
        match self {
            Error::Signaling(e) => matches!(
                e,
                cryptic_signal::Error::PeerKeyChanged { .. }
                    | cryptic_signal::Error::BadSignature
                    | cryptic_signal::Error::DecryptFailed
                    | cryptic_signal::Error::BadPayload(_)
                    | cryptic_signal::Error::Server { .. }
                    | cryptic_signal::Error::Protocol(_)
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Signaling(e) => write!(f, "signaling: {e}"),
            Error::Io(e) => write!(f, "network: {e}"),
            Error::Session(e) => write!(f, "{e}"),
            Error::Dtls(e) => write!(f, "DTLS: {e}"),
            Error::Audio(e) => write!(f, "audio: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Signaling(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Session(e) => Some(e),
            Error::Dtls(e) => Some(e),
            Error::Audio(_) => None,
        }
    }
}

impl From<crate::session::SessionError> for Error {
    fn from(e: crate::session::SessionError) -> Self {
        Error::Session(e)
    }
}
