//! RTP packets (RFC 3550 section 5.1) with header extensions (RFC 8285).
//!
//! [`RtpPacket::parse`] borrows the datagram and checks every length field
//! once; its accessors then read straight from the borrowed bytes. Writing
//! goes the other way: [`RtpHeader::write`] serialises a header (with CSRCs
//! and an extension block) into a caller's buffer, and
//! [`ExtensionWriter`] builds the RFC 8285 elements of that block.

use crate::error::{need, Error};

/// The fixed part of every RTP header, in bytes.
pub const FIXED_HEADER_LEN: usize = 12;

/// `defined by profile` value of an RFC 8285 one-byte-header extension block.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// `defined by profile` value of an RFC 8285 two-byte-header extension block
/// (the low four bits, "appbits", are free for the application).
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Length of the RTP header at the start of `buf` (fixed part, CSRC list and
/// extension block), checking version and every length field but not the
/// padding, which SRTP keeps encrypted.
///
/// This is the only parsing SRTP needs before it authenticates a packet: the
/// header is the associated data.
#[inline]
pub fn header_len(buf: &[u8]) -> Result<usize, Error> {
    need(buf, FIXED_HEADER_LEN)?;
    if buf[0] >> 6 != 2 {
        return Err(Error::Malformed("RTP version is not 2"));
    }
    let mut len = FIXED_HEADER_LEN + 4 * usize::from(buf[0] & 0x0f);
    if buf[0] & 0x10 != 0 {
        need(buf, len + 4)?;
        let words = usize::from(be16(buf, len + 2));
        len += 4 + 4 * words;
    }
    need(buf, len)?;
    Ok(len)
}

/// A parsed RTP packet borrowing its datagram.
///
/// Constructed only by [`RtpPacket::parse`], which has checked that the
/// version is 2, the CSRC list, the extension block and the padding all fit,
/// so every accessor is infallible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    header_len: usize,
    payload_end: usize,
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet (version 2) from a whole datagram.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let header_len = header_len(buf)?;
        let mut payload_end = buf.len();
        if buf[0] & 0x20 != 0 {
            // The last octet counts the padding octets, itself included.
            let pad = usize::from(buf[buf.len() - 1]);
            if pad == 0 {
                return Err(Error::Malformed("RTP padding count of zero"));
            }
            if pad > buf.len() - header_len {
                return Err(Error::Malformed("RTP padding longer than the payload"));
            }
            payload_end -= pad;
        }
        let packet = RtpPacket {
            buf,
            header_len,
            payload_end,
        };
        if let Some(ext) = packet.extension() {
            // Reject malformed RFC 8285 element lists up front so that
            // iterating them later cannot fail halfway.
            for element in ext.elements() {
                element?;
            }
        }
        Ok(packet)
    }

    /// The whole datagram this packet was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The header bytes: fixed part, CSRC list and extension block.
    pub fn header(&self) -> &'a [u8] {
        &self.buf[..self.header_len]
    }

    /// The payload, without any padding.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.payload_end]
    }

    /// Number of padding octets at the end (0 when the P bit is clear).
    pub fn padding_len(&self) -> usize {
        self.buf.len() - self.payload_end
    }

    /// The marker bit (for audio: the first packet after silence).
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// The 7-bit payload type.
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7f
    }

    /// The 16-bit sequence number.
    pub fn sequence_number(&self) -> u16 {
        be16(self.buf, 2)
    }

    /// The 32-bit media timestamp.
    pub fn timestamp(&self) -> u32 {
        be32(self.buf, 4)
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        be32(self.buf, 8)
    }

    /// The contributing sources, in order.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        let count = usize::from(self.buf[0] & 0x0f);
        let list = &self.buf[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * count];
        list.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// The header extension block, when the X bit is set.
    pub fn extension(&self) -> Option<HeaderExtension<'a>> {
        if self.buf[0] & 0x10 == 0 {
            return None;
        }
        let at = FIXED_HEADER_LEN + 4 * usize::from(self.buf[0] & 0x0f);
        Some(HeaderExtension {
            profile: be16(self.buf, at),
            data: &self.buf[at + 4..self.header_len],
        })
    }
}

/// The header extension block of an RTP packet (RFC 3550 section 5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    /// The 16-bit "defined by profile" field: [`ONE_BYTE_PROFILE`],
    /// [`TWO_BYTE_PROFILE`] (with appbits) or anything else.
    pub profile: u16,
    /// The extension data, a whole number of 32-bit words.
    pub data: &'a [u8],
}

/// The form of an RFC 8285 extension block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionForm {
    /// One-byte headers (profile `0xBEDE`): IDs 1..=14, 1..=16 data bytes.
    OneByte,
    /// Two-byte headers (profile `0x100X`): IDs 1..=255, 0..=255 data bytes.
    TwoByte,
    /// Not an RFC 8285 block: the data is opaque to us.
    Other,
}

