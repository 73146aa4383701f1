//! A link that stalls for most of a second and then delivers its backlog
//! four times faster than real time: the buffer waits for the stalled packet, plays everything, and the
//! backlog that queued behind it does not raise the target; the extra depth
//! the wait left is compressed away within seconds.

mod common;

use std::time::Duration;

use common::{run, trace, Net, FLOOR_US};
use cryptic_jitter::{Config, JitterBuffer};

const STALL_FROM_US: i64 = 20_000_000;
const STALL_US: i64 = 900_000;

#[test]
fn backlog_after_a_900ms_stall_plays_in_full_and_leaves_the_target_low() {
    let mut t = trace(Net::Clean, 60, 9);
    // First in, first out: nothing gets through during the stall, then the
    // queue drains at four packets per frame period until it has caught up.
    let mut last = i64::MIN;
    for p in &mut t.packets {
        let mut a = p.send_us + FLOOR_US;
        if (STALL_FROM_US..STALL_FROM_US + STALL_US).contains(&p.send_us) {
            a = STALL_FROM_US + STALL_US + FLOOR_US;
        }
        a = a.max(last + 5_000);
        last = a;
        p.arrival_us = Some(a);
    }
    let run_until = |seconds: usize| {
        let mut part = t.clone();
        part.packets.truncate(seconds * 50);
        let mut c = Config::default();
        c.time_stretch = true;
        let mut jb = JitterBuffer::new(c).unwrap();
        let m = run(&part, &mut jb, 7_300, true);
        (m, jb.stats())
    };

    // Just after the backlog came in (the run polls on for 2 s more).
    let (_, s) = run_until(22);
    assert_eq!(s.late, 0, "{s:?}");
    assert!(s.rescued >= 1, "the stalled packet was waited for: {s:?}");
    assert!(
        s.target_delay < Duration::from_millis(20),
        "the queued packets raised the target: {s:?}"
    );

    let (m, s) = run_until(60);
    assert_eq!(m.late_lost, 0, "{s:?}");
    assert_eq!(m.played, m.sent, "{s:?}");
    // The wait inserted about one concealed frame per 20 ms of stall.
    let stall_frames = (STALL_US / 20_000) as u64;
    assert!(
        m.concealed <= stall_frames + 2,
        "{} concealed: {s:?}",
        m.concealed
    );
    // Every packet sent from 5 s after the stall on plays within 30 ms again:
    // the 900 ms of depth the wait added was compressed away (5 ms a frame).
    let settled = ((STALL_FROM_US + STALL_US + 5_000_000) / 20_000) as usize;
    let worst = m.delays[settled..].iter().max().copied().unwrap_or(0);
    assert!(worst <= 30_000, "still {worst} µs deep: {s:?}");
}
