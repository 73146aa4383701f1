//! RTCP compound packets (RFC 3550 section 6): sender and receiver reports
//! with their report blocks, source descriptions and goodbyes.
//!
//! [`Compound::parse`] checks the whole datagram first (every packet's
//! version, length and padding) and then hands out packets that borrow it;
//! packet types we do not know are returned as [`RtcpPacket::Unknown`] with
//! their bytes, so a compound that carries them is still usable. The
//! `write_*` functions serialise packets into a caller's buffer; call them
//! one after the other to build a compound.

use crate::error::{need, Error};

/// RTCP packet type of a sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// RTCP packet type of a source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of a goodbye.
pub const PT_BYE: u8 = 203;

/// Size of one report block on the wire.
pub const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A checked RTCP compound packet borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compound<'a> {
    buf: &'a [u8],
}

impl<'a> Compound<'a> {
    /// Checks a whole RTCP compound datagram: at least one packet, every
    /// packet of version 2 whose length fits, lengths adding up exactly to
    /// the datagram, padding only on the last packet, and every known packet
    /// type well-formed inside its length.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        need(buf, 4)?;
        let compound = Compound { buf };
        for packet in compound.raw_packets() {
            let (header, body) = packet?;
            RtcpPacket::parse_one(header, body)?;
        }
        Ok(compound)
    }

    /// The packets of the compound, in order.
    pub fn packets(&self) -> impl Iterator<Item = RtcpPacket<'a>> + 'a {
        // `parse` already checked every packet, so none of these fails.
        self.raw_packets()
            .filter_map(|p| p.ok())
            .filter_map(|(h, b)| RtcpPacket::parse_one(h, b).ok())
    }

    /// The whole datagram.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    fn raw_packets(&self) -> RawPackets<'a> {
        RawPackets {
            buf: self.buf,
            pos: 0,
        }
    }
}

/// Header fields of one RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    count: u8,
    packet_type: u8,
}

