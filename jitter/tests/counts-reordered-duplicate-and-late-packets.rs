//! Reordering, duplicates and late packets are handled and counted; a lost
//! frame offers the next packet's FEC.

mod common;

use std::time::{Duration, Instant};

use cryptic_jitter::{Arrival, Config, JitterBuffer, Packet, Playout};

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

#[test]
fn reordered_packets_play_in_sequence_and_duplicates_are_ignored() {
    let t0 = Instant::now();
    let mut c = Config::default();
    c.start_delay = Duration::from_millis(60);
    let mut jb = JitterBuffer::new(c).unwrap();
    // Arrival order 0 2 1 3 3 5 4 ...
    let order = [0u16, 2, 1, 3, 3, 5, 4, 6, 7, 9, 8];
    for (i, &s) in order.iter().enumerate() {
        let a = jb
            .handle_packet(
                ms(t0, i as u64 * 20),
                Packet::new(1, s, u32::from(s) * 960, &[s as u8; 3]),
            )
            .unwrap();
        if i == 4 {
            assert_eq!(a, Arrival::Duplicate);
        }
    }
    let mut seqs = Vec::new();
    for k in 0..20u64 {
        if let Playout::Frame(f) = jb.poll(ms(t0, 61 + k * 20)) {
            assert_eq!(f.payload, &[f.seq as u8; 3]);
            seqs.push(f.seq);
        }
    }
    assert_eq!(seqs, (0..10).collect::<Vec<u16>>());
    assert_eq!(jb.stats().duplicates, 1);
    // A duplicate of an already played packet is still a duplicate.
    let again = jb
        .handle_packet(ms(t0, 500), Packet::new(1, 3, 3 * 960, b"xyz"))
        .unwrap();
    assert_eq!(again, Arrival::Duplicate);
}

#[test]
fn missing_frame_offers_fec_from_the_next_packet_and_late_arrival_is_counted() {
    let t0 = Instant::now();
    let mut c = Config::default();
    c.min_delay = Duration::from_millis(40);
    let mut jb = JitterBuffer::new(c).unwrap();
    let mut kinds = Vec::new();
    for k in 0..100u32 {
        let now = ms(t0, u64::from(k) * 20);
        // Packet 50 is held up by 200 ms, so 51 arrives first.
        if k != 50 {
            jb.handle_packet(now, Packet::new(1, k as u16, k * 960, &[k as u8; 4]))
                .unwrap();
        }
        if k == 60 {
            let a = jb
                .handle_packet(now, Packet::new(1, 50, 50 * 960, &[50; 4]))
                .unwrap();
            assert_eq!(a, Arrival::Late);
        }
        // The buffer keeps 40 ms: the following packet is in when a frame is due.
        match jb.poll(now + Duration::from_millis(5)) {
            // The late packet lifts the target at once: frames inserted.
            Playout::Conceal(c) if c.inserted => kinds.push('I'),
            Playout::Conceal(c) => {
                assert!(
                    c.fec_available(),
                    "FEC from packet 51 expected at {k}: {c:?}"
                );
                assert_eq!(c.fec, Some(&[51u8; 4][..]));
                kinds.push('C');
            }
            Playout::Frame(_) => kinds.push('F'),
            _ => kinds.push('S'),
        }
    }
    let s = jb.stats();
    assert_eq!(s.late, 1, "{s:?}");
    assert_eq!(s.fec_available, 1, "{s:?}");
    assert_eq!(kinds.iter().filter(|k| **k == 'C').count(), 1, "{kinds:?}");
    assert!(
        kinds[60..].contains(&'I'),
        "target grows after the late packet: {kinds:?}"
    );
}

#[test]
fn delayed_packet_is_waited_for_when_the_buffer_runs_dry_and_the_target_grows() {
    // From packet 200 on, everything comes 100 ms later (a route change).
    // The run lasts long enough (45 s) for the old, faster path to leave
    // the 30 s window (`Config::history`) the target is measured from.
    let mut t = common::trace(common::Net::Clean, 45, 1);
    for p in t.packets.iter_mut().skip(200) {
        p.arrival_us = p.arrival_us.map(|a| a + 100_000);
    }
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    let m = common::run(&t, &mut jb, 7_000, false);
    let s = m.stats;
    assert_eq!(s.late, 0, "{s:?}");
    // Nothing lost but the one frame dropped to shrink after start-up.
    assert_eq!(m.late_lost, s.dropped, "{s:?}");
    assert!(s.rescued >= 1, "{s:?}");
    assert!(s.inserted >= 4, "{s:?}");
    assert!(s.target_delay < Duration::from_millis(20), "{s:?}");
    // And the play-out follows the new path without extra depth.
    let last = m.delays.last().copied().unwrap_or(0);
    assert!((100_000..130_000).contains(&last), "{last} µs: {s:?}");
}

#[test]
fn poll_timeout_is_one_frame_after_the_last_poll() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    assert_eq!(jb.poll_timeout(), None);
    jb.handle_packet(t0, Packet::new(1, 0, 0, b"opus")).unwrap();
    assert_eq!(jb.poll_timeout(), Some(t0));
    let _ = jb.poll(ms(t0, 3));
    assert_eq!(jb.poll_timeout(), Some(ms(t0, 23)));
}
