//! STUN (RFC 8489) and TURN framing helpers on top of `stun-rs`, plus the
//! RFC 7983 first-byte demultiplexer and ChannelData (RFC 8656 section 12).

use std::net::SocketAddr;
use std::ops::Range;

use stun_rs::attributes::stun::{Fingerprint, MessageIntegrity, XorMappedAddress};
use stun_rs::{
    DecoderContextBuilder, HMACKey, MessageDecoderBuilder, MessageEncoderBuilder, StunAttribute,
    StunMessage,
};

/// The STUN magic cookie (RFC 8489 section 5).
pub(crate) const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Largest STUN message we build or accept.
pub(crate) const MAX_STUN: usize = 1280;

/// What a datagram on the shared socket is, by its first byte (RFC 7983, with
/// TURN ChannelData in 64..=79 as RFC 7983 section 7 assigns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketKind {
    /// 0..=3: STUN (ICE checks, TURN control).
    Stun,
    /// 20..=63: DTLS.
    Dtls,
    /// 64..=79: TURN ChannelData.
    ChannelData,
    /// 128..=191: RTP or RTCP (SRTP/SRTCP).
    Rtp,
    /// Anything else: dropped.
    Other,
}

impl PacketKind {
    /// Classifies a datagram by its first byte.
    pub fn of(datagram: &[u8]) -> Self {
        match datagram.first() {
            Some(0..=3) => Self::Stun,
            Some(20..=63) => Self::Dtls,
            Some(64..=79) => Self::ChannelData,
            Some(128..=191) => Self::Rtp,
            _ => Self::Other,
        }
    }

    /// Whether this kind is application media (DTLS or SRTP/SRTCP).
    pub fn is_media(self) -> bool {
        matches!(self, Self::Dtls | Self::Rtp)
    }
}

/// The fixed STUN header, read without decoding attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    /// Message type (class and method bits).
    pub(crate) msg_type: u16,
    /// Transaction id.
    pub(crate) txid: [u8; 12],
}