impl<'a> HeaderExtension<'a> {
    /// Which RFC 8285 form this block uses, if any.
    pub fn form(&self) -> ExtensionForm {
        if self.profile == ONE_BYTE_PROFILE {
            ExtensionForm::OneByte
        } else if self.profile & 0xfff0 == TWO_BYTE_PROFILE {
            ExtensionForm::TwoByte
        } else {
            ExtensionForm::Other
        }
    }

    /// The RFC 8285 elements of the block. Yields nothing for a block of
    /// another profile. Padding bytes are skipped; an element that overruns
    /// the block yields an error and ends the iteration.
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            form: self.form(),
            data: self.data,
            pos: 0,
        }
    }

    /// The data of the first element with this ID, if present and
    /// well-formed.
    pub fn get(&self, id: u8) -> Option<&'a [u8]> {
        self.elements()
            .map_while(Result::ok)
            .find(|e| e.id == id)
            .map(|e| e.data)
    }
}

/// One RFC 8285 header extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// The local identifier negotiated for this extension.
    pub id: u8,
    /// The element's data.
    pub data: &'a [u8],
}

/// Iterator over the elements of a [`HeaderExtension`].
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    form: ExtensionForm,
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Element<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.data.get(self.pos..)?;
            let (&first, _) = rest.split_first()?;
            match self.form {
                ExtensionForm::Other => return None,
                ExtensionForm::OneByte => {
                    if first == 0 {
                        self.pos += 1;
                        continue;
                    }
                    let id = first >> 4;
                    if id == 15 {
                        // RFC 8285 section 4.2: ID 15 stops processing.
                        self.pos = self.data.len();
                        return None;
                    }
                    let len = usize::from(first & 0x0f) + 1;
                    return Some(self.take(id, 1, len));
                }
                ExtensionForm::TwoByte => {
                    if first == 0 {
                        self.pos += 1;
                        continue;
                    }
                    let Some(&len) = rest.get(1) else {
                        self.pos = self.data.len();
                        return Some(Err(Error::Malformed(
                            "two-byte extension element without a length",
                        )));
                    };
                    return Some(self.take(first, 2, usize::from(len)));
                }
            }
        }
    }
}

impl<'a> Elements<'a> {
    fn take(&mut self, id: u8, head: usize, len: usize) -> Result<Element<'a>, Error> {
        let start = self.pos + head;
        let end = start + len;
        if end > self.data.len() {
            self.pos = self.data.len();
            return Err(Error::Malformed("extension element overruns its block"));
        }
        self.pos = end;
        Ok(Element {
            id,
            data: &self.data[start..end],
        })
    }
}

/// An RTP header to serialise with [`RtpHeader::write`]. Its fields are the
/// whole RFC 3550 header, so the struct is exhaustive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader<'a> {
    /// The marker bit.
    pub marker: bool,
    /// The 7-bit payload type.
    pub payload_type: u8,
    /// The sequence number.
    pub sequence_number: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    /// Up to 15 contributing sources.
    pub csrcs: &'a [u32],
    /// An extension block: its profile and its data, which must be a whole
    /// number of 32-bit words (an [`ExtensionWriter`] produces one).
    pub extension: Option<HeaderExtension<'a>>,
}

impl<'a> RtpHeader<'a> {
    /// A header with the given payload type, sequence number, timestamp and
    /// SSRC, no marker, no CSRC and no extension.
    pub fn new(payload_type: u8, sequence_number: u16, timestamp: u32, ssrc: u32) -> Self {
        RtpHeader {
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            ..RtpHeader::default()
        }
    }