struct RawPackets<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RawPackets<'a> {
    type Item = Result<(Header, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let result = (|| {
            need(rest, 4)?;
            if rest[0] >> 6 != 2 {
                return Err(Error::Malformed("RTCP version is not 2"));
            }
            let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
            need(rest, len)?;
            let packet = &rest[..len];
            let mut body_end = len;
            if rest[0] & 0x20 != 0 {
                if len != rest.len() {
                    return Err(Error::Malformed("RTCP padding before the last packet"));
                }
                let pad = usize::from(packet[len - 1]);
                if pad == 0 || pad > len - 4 {
                    return Err(Error::Malformed("RTCP padding count out of range"));
                }
                body_end -= pad;
            }
            Ok((
                len,
                Header {
                    count: rest[0] & 0x1f,
                    packet_type: rest[1],
                },
                &packet[4..body_end],
            ))
        })();
        match result {
            Ok((len, header, body)) => {
                self.pos += len;
                Some(Ok((header, body)))
            }
            Err(e) => {
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

/// One packet of a compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket<'a> {
    /// SR: a sender's statistics and its report blocks.
    SenderReport(SenderReport<'a>),
    /// RR: report blocks from a participant that does not send.
    ReceiverReport(ReceiverReport<'a>),
    /// SDES: source descriptions (CNAME and friends).
    SourceDescription(SourceDescription<'a>),
    /// BYE: sources leaving, with an optional reason.
    Goodbye(Goodbye<'a>),
    /// A packet type this crate does not interpret (APP, feedback, XR, ...).
    Unknown {
        /// Its packet type.
        packet_type: u8,
        /// The five-bit count/format field of its header.
        count: u8,
        /// Its body after the four-byte header, without padding.
        body: &'a [u8],
    },
}

impl<'a> RtcpPacket<'a> {
    fn parse_one(h: Header, body: &'a [u8]) -> Result<Self, Error> {
        let blocks = usize::from(h.count) * REPORT_BLOCK_LEN;
        Ok(match h.packet_type {
            PT_SR => {
                need(body, 4 + SENDER_INFO_LEN + blocks)?;
                RtcpPacket::SenderReport(SenderReport {
                    info: SenderInfo {
                        ssrc: be32(body, 0),
                        ntp_timestamp: (u64::from(be32(body, 4)) << 32) | u64::from(be32(body, 8)),
                        rtp_timestamp: be32(body, 12),
                        packet_count: be32(body, 16),
                        octet_count: be32(body, 20),
                    },
                    blocks: &body[24..24 + blocks],
                    extension: &body[24 + blocks..],
                })
            }
            PT_RR => {
                need(body, 4 + blocks)?;
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: be32(body, 0),
                    blocks: &body[4..4 + blocks],
                    extension: &body[4 + blocks..],
                })
            }
            PT_SDES => {
                let sdes = SourceDescription {
                    count: h.count,
                    body,
                };
                let mut n = 0;
                for chunk in sdes.chunks() {
                    for item in chunk?.items() {
                        item?;
                    }
                    n += 1;
                }
                if n != usize::from(h.count) {
                    return Err(Error::Malformed("SDES chunk count does not match"));
                }
                RtcpPacket::SourceDescription(sdes)
            }
            PT_BYE => {
                let ids = 4 * usize::from(h.count);
                need(body, ids)?;
                let reason = match body.get(ids) {
                    None => None,
                    Some(&len) => {
                        let end = ids + 1 + usize::from(len);
                        need(body, end)?;
                        Some(&body[ids + 1..end])
                    }
                };
                RtcpPacket::Goodbye(Goodbye {
                    ssrcs: &body[..ids],
                    reason,
                })
            }
            packet_type => RtcpPacket::Unknown {
                packet_type,
                count: h.count,
                body,
            },
        })
    }
}

/// The sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// 64-bit NTP timestamp of the report (seconds since 1900 in the high
    /// 32 bits, fraction in the low 32).
    pub ntp_timestamp: u64,
    /// The same instant in the RTP clock of the stream.
    pub rtp_timestamp: u32,
    /// Packets sent so far.
    pub packet_count: u32,
    /// Payload octets sent so far.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire; duplicates can
    /// make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn decode(b: &[u8]) -> Self {
        let lost = be32(b, 4);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        ReportBlock {
            ssrc: be32(b, 0),
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost,
            extended_highest_seq: be32(b, 8),
            jitter: be32(b, 12),
            last_sr: be32(b, 16),
            delay_since_last_sr: be32(b, 20),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0x00ff_ffff;
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

fn report_blocks(bytes: &[u8]) -> impl ExactSizeIterator<Item = ReportBlock> + '_ {
    bytes
        .chunks_exact(REPORT_BLOCK_LEN)
        .map(ReportBlock::decode)
}

/// A sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// The sender information.
    pub info: SenderInfo,
    blocks: &'a [u8],
    /// Profile-specific extension bytes after the report blocks.
    pub extension: &'a [u8],
}

impl<'a> SenderReport<'a> {
    /// The report blocks.
    pub fn reports(&self) -> impl ExactSizeIterator<Item = ReportBlock> + 'a {
        report_blocks(self.blocks)
    }
}

/// A receiver report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// The reporter's SSRC.
    pub ssrc: u32,
    blocks: &'a [u8],
    /// Profile-specific extension bytes after the report blocks.
    pub extension: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    /// The report blocks.
    pub fn reports(&self) -> impl ExactSizeIterator<Item = ReportBlock> + 'a {
        report_blocks(self.blocks)
    }
}

/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;

/// A source description packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDescription<'a> {
    count: u8,
    body: &'a [u8],
}

impl<'a> SourceDescription<'a> {
    /// The chunks, one per source.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            body: self.body,
            pos: 0,
            left: self.count,
        }
    }
}

/// Iterator over the chunks of an SDES packet.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    body: &'a [u8],
    pos: usize,
    left: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = Result<SdesChunk<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let result = (|| {
            let rest = &self.body[self.pos..];
            need(rest, 4)?;
            // Items run to a zero type octet; the chunk then pads to a word.
            let mut at = 4;
            loop {
                need(rest, at + 1)?;
                if rest[at] == 0 {
                    at += 1;
                    break;
                }
                need(rest, at + 2)?;
                at += 2 + usize::from(rest[at + 1]);
            }
            let end = at.next_multiple_of(4);
            need(rest, end)?;
            let chunk = SdesChunk {
                ssrc: be32(rest, 0),
                items: &rest[4..at - 1],
            };
            Ok((end, chunk))
        })();
        match result {
            Ok((end, chunk)) => {
                self.pos += end;
                Some(Ok(chunk))
            }
            Err(e) => {
                self.left = 0;
                Some(Err(e))
            }
        }
    }
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: u32,
    items: &'a [u8],
}

impl<'a> SdesChunk<'a> {
    /// The items of the chunk.
    pub fn items(&self) -> impl Iterator<Item = Result<SdesItem<'a>, Error>> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            if rest.len() < 2 || rest.len() < 2 + usize::from(rest[1]) {
                rest = &[];
                return Some(Err(Error::Malformed("SDES item overruns its chunk")));
            }
            let len = usize::from(rest[1]);
            let item = SdesItem {
                item_type: rest[0],
                text: &rest[2..2 + len],
            };
            rest = &rest[2 + len..];
            Some(Ok(item))
        })
    }
}

