//! Entry points for the fuzz targets in `fuzz/` (not a stable API).

use crate::codec::{Decoder, FrameDuration};

/// Feeds arbitrary bytes to the Opus decoder the way the receive path
/// does: the first byte picks the frame duration and how the rest is cut
/// into payloads, and each payload goes through `decode`, `decode_fec` or
/// `conceal`. Nothing may panic, and every successful call must fill
/// exactly one frame.
pub fn opus_decode(data: &[u8]) {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let frame = if ctl & 1 == 0 {
        FrameDuration::Ms20
    } else {
        FrameDuration::Ms10
    };
    let Ok(mut dec) = Decoder::new(frame) else {
        return;
    };
    let mut out = [0i16; 960];
    let mut op = ctl >> 1;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let r = match op % 3 {
            0 => dec.decode(payload, &mut out),
            1 => dec.decode_fec(payload, &mut out),
            _ => dec.conceal(&mut out),
        };
        if r.is_err() {
            // the receive path conceals a frame it could not decode
            let _ = dec.conceal(&mut out);
        }
        op = op.rotate_left(1) ^ len as u8;
    }
}

/// Parses arbitrary bytes as a redundant-audio payload (RFC 2198) the way
/// the receive path does; what parses must write back to the same bytes.
pub fn red_parse(data: &[u8]) {
    let Ok(red) = crate::red::Redundant::parse(data) else {
        return;
    };
    let mut out = vec![0u8; data.len()];
    let n = crate::red::write(
        red.copies(),
        red.primary.payload_type,
        red.primary.data,
        &mut out,
    );
    assert_eq!(n, Some(data.len()), "a parsed payload writes back whole");
    assert_eq!(out, data, "a parsed payload writes back the same bytes");
}
