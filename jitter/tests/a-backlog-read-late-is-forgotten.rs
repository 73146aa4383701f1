//! The receiver could not read for 300 ms at the start of a call (its audio
//! devices were opening): the packets that piled up in the socket are read
//! in one burst, behind a newer one the server relayed meanwhile. Measured,
//! that burst holds the target near 200 ms for the whole history window;
//! forgotten ([`JitterBuffer::forget_delays`]), the target follows the path
//! (1 ms of transit, no jitter) within a second, and the frames of the
//! backlog still play.

use std::time::{Duration, Instant};

use cryptic_jitter::{Config, JitterBuffer, Packet, Playout};

const FRAME_US: u64 = 20_000;
/// How long the receiver did not read.
const STALL_US: u64 = 300_000;

/// Runs 3 s of a 20 ms stream whose first 300 ms are read late; returns the
/// target after it and how many frames played (not concealed).
fn start_after_a_stall(forget: bool) -> (Duration, u64) {
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    let mut c = Config::default();
    c.time_stretch = true;
    let mut jb = JitterBuffer::new(c).expect("a valid config");
    let packet = |seq: u16| Packet::new(7, seq, u32::from(seq) * 960, &[1, 2, 3]);
    let backlog = (STALL_US / FRAME_US) as u16;
    // The relayed copy of the newest packet comes first, then the backlog.
    let read_at = STALL_US + 1_000;
    jb.handle_packet(at(read_at), packet(backlog))
        .expect("a packet the buffer takes");
    for seq in 0..backlog {
        jb.handle_packet(at(read_at + 10), packet(seq))
            .expect("a packet the buffer takes");
    }
    if forget {
        jb.forget_delays();
    }
    let mut played = 0;
    let mut seq = backlog + 1;
    let mut poll = read_at + 20;
    while poll < 3_000_000 {
        // Every packet sent by now arrives 1 ms after it was sent.
        while u64::from(seq) * FRAME_US + 1_000 <= poll {
            let sent = u64::from(seq) * FRAME_US;
            jb.handle_packet(at(sent + 1_000), packet(seq))
                .expect("a packet the buffer takes");
            seq += 1;
        }
        if matches!(jb.poll(at(poll)), Playout::Frame(_)) {
            played += 1;
        }
        poll += FRAME_US;
    }
    (jb.target_delay(), played)
}

#[test]
fn a_backlog_forgotten_leaves_the_target_on_the_path() {
    let (measured, _) = start_after_a_stall(false);
    assert!(
        measured > Duration::from_millis(100),
        "the backlog was expected to raise the target when measured: {measured:?}"
    );
    let (forgotten, played) = start_after_a_stall(true);
    assert!(
        forgotten < Duration::from_millis(30),
        "forgotten, the backlog still holds the target at {forgotten:?}"
    );
    println!(
        "target after 3 s: {measured:?} measured, {forgotten:?} forgotten ({played} frames played)"
    );
    // 3 s of frames, less those the buffer left out to catch up.
    assert!(played >= 120, "only {played} frames played");
}
