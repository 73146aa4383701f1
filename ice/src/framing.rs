//! STUN and ChannelData messages on a byte stream (TURN over TCP or TLS,
//! RFC 8656 sections 6.2 and 12.5), sans-IO.
//!
//! A stream carries whole messages back to back. Each says its own length:
//!
//! ```text
//! STUN         first byte 0b00xxxxxx  20-byte header, length at bytes 2..4,
//!                                     magic cookie at 4..8: 20 + length bytes
//! ChannelData  first byte 0x40..=0x4F length at bytes 2..4: 4 + length bytes,
//!                                     then padding to a multiple of 4
//!                                     (always present on a stream)
//! ```
//!
//! Anything else at a message boundary means the stream lost its framing:
//! there is no way to find the next message again, so the decoder fails for
//! good and the connection must be closed. A message longer than
//! [`MAX_MESSAGE`] is skipped without being buffered (its length is known),
//! so memory stays bounded whatever the peer sends.

use crate::stun::MAGIC_COOKIE;

/// Longest message the decoder hands out; longer ones are skipped.
pub const MAX_MESSAGE: usize = 4096;
/// Bytes the decoder holds at most between [`StreamDecoder::push`]es.
const MAX_BUFFERED: usize = 4 * MAX_MESSAGE;

/// Why a stream cannot be read any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A message began with this byte, which starts neither STUN nor
    /// ChannelData: the peer (or something on the path) broke the framing.
    NotAMessage(u8),
    /// A STUN header without the magic cookie, or with a length that is not
    /// a multiple of 4.
    BadStunHeader,
    /// The caller pushed more than the decoder holds without draining it
    /// with [`StreamDecoder::next_message`] (API misuse).
    Overfull,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAMessage(b) => write!(
                f,
                "stream framing lost: a message cannot start with {b:#04x}"
            ),
            Self::BadStunHeader => f.write_str("stream framing lost: bad STUN header"),
            Self::Overfull => f.write_str("stream decoder not drained"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Splits the bytes of a TURN stream into whole messages.
///
/// # How to drive it
///
/// Feed what the connection read with [`push`](Self::push), then call
/// [`next_message`](Self::next_message) until it returns `Ok(None)`; each
/// `Some` is one whole STUN message or one ChannelData message (with its
/// padding), ready for the agent. After an `Err` the decoder stays failed
/// and the stream should be closed.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// Bytes of an oversized message still to skip.
    skip: usize,
    failed: Option<FramingError>,
}

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Skipping needs no buffering.
        let skipped = self.skip.min(bytes.len());
        if self.buf.is_empty() && skipped > 0 {
            self.skip -= skipped;
            return self.push(&bytes[skipped..]);
        }
        if self.buf.len() + bytes.len() > MAX_BUFFERED {
            self.failed = Some(FramingError::Overfull);
            return Err(FramingError::Overfull);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<&[u8]>, FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        loop {
            let avail = &self.buf[self.start..];
            if self.skip > 0 {
                let n = self.skip.min(avail.len());
                self.skip -= n;
                self.start += n;
                if self.skip > 0 {
                    return Ok(None);
                }
                continue;
            }
            let len = match message_len(avail) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            };
            if len > MAX_MESSAGE {
                tracing::debug!(len, "skipping an oversized message on a TURN stream");
                self.skip = len;
                continue;
            }
            if avail.len() < len {
                return Ok(None);
            }
            let at = self.start;
            self.start += len;
            return Ok(Some(&self.buf[at..at + len]));
        }
    }
}

/// The length on the stream of the message starting `data` (padding
/// included), `None` while its header is incomplete.
fn message_len(data: &[u8]) -> Result<Option<usize>, FramingError> {
    let Some(&first) = data.first() else {
        return Ok(None);
    };
    match first {
        0..=3 => {
            if data.len() < 8 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
            let cookie = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            if cookie != MAGIC_COOKIE || !len.is_multiple_of(4) {
                return Err(FramingError::BadStunHeader);
            }
            Ok(Some(20 + len))
        }
        0x40..=0x4F => {
            if data.len() < 4 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
            Ok(Some(4 + len.div_ceil(4) * 4))
        }
        b => Err(FramingError::NotAMessage(b)),
    }
}

/// Frames `payload` as ChannelData for a stream: padded with zeros to a
/// multiple of 4 bytes (RFC 8656 section 12.5). `None` when `out` is too
/// small or the payload longer than 65535 bytes.
pub(crate) fn write_channel_data_padded(
    channel: u16,
    payload: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let n = crate::stun::ChannelData::write(channel, payload, out)?;
    let padded = n.div_ceil(4) * 4;
    out.get_mut(n..padded)?.fill(0);
    Some(padded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stun(len: u16) -> Vec<u8> {
        let mut m = vec![0, 1];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(9, usize::from(len)));
        m
    }

    fn drain(d: &mut StreamDecoder) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            out.push(m.to_vec());
        }
        out
    }

    #[test]
    fn splits_stun_and_padded_channel_data_fed_one_byte_at_a_time() {
        let mut stream = stun(8);
        let mut cd = [0u8; 12];
        let n = write_channel_data_padded(0x4001, b"hello", &mut cd).unwrap();
        assert_eq!(n, 12, "4 + 5 bytes padded to 12");
        stream.extend_from_slice(&cd[..n]);
        stream.extend_from_slice(&stun(0));
        let mut d = StreamDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b)).unwrap();
            got.extend(drain(&mut d));
        }
        assert_eq!(got, vec![stun(8), cd[..12].to_vec(), stun(0)]);
        let parsed = crate::stun::ChannelData::parse(&got[1]).unwrap();
        assert_eq!(parsed.payload, b"hello");
    }

    #[test]
    fn garbage_at_a_boundary_fails_for_good() {
        let mut d = StreamDecoder::new();
        d.push(&[0x80, 1, 2, 3]).unwrap();
        assert_eq!(d.next_message(), Err(FramingError::NotAMessage(0x80)));
        assert!(d.push(&stun(0)).is_err());
        let mut d = StreamDecoder::new();
        let mut bad = stun(0);
        bad[4] = 0;
        d.push(&bad).unwrap();
        assert_eq!(d.next_message(), Err(FramingError::BadStunHeader));
    }

    #[test]
    fn an_oversized_message_is_skipped_without_buffering() {
        let mut d = StreamDecoder::new();
        let mut big = vec![0x40, 0x00];
        big.extend_from_slice(&60_000u16.to_be_bytes());
        d.push(&big).unwrap();
        assert_eq!(d.next_message(), Ok(None));
        for _ in 0..60 {
            d.push(&[1u8; 1000]).unwrap();
            assert_eq!(d.next_message(), Ok(None));
            assert!(d.buf.len() <= MAX_BUFFERED);
        }
        d.push(&stun(4)).unwrap();
        assert_eq!(drain(&mut d), vec![stun(4)]);
    }

    #[test]
    fn pushing_without_draining_is_refused_not_grown() {
        let mut d = StreamDecoder::new();
        let mut r = Ok(());
        for _ in 0..200 {
            r = d.push(&stun(100));
            if r.is_err() {
                break;
            }
        }
        assert_eq!(r, Err(FramingError::Overfull));
    }
}
