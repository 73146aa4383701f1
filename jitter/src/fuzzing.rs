//! Fuzz entry points (for `fuzz/`, not a public API).

use core::time::Duration;
use std::time::Instant;

use crate::reference::FixedDelay;
use crate::{Config, JitterBuffer, Packet, Playout};

/// Drives a [`JitterBuffer`] (and the fixed reference) with operations
/// decoded from `data`; panics if an invariant breaks.
///
/// Each operation takes one tag byte and a few argument bytes:
/// insert (ssrc bit, sequence, timestamp step, arrival step, payload
/// length; with copies of the frames before it, when asked), poll (time
/// step) or a burst of polls (after forgetting the delays measured, when
/// asked).
pub fn jitter_ops(data: &[u8]) {
    let mut config = Config::default();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let Some(mode) = next() else { return };
    if mode & 1 == 1 {
        config.frame_samples = 480;
    }
    config.time_stretch = mode & 2 == 2;
    config.max_delay = Duration::from_millis(100 + u64::from(mode >> 2) * 20);
    config.max_payload = 256;
    if mode & 4 == 4 {
        config.fec_wait = Duration::from_secs(5);
    }
    if mode & 8 == 8 {
        config.steady_jitter = Duration::from_millis(10);
    }
    let frame = config.frame_duration();
    let Ok(mut jb) = JitterBuffer::new(config.clone()) else {
        return;
    };
    let Ok(mut fixed) = FixedDelay::new(&config, Duration::from_millis(60)) else {
        return;
    };
    let capacity = jb.capacity();
    let payload = [0xA5u8; 300];
    let t0 = Instant::now();
    let mut t = Duration::ZERO;
    let (mut seq, mut ts) = (0u16, 0u32);
    while let Some(op) = next() {
        match op % 4 {
            0 | 1 => {
                let (Some(a), Some(b), Some(c), Some(d)) = (next(), next(), next(), next()) else {
                    break;
                };
                // Mostly near the previous packet, sometimes anywhere.
                if op & 0x80 != 0 {
                    seq = u16::from_le_bytes([a, b]);
                    ts = u32::from_le_bytes([a, b, c, d]);
                } else {
                    seq = seq.wrapping_add(u16::from(a % 8)).wrapping_sub(2);
                    ts = ts.wrapping_add(u32::from(b) * 120).wrapping_sub(960);
                }
                t += Duration::from_micros(u64::from(c) * 200);
                let len = usize::from(d) + usize::from(op >> 2 & 0x1f);
                let ssrc = u32::from(op >> 6 & 1);
                let p = Packet::new(ssrc, seq, ts, &payload[..len]);
                let now = t0 + t;
                let r = jb.handle_packet(now, p);
                assert_eq!(r.is_err(), len > 256);
                let _ = fixed.handle_packet(now, p);
                if op % 4 == 1 {
                    // A redundant packet: copies of the frames before it.
                    for behind in 1..=u16::from(b % 3) {
                        let back = u32::from(behind) * config.frame_samples;
                        let copy = Packet::new(
                            ssrc,
                            seq.wrapping_sub(behind),
                            ts.wrapping_sub(back),
                            &payload[..len],
                        );
                        let r = jb.handle_copy(now, copy, behind);
                        assert_eq!(r.is_err(), len > 256);
                    }
                }
            }
            2 => {
                let Some(a) = next() else { break };
                t += Duration::from_micros(u64::from(a) * 400);
                check(jb.poll(t0 + t), 256, frame);
                check(fixed.poll(t0 + t), 256, frame);
            }
            _ => {
                let Some(a) = next() else { break };
                if a & 0x40 != 0 {
                    // The receiver could not read for a while.
                    jb.forget_delays();
                }
                for _ in 0..a % 64 {
                    t += config.frame_duration();
                    check(jb.poll(t0 + t), 256, frame);
                }
            }
        }
        assert!(jb.len() <= capacity);
        assert_eq!(jb.capacity(), capacity);
        let s = jb.stats();
        assert!(s.target_delay <= config.max_delay);
    }
}

fn check(p: Playout<'_>, max: usize, frame: Duration) {
    match p {
        Playout::Frame(f) => {
            assert!(f.payload.len() <= max);
            // A stretch is at most a frame, and only with a request.
            assert!(f.stretch_by <= frame);
            assert!(f.stretch != crate::Stretch::None || f.stretch_by.is_zero());
        }
        Playout::Conceal(c) => assert!(c.fec.is_none_or(|f| f.len() <= max)),
        Playout::Silence(_) => {}
    }
}