impl Header {
    pub(crate) fn method(&self) -> u16 {
        let t = self.msg_type;
        (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    }
    /// 0 request, 1 indication, 2 success, 3 error.
    pub(crate) fn class(&self) -> u8 {
        let t = self.msg_type;
        (((t >> 4) & 1) | ((t >> 7) & 2)) as u8
    }
}

/// Reads the STUN header if `data` is framed as one STUN message.
pub(crate) fn header(data: &[u8]) -> Option<Header> {
    if data.len() < 20 || data.len() > 4096 || data[0] & 0xC0 != 0 {
        return None;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    let cookie = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if cookie != MAGIC_COOKIE || !len.is_multiple_of(4) || 20 + len != data.len() {
        return None;
    }
    let mut txid = [0; 12];
    txid.copy_from_slice(&data[8..20]);
    Some(Header {
        msg_type: u16::from_be_bytes([data[0], data[1]]),
        txid,
    })
}

/// Finds the value of the first attribute of type `ty` by walking the raw
/// attribute list of a framed message; returns its byte range in `data`.
pub(crate) fn find_attribute(data: &[u8], ty: u16) -> Option<Range<usize>> {
    let mut pos = 20;
    while pos + 4 <= data.len() {
        let t = u16::from_be_bytes([data[pos], data[pos + 1]]);
        let len = u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
        let start = pos + 4;
        let end = start.checked_add(len)?;
        if end > data.len() {
            return None;
        }
        if t == ty {
            return Some(start..end);
        }
        pos = start + len.div_ceil(4) * 4;
    }
    None
}

/// FINGERPRINT's attribute type and XOR constant (RFC 8489 section 14.7).
const FINGERPRINT: u16 = 0x8028;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// CRC-32 (ISO/HDLC, the one of FINGERPRINT), bit by bit: STUN messages
/// are at most a few kilobytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Whether the FINGERPRINT of a framed message, if it has one, is its last
/// attribute and matches the CRC of what precedes it.
pub(crate) fn fingerprint_ok(data: &[u8]) -> bool {
    let Some(range) = find_attribute(data, FINGERPRINT) else {
        return true;
    };
    if range.len() != 4 || range.end != data.len() {
        return false;
    }
    let value = u32::from_be_bytes([
        data[range.start],
        data[range.start + 1],
        data[range.start + 2],
        data[range.start + 3],
    ]);
    crc32(&data[..range.start - 4]) ^ FINGERPRINT_XOR == value
}

/// Decodes a STUN message. A FINGERPRINT, when present, must match (with or
/// without a key); with a key, MESSAGE-INTEGRITY is verified too.
pub(crate) fn decode(data: &[u8], key: Option<&HMACKey>) -> Option<StunMessage> {
    header(data)?;
    if !fingerprint_ok(data) {
        return None;
    }
    let decoder = match key {
        Some(key) => MessageDecoderBuilder::default()
            .with_context(
                DecoderContextBuilder::default()
                    .with_key(key.clone())
                    .with_validation()
                    .build(),
            )
            .build(),
        None => MessageDecoderBuilder::default().build(),
    };
    decoder.decode(data).ok().map(|(m, _)| m)
}

/// Whether a decoded message carries MESSAGE-INTEGRITY.
pub(crate) fn has_integrity(msg: &StunMessage) -> bool {
    msg.get::<MessageIntegrity>().is_some()
}

/// Comprehension-required attribute types this decoder did not understand.
pub(crate) fn unknown_required(msg: &StunMessage) -> Vec<u16> {
    msg.attributes()
        .iter()
        .filter_map(|a| match a {
            StunAttribute::Unknown(u) if u.attribute_type().is_comprehension_required() => {
                Some(u.attribute_type().as_u16())
            }
            _ => None,
        })
        .collect()
}

/// XOR-MAPPED-ADDRESS of a message, if present.
pub(crate) fn xor_mapped(msg: &StunMessage) -> Option<SocketAddr> {
    msg.get::<XorMappedAddress>()?
        .as_xor_mapped_address()
        .ok()
        .map(|a| *a.socket_address())
}

/// Error code of an error response.
pub(crate) fn error_code(msg: &StunMessage) -> Option<u16> {
    msg.get::<stun_rs::attributes::stun::ErrorCode>()?
        .as_error_code()
        .ok()
        .map(|e| e.error_code().error_code())
}

/// Encodes a message, appending MESSAGE-INTEGRITY (when `key` is given) and
/// FINGERPRINT.
pub(crate) fn encode(
    builder: stun_rs::StunMessageBuilder,
    key: Option<&HMACKey>,
) -> Option<Vec<u8>> {
    let mut builder = builder;
    if let Some(key) = key {
        builder = builder.with_attribute(MessageIntegrity::new(key.clone()));
    }
    let msg = builder.with_attribute(Fingerprint::default()).build();
    let mut buf = vec![0u8; MAX_STUN];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A parsed TURN ChannelData message (RFC 8656 section 12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// Channel number, 0x4000..=0x4FFF.
    pub channel: u16,
    /// Application data.
    pub payload: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Parses a ChannelData message; UDP padding after the data is allowed.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        if data.len() < 4 {
            return None;
        }
        let channel = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        if !(0x4000..=0x4FFF).contains(&channel) || 4 + len > data.len() {
            return None;
        }
        Some(Self {
            channel,
            payload: &data[4..4 + len],
        })
    }

    /// Writes the framing of `payload` on `channel` into `out`; returns the
    /// length written, or `None` when `out` is too small or the payload is
    /// longer than 65535 bytes.
    pub fn write(channel: u16, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        let len = u16::try_from(payload.len()).ok()?;
        let total = 4 + payload.len();
        if out.len() < total {
            return None;
        }
        out[0..2].copy_from_slice(&channel.to_be_bytes());
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[4..total].copy_from_slice(payload);
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_byte_as_rfc7983_says() {
        assert_eq!(PacketKind::of(&[0]), PacketKind::Stun);
        assert_eq!(PacketKind::of(&[22]), PacketKind::Dtls);
        assert_eq!(PacketKind::of(&[0x40]), PacketKind::ChannelData);
        assert_eq!(PacketKind::of(&[0x80]), PacketKind::Rtp);
        assert_eq!(PacketKind::of(&[200]), PacketKind::Other);
        assert_eq!(PacketKind::of(&[]), PacketKind::Other);
    }

    #[test]
    fn channel_data_round_trips_and_rejects_short_frames() {
        let mut buf = [0u8; 16];
        let n = ChannelData::write(0x4001, b"hello", &mut buf).unwrap();
        let cd = ChannelData::parse(&buf[..n]).unwrap();
        assert_eq!(cd.channel, 0x4001);
        assert_eq!(cd.payload, b"hello");
        assert!(ChannelData::parse(&buf[..n - 1]).is_none());
        assert!(ChannelData::parse(&[0x50, 0, 0, 0]).is_none());
    }

    #[test]
    fn a_wrong_or_misplaced_fingerprint_fails_decoding() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
        let b = stun_rs::StunMessageBuilder::new(
            stun_rs::methods::BINDING,
            stun_rs::MessageClass::Request,
        );
        let good = encode(b, None).unwrap();
        assert!(fingerprint_ok(&good));
        assert!(decode(&good, None).is_some());
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!fingerprint_ok(&bad));
        assert!(decode(&bad, None).is_none());
        // A message without FINGERPRINT is fine; one with it in the middle
        // is not.
        let mut bare = good[..20].to_vec();
        bare[3] = 0;
        assert!(fingerprint_ok(&bare));
        let mut middle = good.clone();
        middle.extend_from_slice(&[0x80, 0x22, 0, 4, b'a', b'b', b'c', b'd']);
        let len = (middle.len() - 20) as u16;
        middle[2..4].copy_from_slice(&len.to_be_bytes());
        assert!(!fingerprint_ok(&middle));
    }

    #[test]
    fn header_method_and_class_split_the_type_bits() {
        // Binding success response 0x0101, Allocate error 0x0113.
        let h = Header {
            msg_type: 0x0101,
            txid: [0; 12],
        };
        assert_eq!((h.method(), h.class()), (1, 2));
        let h = Header {
            msg_type: 0x0113,
            txid: [0; 12],
        };
        assert_eq!((h.method(), h.class()), (3, 3));
        let h = Header {
            msg_type: 0x0017,
            txid: [0; 12],
        };
        assert_eq!((h.method(), h.class()), (7, 1));
    }
}
