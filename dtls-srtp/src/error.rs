//! The one error type of this crate.

use core::fmt;

/// Everything that can go wrong in this crate.
///
/// The variants fall into two groups that callers treat differently:
///
/// * **Peer misbehaviour or network damage** (a malformed, truncated, forged,
///   tampered or replayed packet): the packet must be dropped and the call
///   goes on. [`Error::is_peer_fault`] is `true` for these.
/// * **API misuse or exhausted state** (a buffer too small, a key of the wrong
///   length, an index space used up): the caller has a bug or must re-key.
///
/// AEAD authentication cannot tell *where* a packet was changed: a tampered
/// header, a tampered payload, a tampered tag and a packet sealed with another
/// key all fail the same check and are all reported as
/// [`Error::AuthenticationFailed`]. What can be told apart is: a packet too
/// short to hold a header or a tag ([`Error::Truncated`]), a header that does
/// not parse ([`Error::Malformed`]), and a replay ([`Error::Replayed`],
/// [`Error::TooOld`]), each checked before the cipher runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before a field it announces: `needed` bytes were
    /// required where only `got` were present.
    Truncated {
        /// Bytes the structure needs at this point.
        needed: usize,
        /// Bytes that were there.
        got: usize,
    },
    /// The input is long enough but a field holds a value the format forbids;
    /// the string says which rule was broken.
    Malformed(&'static str),
    /// The SRTP or SRTCP authentication tag did not verify: the packet was
    /// forged, tampered with in any byte, or sealed under another key.
    AuthenticationFailed,
    /// The packet's index was already received inside the replay window.
    Replayed {
        /// The packet index (48-bit SRTP index or 31-bit SRTCP index).
        index: u64,
    },
    /// The packet's index lies behind the replay window, so whether it was
    /// already received can no longer be told; it is rejected.
    TooOld {
        /// The packet index (48-bit SRTP index or 31-bit SRTCP index).
        index: u64,
    },
    /// A new SSRC arrived while the context already tracks its configured
    /// maximum number of streams.
    TooManyStreams,
    /// A fingerprint received in signaling is not of the form
    /// `sha-256 AA:BB:...`; the string says what is wrong.
    BadFingerprint(&'static str),
    /// The peer's DTLS certificate does not have the fingerprint received
    /// end to end: someone between the two users terminated DTLS with their
    /// own certificate. The call must be aborted; no key was released.
    FingerprintMismatch,
    /// The DTLS handshake did not complete within its configured bound.
    HandshakeTimeout,
    /// The DTLS handshake failed (the peer sent an alert, broke the
    /// protocol, or the transport closed); the string is the DTLS layer's
    /// description.
    Handshake(String),
    /// The handshake completed without the SRTP protection profile we
    /// require (`use_srtp` with SRTP_AEAD_AES_128_GCM).
    NoSrtpProfile,

    /// API misuse: the output buffer cannot hold the result.
    BufferTooSmall {
        /// Bytes the output needs.
        needed: usize,
        /// Bytes the caller provided.
        got: usize,
    },
    /// API misuse: a master key or salt has the wrong length for the profile.
    BadKeyLength {
        /// Length the profile requires.
        expected: usize,
        /// Length that was given.
        got: usize,
    },
    /// API misuse: a configuration value is out of its allowed range; the
    /// string names it.
    BadConfig(&'static str),
    /// API misuse: the caller asked to protect a packet whose index was
    /// already used under this key. Sealing it would reuse an AEAD nonce,
    /// which breaks AES-GCM and ChaCha20-Poly1305 entirely, so it is refused.
    IndexReused {
        /// The index that was already used.
        index: u64,
    },
    /// The key has protected as many packets as its index space allows
    /// (2^48 SRTP or 2^31 SRTCP packets per SSRC): the session must re-key.
    KeyExhausted,
    /// The cryptographic backend failed in a way that is not an
    /// authentication failure (for example it refused a key).
    Crypto,
    /// Generating the per-call certificate failed; the string says why.
    Certificate(String),
}

impl Error {
    /// `true` when the error was caused by what arrived from the network
    /// (drop the packet and carry on), `false` when it is the caller's
    /// misuse or an exhausted key.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Error::Truncated { .. }
                | Error::Malformed(_)
                | Error::AuthenticationFailed
                | Error::Replayed { .. }
                | Error::TooOld { .. }
                | Error::TooManyStreams
                | Error::BadFingerprint(_)
                | Error::FingerprintMismatch
                | Error::HandshakeTimeout
                | Error::Handshake(_)
                | Error::NoSrtpProfile
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { needed, got } => {
                write!(f, "truncated input: needed {needed} bytes, got {got}")
            }
            Error::Malformed(what) => write!(f, "malformed packet: {what}"),
            Error::AuthenticationFailed => f.write_str("authentication tag did not verify"),
            Error::Replayed { index } => write!(f, "replayed packet (index {index})"),
            Error::TooOld { index } => {
                write!(f, "packet index {index} is behind the replay window")
            }
            Error::TooManyStreams => f.write_str("too many SSRC streams for this context"),
            Error::BufferTooSmall { needed, got } => {
                write!(
                    f,
                    "output buffer too small: needed {needed} bytes, got {got}"
                )
            }
            Error::BadKeyLength { expected, got } => {
                write!(f, "wrong key length: expected {expected} bytes, got {got}")
            }
            Error::BadConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::IndexReused { index } => {
                write!(
                    f,
                    "refusing to protect index {index} twice (AEAD nonce reuse)"
                )
            }
            Error::KeyExhausted => f.write_str("packet index space exhausted: re-key required"),
            Error::Crypto => f.write_str("cryptographic backend failure"),
            Error::BadFingerprint(what) => write!(f, "bad fingerprint: {what}"),
            Error::FingerprintMismatch => f.write_str(
                "the peer's DTLS certificate does not match the fingerprint received end to end",
            ),
            Error::HandshakeTimeout => f.write_str("DTLS handshake timed out"),
            Error::Handshake(why) => write!(f, "DTLS handshake failed: {why}"),
            Error::NoSrtpProfile => {
                f.write_str("DTLS handshake negotiated no acceptable SRTP protection profile")
            }
            Error::Certificate(why) => write!(f, "certificate generation failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Checks that `buf` holds at least `needed` bytes.
#[inline]
pub(crate) fn need(buf: &[u8], needed: usize) -> Result<(), Error> {
    if buf.len() < needed {
        Err(Error::Truncated {
            needed,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}
