//! A sender that restarts (new SSRC, or same SSRC with new sequence and
//! timestamp bases) is followed cleanly.

use std::time::{Duration, Instant};

use cryptic_jitter::{Arrival, Config, JitterBuffer, Packet, Playout};

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// Feeds `n` packets of 20 ms starting at `ms`, polling each period, and
/// returns how many frames played.
fn stream(
    jb: &mut JitterBuffer,
    t0: Instant,
    ms: u64,
    ssrc: u32,
    seq: u16,
    ts: u32,
    n: u16,
) -> usize {
    let mut played = 0;
    for k in 0..n {
        let now = at(t0, ms + u64::from(k) * 20);
        let p = Packet::new(
            ssrc,
            seq.wrapping_add(k),
            ts.wrapping_add(u32::from(k) * 960),
            b"opus",
        );
        jb.handle_packet(now, p).expect("payload fits");
        if let Playout::Frame(_) = jb.poll(now + Duration::from_millis(10)) {
            played += 1;
        }
    }
    played
}

#[test]
fn new_ssrc_flushes_the_old_stream_and_plays_the_new_one() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    assert!(stream(&mut jb, t0, 0, 1, 100, 5_000, 200) > 190);
    let r = jb
        .handle_packet(at(t0, 4_000), Packet::new(2, 40_000, 7, b"new!"))
        .unwrap();
    assert_eq!(r, Arrival::Resynced);
    assert!(stream(&mut jb, t0, 4_020, 2, 40_001, 967, 200) > 190);
    let s = jb.stats();
    assert_eq!(s.resyncs, 1);
    assert_eq!(s.late, 0);
}

#[test]
fn timestamp_and_sequence_jump_resyncs_after_one_confirming_packet() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    stream(&mut jb, t0, 0, 9, 10, 0, 100);
    // Same SSRC, restarted: sequence and timestamp far away.
    let a = jb
        .handle_packet(
            at(t0, 2_000),
            Packet::new(9, 30_000, 3_000_000_000, b"opus"),
        )
        .unwrap();
    assert_eq!(a, Arrival::Discarded);
    let b = jb
        .handle_packet(
            at(t0, 2_020),
            Packet::new(9, 30_001, 3_000_000_960, b"opus"),
        )
        .unwrap();
    assert_eq!(b, Arrival::Resynced);
    assert!(stream(&mut jb, t0, 2_040, 9, 30_002, 3_000_001_920, 100) > 90);
    assert_eq!(jb.stats().resyncs, 1);
}

#[test]
fn timestamp_jump_alone_is_a_restart_but_a_single_stray_packet_is_ignored() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    stream(&mut jb, t0, 0, 5, 0, 0, 100);
    // One packet whose timestamp claims to be an hour ahead: ignored.
    let stray = Packet::new(5, 100, 960 * 180_000, b"???");
    assert_eq!(
        jb.handle_packet(at(t0, 2_000), stray).unwrap(),
        Arrival::Discarded
    );
    // The stream goes on undisturbed.
    assert!(stream(&mut jb, t0, 2_000, 5, 101, 101 * 960, 100) > 95);
    assert_eq!(jb.stats().resyncs, 0);
    // Timestamps restart at zero with continuous sequence numbers: resync.
    let r1 = jb
        .handle_packet(at(t0, 4_000), Packet::new(5, 201, 0, b"aaa"))
        .unwrap();
    let r2 = jb
        .handle_packet(at(t0, 4_020), Packet::new(5, 202, 960, b"bbb"))
        .unwrap();
    assert_eq!((r1, r2), (Arrival::Discarded, Arrival::Resynced));
}