    /// Bytes [`RtpHeader::write`] will produce.
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |e| 4 + e.data.len())
    }

    /// Always `false`: a header has at least its fixed twelve bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the header at the start of `out` and returns its length.
    /// The padding bit is left clear: append padding with
    /// [`RtpHeader::write_packet`].
    pub fn write(&self, out: &mut [u8]) -> Result<usize, Error> {
        if self.payload_type > 0x7f {
            return Err(Error::BadConfig("RTP payload type above 127"));
        }
        if self.csrcs.len() > 15 {
            return Err(Error::BadConfig("more than 15 CSRCs"));
        }
        if let Some(ext) = self.extension {
            if ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX) {
                return Err(Error::BadConfig(
                    "extension data is not a whole number of words (or too long)",
                ));
            }
        }
        let len = self.len();
        if out.len() < len {
            return Err(Error::BufferTooSmall {
                needed: len,
                got: out.len(),
            });
        }
        let x = if self.extension.is_some() { 0x10 } else { 0 };
        // The count is at most 15, checked above.
        out[0] = 0x80 | x | (self.csrcs.len() as u8);
        out[1] = (u8::from(self.marker) << 7) | self.payload_type;
        out[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut at = FIXED_HEADER_LEN;
        for csrc in self.csrcs {
            out[at..at + 4].copy_from_slice(&csrc.to_be_bytes());
            at += 4;
        }
        if let Some(ext) = self.extension {
            out[at..at + 2].copy_from_slice(&ext.profile.to_be_bytes());
            // At most u16::MAX words, checked above.
            out[at + 2..at + 4].copy_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out[at + 4..at + 4 + ext.data.len()].copy_from_slice(ext.data);
            at += 4 + ext.data.len();
        }
        debug_assert_eq!(at, len);
        Ok(len)
    }

    /// Writes a whole packet: this header, `payload`, then `padding` octets
    /// of padding (0 for none; the last octet holds the count, so a
    /// non-zero `padding` counts itself). Returns the packet length.
    pub fn write_packet(
        &self,
        payload: &[u8],
        padding: u8,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let total = self.len() + payload.len() + usize::from(padding);
        if out.len() < total {
            return Err(Error::BufferTooSmall {
                needed: total,
                got: out.len(),
            });
        }
        let at = self.write(out)?;
        out[at..at + payload.len()].copy_from_slice(payload);
        if padding > 0 {
            out[0] |= 0x20;
            let pad = &mut out[at + payload.len()..total];
            pad.fill(0);
            pad[pad.len() - 1] = padding;
        }
        Ok(total)
    }
}

