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
