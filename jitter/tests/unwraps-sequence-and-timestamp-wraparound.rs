//! Sequence numbers and timestamps that wrap mid-call change nothing.

use std::time::{Duration, Instant};

use cryptic_jitter::{Config, JitterBuffer, Packet, Playout};

#[test]
fn playout_is_seamless_across_sequence_and_timestamp_wraparound() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    let seq0 = u16::MAX - 50;
    let ts0 = u32::MAX - 960 * 40;
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for k in 0..200u32 {
        let seq = seq0.wrapping_add(k as u16);
        let ts = ts0.wrapping_add(k * 960);
        expected.push(ts);
        // Swap every fifth pair to reorder across the wrap as well.
        let arrive = if k % 5 == 0 { k * 20 + 25 } else { k * 20 };
        jb.handle_packet(
            t0 + Duration::from_millis(u64::from(arrive)),
            Packet::new(1, seq, ts, &[k as u8; 8]),
        )
        .unwrap();
        if let Playout::Frame(f) = jb.poll(t0 + Duration::from_millis(u64::from(k * 20 + 1))) {
            got.push(f.timestamp);
        }
    }
    for k in 200..260u32 {
        if let Playout::Frame(f) = jb.poll(t0 + Duration::from_millis(u64::from(k * 20 + 1))) {
            got.push(f.timestamp);
        }
    }
    let s = jb.stats();
    assert_eq!(s.resyncs, 0);
    assert_eq!(s.late, 0, "{s:?}");
    // Every frame played once, in order, through both wraps.
    assert_eq!(got, expected);
}
