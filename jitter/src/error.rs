//! The crate's one error type.

use core::fmt;

/// Everything that can go wrong in this crate.
///
/// Late, duplicate and out-of-window packets are not errors: they are normal
/// network behaviour and are reported as an [`Arrival`](crate::Arrival) and
/// counted in [`Stats`](crate::Stats).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Peer misbehaviour: a packet's payload is longer than
    /// [`Config::max_payload`](crate::Config::max_payload); it was dropped.
    PayloadTooLarge {
        /// Length of the offending payload, in bytes.
        len: usize,
        /// The configured maximum, in bytes.
        max: usize,
    },
    /// API misuse: a [`Config`](crate::Config) field is out of range; the
    /// string names the field and the rule.
    InvalidConfig(&'static str),
    /// API misuse: a PCM hand-off was asked for a zero capacity.
    ZeroCapacity,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the {max}-byte slot")
            }
            Self::InvalidConfig(what) => write!(f, "invalid jitter buffer config: {what}"),
            Self::ZeroCapacity => f.write_str("PCM hand-off capacity must be at least one sample"),
        }
    }
}

impl std::error::Error for Error {}