/// One SDES item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdesItem<'a> {
    /// Its type ([`SDES_CNAME`], ...).
    pub item_type: u8,
    /// Its text (UTF-8 by the RFC; not checked here).
    pub text: &'a [u8],
}

/// A goodbye packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goodbye<'a> {
    ssrcs: &'a [u8],
    /// The reason for leaving, if given.
    pub reason: Option<&'a [u8]>,
}

impl<'a> Goodbye<'a> {
    /// The sources leaving.
    pub fn ssrcs(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        self.ssrcs
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

fn start_packet(out: &mut [u8], len: usize, count: usize, pt: u8) -> Result<(), Error> {
    if count > 31 {
        return Err(Error::BadConfig("more than 31 items in one RTCP packet"));
    }
    if !len.is_multiple_of(4) || len / 4 > 0x1_0000 {
        return Err(Error::BadConfig("RTCP packet too long"));
    }
    if out.len() < len {
        return Err(Error::BufferTooSmall {
            needed: len,
            got: out.len(),
        });
    }
    // Both narrowing casts were range-checked above.
    out[0] = 0x80 | count as u8;
    out[1] = pt;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    Ok(())
}

/// Writes a sender report with up to 31 report blocks; returns its length.
pub fn write_sender_report(
    out: &mut [u8],
    info: &SenderInfo,
    reports: &[ReportBlock],
) -> Result<usize, Error> {
    let len = 8 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * reports.len();
    start_packet(out, len, reports.len(), PT_SR)?;
    out[4..8].copy_from_slice(&info.ssrc.to_be_bytes());
    out[8..16].copy_from_slice(&info.ntp_timestamp.to_be_bytes());
    out[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    out[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
    out[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
    for (i, r) in reports.iter().enumerate() {
        r.encode(&mut out[28 + i * REPORT_BLOCK_LEN..]);
    }
    Ok(len)
}

/// Writes a receiver report with up to 31 report blocks; returns its length.
pub fn write_receiver_report(
    out: &mut [u8],
    ssrc: u32,
    reports: &[ReportBlock],
) -> Result<usize, Error> {
    let len = 8 + REPORT_BLOCK_LEN * reports.len();
    start_packet(out, len, reports.len(), PT_RR)?;
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (i, r) in reports.iter().enumerate() {
        r.encode(&mut out[8 + i * REPORT_BLOCK_LEN..]);
    }
    Ok(len)
}

/// Writes an SDES packet with one chunk: `ssrc` and its `items` as
/// `(type, text)` pairs (text at most 255 bytes); returns its length.
pub fn write_sdes(out: &mut [u8], ssrc: u32, items: &[(u8, &[u8])]) -> Result<usize, Error> {
    let mut body = 4;
    for (t, text) in items {
        if *t == 0 || text.len() > 255 {
            return Err(Error::BadConfig("SDES item type 0 or text over 255 bytes"));
        }
        body += 2 + text.len();
    }
    // At least one terminating zero, then pad to a word.
    let len = 4 + (body + 1).next_multiple_of(4);
    start_packet(out, len, 1, PT_SDES)?;
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    let mut at = 8;
    for (t, text) in items {
        out[at] = *t;
        out[at + 1] = text.len() as u8;
        out[at + 2..at + 2 + text.len()].copy_from_slice(text);
        at += 2 + text.len();
    }
    out[at..len].fill(0);
    Ok(len)
}

/// Writes a goodbye for up to 31 sources with an optional reason (at most
/// 255 bytes); returns its length.
pub fn write_bye(out: &mut [u8], ssrcs: &[u32], reason: Option<&[u8]>) -> Result<usize, Error> {
    let reason_len = match reason {
        Some(r) if r.len() > 255 => {
            return Err(Error::BadConfig("BYE reason over 255 bytes"));
        }
        Some(r) => 1 + r.len(),
        None => 0,
    };
    let len = 4 + (4 * ssrcs.len() + reason_len).next_multiple_of(4);
    start_packet(out, len, ssrcs.len(), PT_BYE)?;
    let mut at = 4;
    for s in ssrcs {
        out[at..at + 4].copy_from_slice(&s.to_be_bytes());
        at += 4;
    }
    if let Some(r) = reason {
        out[at] = r.len() as u8;
        out[at + 1..at + 1 + r.len()].copy_from_slice(r);
        at += 1 + r.len();
    }
    out[at..len].fill(0);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_block(n: u32) -> ReportBlock {
        ReportBlock {
            ssrc: n,
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 0x0001_0005,
            jitter: 120,
            last_sr: 0xaabb_ccdd,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn round_trips_a_full_compound() {
        let mut buf = [0u8; 512];
        let info = SenderInfo {
            ssrc: 7,
            ntp_timestamp: 0x0102_0304_0506_0708,
            rtp_timestamp: 9,
            packet_count: 10,
            octet_count: 11,
        };
        let mut n =
            write_sender_report(&mut buf, &info, &[sample_block(1), sample_block(2)]).unwrap();
        n += write_receiver_report(&mut buf[n..], 8, &[sample_block(3)]).unwrap();
        n += write_sdes(&mut buf[n..], 7, &[(SDES_CNAME, b"alice@cryptic")]).unwrap();
        n += write_bye(&mut buf[n..], &[7, 8], Some(b"hangup")).unwrap();
        n += write_bye(&mut buf[n..], &[], None).unwrap();
        let c = Compound::parse(&buf[..n]).unwrap();
        let packets: Vec<_> = c.packets().collect();
        assert_eq!(packets.len(), 5);
        let RtcpPacket::SenderReport(sr) = packets[0] else {
            panic!("not an SR")
        };
        assert_eq!(sr.info, info);
        assert_eq!(
            sr.reports().collect::<Vec<_>>(),
            vec![sample_block(1), sample_block(2)]
        );
        let RtcpPacket::ReceiverReport(rr) = packets[1] else {
            panic!("not an RR")
        };
        assert_eq!(rr.ssrc, 8);
        assert_eq!(rr.reports().next(), Some(sample_block(3)));
        let RtcpPacket::SourceDescription(sdes) = packets[2] else {
            panic!("not SDES")
        };
        let chunk = sdes.chunks().next().unwrap().unwrap();
        assert_eq!(chunk.ssrc, 7);
        let item = chunk.items().next().unwrap().unwrap();
        assert_eq!(
            (item.item_type, item.text),
            (SDES_CNAME, &b"alice@cryptic"[..])
        );
        let RtcpPacket::Goodbye(bye) = packets[3] else {
            panic!("not BYE")
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(bye.reason, Some(&b"hangup"[..]));
    }

    #[test]
    fn skips_unknown_packet_types_safely() {
        let mut buf = [0u8; 64];
        let mut n = write_receiver_report(&mut buf, 1, &[]).unwrap();
        // An APP packet (204) of two words, then another RR.
        buf[n..n + 12].copy_from_slice(&[0x81, 204, 0, 2, 0, 0, 0, 1, b'n', b'a', b'm', b'e']);
        n += 12;
        n += write_receiver_report(&mut buf[n..], 2, &[]).unwrap();
        let c = Compound::parse(&buf[..n]).unwrap();
        let types: Vec<_> = c
            .packets()
            .map(|p| match p {
                RtcpPacket::ReceiverReport(rr) => rr.ssrc,
                RtcpPacket::Unknown { packet_type, .. } => u32::from(packet_type),
                _ => 0,
            })
            .collect();
        assert_eq!(types, vec![1, 204, 2]);
    }

    #[test]
    fn rejects_lengths_that_overrun_or_do_not_add_up() {
        let mut buf = [0u8; 64];
        let n = write_receiver_report(&mut buf, 1, &[sample_block(1)]).unwrap();
        for cut in 0..n {
            assert!(Compound::parse(&buf[..cut]).is_err(), "cut {cut}");
        }
        // Report count claims two blocks but the length holds one.
        buf[0] = 0x82;
        assert!(Compound::parse(&buf[..n]).is_err());
    }

    #[test]
    fn rejects_padding_on_a_packet_that_is_not_last() {
        let mut buf = [0u8; 64];
        let mut n = write_receiver_report(&mut buf, 1, &[]).unwrap();
        n += write_receiver_report(&mut buf[n..], 2, &[]).unwrap();
        buf[0] |= 0x20;
        buf[7] = 4;
        assert_eq!(
            Compound::parse(&buf[..n]),
            Err(Error::Malformed("RTCP padding before the last packet"))
        );
    }

    #[test]
    fn cumulative_loss_keeps_its_sign_across_the_wire() {
        for lost in [-0x80_0000, -1, 0, 1, 0x7f_ffff] {
            let mut b = [0u8; 24];
            let block = ReportBlock {
                cumulative_lost: lost,
                ..sample_block(1)
            };
            block.encode(&mut b);
            assert_eq!(ReportBlock::decode(&b).cumulative_lost, lost);
        }
    }
}