/// Builds the data of an RFC 8285 extension block in a caller's buffer.
///
/// ```
/// # use cryptic_dtls_srtp::rtp::{ExtensionWriter, ExtensionForm, RtpHeader, RtpPacket};
/// let mut ext = [0u8; 16];
/// let mut w = ExtensionWriter::new(ExtensionForm::OneByte, &mut ext).unwrap();
/// w.push(1, &[0x80]).unwrap(); // audio level, RFC 6464
/// let block = w.finish();
/// let mut header = RtpHeader::new(111, 7, 960, 0x1234);
/// header.extension = Some(block);
/// let mut buf = [0u8; 64];
/// let n = header.write_packet(b"opus", 0, &mut buf).unwrap();
/// let packet = RtpPacket::parse(&buf[..n]).unwrap();
/// assert_eq!(packet.extension().unwrap().get(1), Some(&[0x80][..]));
/// ```
#[derive(Debug)]
pub struct ExtensionWriter<'a> {
    form: ExtensionForm,
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> ExtensionWriter<'a> {
    /// Starts an empty block of the given form in `buf`.
    pub fn new(form: ExtensionForm, buf: &'a mut [u8]) -> Result<Self, Error> {
        if form == ExtensionForm::Other {
            return Err(Error::BadConfig(
                "ExtensionWriter writes RFC 8285 forms only",
            ));
        }
        Ok(ExtensionWriter { form, buf, len: 0 })
    }

    /// Appends one element.
    pub fn push(&mut self, id: u8, data: &[u8]) -> Result<(), Error> {
        let head = match self.form {
            ExtensionForm::OneByte => {
                if !(1..=14).contains(&id) || data.is_empty() || data.len() > 16 {
                    return Err(Error::BadConfig(
                        "one-byte extension: id 1..=14 and 1..=16 data bytes",
                    ));
                }
                [(id << 4) | (data.len() as u8 - 1), 0]
            }
            _ => {
                if id == 0 || data.len() > 255 {
                    return Err(Error::BadConfig(
                        "two-byte extension: id 1..=255 and 0..=255 data bytes",
                    ));
                }
                [id, data.len() as u8]
            }
        };
        let head = &head[..if self.form == ExtensionForm::OneByte {
            1
        } else {
            2
        }];
        let end = self.len + head.len() + data.len();
        // Room for the element plus the padding `finish` may add.
        let needed = end.next_multiple_of(4);
        if needed > self.buf.len() {
            return Err(Error::BufferTooSmall {
                needed,
                got: self.buf.len(),
            });
        }
        self.buf[self.len..self.len + head.len()].copy_from_slice(head);
        self.buf[self.len + head.len()..end].copy_from_slice(data);
        self.len = end;
        Ok(())
    }

    /// Pads to a whole number of words and returns the block, ready for
    /// [`RtpHeader::extension`].
    pub fn finish(self) -> HeaderExtension<'a> {
        let padded = self.len.next_multiple_of(4);
        // `push` reserved room for this padding.
        self.buf[self.len..padded].fill(0);
        HeaderExtension {
            profile: if self.form == ExtensionForm::OneByte {
                ONE_BYTE_PROFILE
            } else {
                TWO_BYTE_PROFILE
            },
            data: &self.buf[..padded],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_header_fields() {
        let bytes = [
            0x80, 0xe0, 0x12, 0x34, 0, 0, 0x03, 0xc0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3,
        ];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(p.marker());
        assert_eq!(p.payload_type(), 0x60);
        assert_eq!(p.sequence_number(), 0x1234);
        assert_eq!(p.timestamp(), 960);
        assert_eq!(p.ssrc(), 0xdeadbeef);
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(p.csrcs().len(), 0);
        assert!(p.extension().is_none());
    }

    #[test]
    fn round_trips_csrcs_extensions_and_padding() {
        for form in [ExtensionForm::OneByte, ExtensionForm::TwoByte] {
            let mut ext = [0u8; 32];
            let mut w = ExtensionWriter::new(form, &mut ext).unwrap();
            w.push(3, &[9, 8, 7]).unwrap();
            w.push(5, &[1]).unwrap();
            let block = w.finish();
            let csrcs = [1, 2, 0xffff_ffff];
            let header = RtpHeader {
                marker: true,
                csrcs: &csrcs,
                extension: Some(block),
                ..RtpHeader::new(111, 65535, u32::MAX, 42)
            };
            let mut buf = [0u8; 128];
            let n = header.write_packet(b"hello", 4, &mut buf).unwrap();
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs);
            assert_eq!(p.payload(), b"hello");
            assert_eq!(p.padding_len(), 4);
            assert_eq!(p.header().len(), header.len());
            let e = p.extension().unwrap();
            assert_eq!(e.form(), form);
            let elements: Vec<_> = e.elements().map(|e| e.unwrap()).collect();
            assert_eq!(
                elements,
                vec![
                    Element {
                        id: 3,
                        data: &[9, 8, 7]
                    },
                    Element { id: 5, data: &[1] }
                ]
            );
        }
    }

    #[test]
    fn rejects_every_truncation_of_a_valid_packet() {
        let mut ext = [0u8; 8];
        let mut w = ExtensionWriter::new(ExtensionForm::OneByte, &mut ext).unwrap();
        w.push(1, &[1, 2]).unwrap();
        let header = RtpHeader {
            csrcs: &[7, 8],
            extension: Some(w.finish()),
            ..RtpHeader::new(0, 1, 2, 3)
        };
        let mut buf = [0u8; 64];
        let n = header.write(&mut buf).unwrap();
        for cut in 0..n {
            assert!(RtpPacket::parse(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(RtpPacket::parse(&buf[..n]).is_ok());
    }

    #[test]
    fn rejects_bad_version_and_bad_padding() {
        let mut b = [0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
        b[0] = 0x40;
        assert_eq!(
            RtpPacket::parse(&b),
            Err(Error::Malformed("RTP version is not 2"))
        );
        b[0] = 0xa0; // padding bit, count 5 > 1 payload byte
        assert!(matches!(RtpPacket::parse(&b), Err(Error::Malformed(_))));
        b[12] = 0;
        assert!(matches!(RtpPacket::parse(&b), Err(Error::Malformed(_))));
        b[12] = 1;
        assert_eq!(RtpPacket::parse(&b).unwrap().payload(), &[]);
    }

    #[test]
    fn rejects_extension_element_overrunning_its_block() {
        // One-byte block of one word whose element claims 16 bytes.
        let b = [
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 1, 0x1f, 0, 0, 0,
        ];
        assert!(matches!(RtpPacket::parse(&b), Err(Error::Malformed(_))));
    }

    #[test]
    fn stops_at_one_byte_id_15_and_skips_padding() {
        let data = [0x00, 0x10, 0xaa, 0xf0, 0x55, 0x00, 0x00, 0x00];
        let e = HeaderExtension {
            profile: ONE_BYTE_PROFILE,
            data: &data,
        };
        let v: Vec<_> = e.elements().collect();
        assert_eq!(
            v,
            vec![Ok(Element {
                id: 1,
                data: &[0xaa]
            })]
        );
    }

    #[test]
    fn writer_refuses_out_of_range_ids_and_lengths() {
        let mut ext = [0u8; 64];
        let mut w = ExtensionWriter::new(ExtensionForm::OneByte, &mut ext).unwrap();
        assert!(w.push(0, &[1]).is_err());
        assert!(w.push(15, &[1]).is_err());
        assert!(w.push(1, &[]).is_err());
        assert!(w.push(1, &[0; 17]).is_err());
        let mut ext = [0u8; 4];
        let mut w = ExtensionWriter::new(ExtensionForm::TwoByte, &mut ext).unwrap();
        assert!(matches!(
            w.push(1, &[1, 2, 3]),
            Err(Error::BufferTooSmall { .. })
        ));
        w.push(200, &[]).unwrap();
        assert_eq!(w.finish().data, &[200, 0, 0, 0]);
    }
}
