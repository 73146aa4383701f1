//! Redundant audio (RFC 2198): a packet carries copies of the frames sent
//! before it. A copy of a frame the network lost fills its place and plays
//! as the frame would have; copies of frames already here or played change
//! nothing; a frame whose copies come after its play time is counted late,
//! once, and the buffer then waits as many frames longer as the copy came
//! behind, so that the next copies come in time.

use std::time::{Duration, Instant};

use cryptic_jitter::{Config, JitterBuffer, Packet, Playout};

const FRAME_US: u64 = 20_000;

/// One packet of a stream of 20 ms frames: the payload (40 bytes, as
/// speech is; a byte or two would be a pause) starts with the frame's name.
fn packet(seq: u16, payload: &mut [u8; 40]) -> Packet<'_> {
    payload[0] = seq as u8;
    Packet::new(7, seq, u32::from(seq) * 960, &payload[..])
}

/// 200 frames sent every 20 ms and received 5 ms later, except those in
/// `lost`; each packet carries copies of the `copies` frames before it,
/// received `extra_us` after the packet itself. Returns what played (the
/// frame's name, or `None` when concealed) and the buffer's figures.
fn stream(lost: &[u16], copies: u16, extra_us: u64) -> (Vec<Option<u8>>, cryptic_jitter::Stats) {
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    // As the client runs it: after a loss, wait for what rebuilds it.
    let mut config = Config::default();
    config.fec_wait = Duration::from_secs(5);
    let mut jb = JitterBuffer::new(config).expect("a valid config");
    // What arrives when: (time, frame, how far behind its packet; 0 for
    // the packet itself).
    let mut arrivals = Vec::new();
    for seq in (0..200u16).filter(|s| !lost.contains(s)) {
        let arrive = u64::from(seq) * FRAME_US + 5_000;
        arrivals.push((arrive, seq, 0));
        for behind in 1..=copies.min(seq) {
            arrivals.push((arrive + extra_us, seq - behind, behind));
        }
    }
    arrivals.sort_by_key(|&(t, _, behind)| (t, behind));
    let mut arrivals = arrivals.into_iter().peekable();
    let mut payload = [0u8; 40];
    let mut played = Vec::new();
    let mut poll = 5_000;
    while poll < 200 * FRAME_US {
        while let Some((t, seq, behind)) = arrivals.next_if(|&(t, _, _)| t <= poll) {
            if behind == 0 {
                jb.handle_packet(at(t), packet(seq, &mut payload))
                    .expect("a packet the buffer takes");
            } else {
                jb.handle_copy(at(t), packet(seq, &mut payload), behind)
                    .expect("a copy the buffer takes");
            }
        }
        match jb.poll(at(poll)) {
            Playout::Frame(f) => played.push(Some(f.payload[0])),
            Playout::Conceal(c) if !c.inserted => played.push(None),
            _ => {}
        }
        poll += FRAME_US;
    }
    (played, jb.stats())
}

#[test]
fn a_copy_of_a_lost_frame_plays_in_its_place() {
    // Single losses and a burst of two, with two copies a packet.
    let lost = [50, 90, 91, 140];
    let (played, stats) = stream(&lost, 2, 0);
    let names: Vec<u8> = played.iter().flatten().copied().collect();
    for seq in lost {
        assert!(
            names.contains(&(seq as u8)),
            "frame {seq} not played: {played:?}"
        );
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert_eq!(stats.recovered + stats.recovered_late, 4, "{stats:?}");
    // The first copy may come late (it came a frame behind a buffer that
    // did not wait for it); from then on the buffer waits for them.
    assert!(stats.recovered >= 3, "{stats:?}");
    assert_eq!(
        stats.duplicates, 0,
        "copies of frames here are no duplicates"
    );
    assert_eq!(stats.received, 196, "copies are not packets: {stats:?}");
}

#[test]
fn without_copies_the_same_losses_are_concealed() {
    let lost = [50, 90, 91, 140];
    let (played, stats) = stream(&lost, 0, 0);
    let names: Vec<u8> = played.iter().flatten().copied().collect();
    for seq in lost {
        assert!(!names.contains(&(seq as u8)), "frame {seq} played");
    }
    assert_eq!(stats.recovered, 0);
    assert!(stats.concealed >= 4, "{stats:?}");
}

#[test]
fn a_burst_longer_than_the_copies_loses_only_its_head() {
    // Three in a row with two copies: the first cannot come back.
    let (played, stats) = stream(&[100, 101, 102], 2, 0);
    let names: Vec<u8> = played.iter().flatten().copied().collect();
    assert!(!names.contains(&100));
    assert_eq!(stats.recovered + stats.recovered_late, 2, "{stats:?}");
}

#[test]
fn copies_that_come_too_late_are_counted_and_make_the_buffer_wait() {
    // The copies come 100 ms after their packets: far too late for the
    // first loss. The frame is counted late once (two copies of it came),
    // and the buffer then waits two frames longer (the copies' distance)
    // while losses come, so the copies of later frames, 40 ms behind them
    // and more, still miss: 100 ms is beyond what a copy can cover.
    let lost = [40, 80, 120, 160];
    let (_, stats) = stream(&lost, 2, 100_000);
    assert_eq!(stats.recovered, 0, "{stats:?}");
    assert_eq!(stats.recovered_late, 4, "one count a frame: {stats:?}");
}
