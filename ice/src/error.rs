//! The crate's error type.

use std::fmt;

/// Errors returned by the ICE agent and its parsers.
///
/// Misuse of the API (`InvalidConfig`, `InvalidCredentials`) is kept apart
/// from bad input that came from the peer through signaling
/// (`InvalidCandidate`, `UnsupportedCandidate`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A `candidate:` attribute string is malformed (RFC 8839 grammar); the
    /// text says which field.
    InvalidCandidate(&'static str),
    /// A well-formed candidate this agent does not use (TCP, FQDN or mDNS
    /// address, component other than 1).
    UnsupportedCandidate(&'static str),
    /// ICE ufrag or password outside RFC 8839 limits (ufrag 4..=256 and
    /// password 22..=256 ice-chars).
    InvalidCredentials,
    /// The agent holds as many remote candidates as it accepts.
    TooManyCandidates,
    /// A configuration value is out of range.
    InvalidConfig(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCandidate(w) => write!(f, "invalid ICE candidate: {w}"),
            Self::UnsupportedCandidate(w) => write!(f, "unsupported ICE candidate: {w}"),
            Self::InvalidCredentials => f.write_str("invalid ICE credentials"),
            Self::TooManyCandidates => f.write_str("too many remote candidates"),
            Self::InvalidConfig(w) => write!(f, "invalid ICE configuration: {w}"),
        }
    }
}

impl std::error::Error for Error {}
