//! The network turns bad in an instant (from no jitter to 30 ms Gaussian
//! jitter that reorders packets): the late losses lift the target within a
//! fraction of a second, not after the 30 s delay window has filled.

mod common;

use std::time::{Duration, Instant};

use common::{gaussian, FLOOR_US, FRAME_TS, FRAME_US};
use cryptic_jitter::{Config, JitterBuffer, Packet};
use rand::rngs::StdRng;
use rand::SeedableRng;

const CALM_PACKETS: usize = 2_000; // 40 s

#[test]
fn sudden_jitter_lifts_the_target_within_half_a_second() {
    let mut rng = StdRng::seed_from_u64(0x1A7E);
    let mut arrivals: Vec<(i64, usize)> = (0..CALM_PACKETS + 500)
        .map(|k| {
            let extra = if k < CALM_PACKETS {
                0
            } else {
                (60_000.0 + 30_000.0 * gaussian(&mut rng)).max(0.0) as i64
            };
            (k as i64 * FRAME_US + FLOOR_US + extra, k)
        })
        .collect();
    arrivals.sort_unstable();

    let t0 = Instant::now();
    let at = |us: i64| t0 + Duration::from_micros(us as u64);
    let mut c = Config::default();
    c.time_stretch = true;
    let mut jb = JitterBuffer::new(c).unwrap();
    let mut next = 0;
    let mut target_at = Vec::new();
    for tick in 0..(CALM_PACKETS + 500) as i64 {
        let poll_us = tick * FRAME_US + 7_300;
        while next < arrivals.len() && arrivals[next].0 <= poll_us {
            let (a, k) = arrivals[next];
            let p = Packet::new(5, k as u16, k as u32 * FRAME_TS, b"opus");
            jb.handle_packet(at(a), p).unwrap();
            next += 1;
        }
        let _ = jb.poll(at(poll_us));
        target_at.push(jb.target_delay());
    }

    let calm = target_at[CALM_PACKETS - 1];
    assert!(calm < Duration::from_millis(10), "calm target {calm:?}");
    // Half a second (25 packets) into the jitter: most of the way up already.
    let soon = target_at[CALM_PACKETS + 25];
    assert!(
        soon >= Duration::from_millis(60),
        "target {soon:?} 0.5 s after the jitter started"
    );
    let s = jb.stats();
    // 10 s in: late losses stay a small fraction of the 500 packets.
    assert!(s.late <= 25, "{s:?}");
}
