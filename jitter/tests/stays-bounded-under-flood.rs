//! A flood of packets, or packets claiming to be far in the future, cannot
//! grow the buffer.

use std::time::{Duration, Instant};

use cryptic_jitter::{Config, Error, JitterBuffer, Packet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn flood_of_random_packets_never_exceeds_the_fixed_capacity() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    let cap = jb.capacity();
    let mut rng = StdRng::seed_from_u64(7);
    let payload = [0u8; 1_500];
    for i in 0..200_000u64 {
        let now = t0 + Duration::from_micros(i * 10);
        let seq: u16 = if rng.random_bool(0.5) {
            rng.random()
        } else {
            (i / 3) as u16
        };
        let ts: u32 = if rng.random_bool(0.5) {
            rng.random()
        } else {
            (i / 3) as u32 * 960
        };
        let len = rng.random_range(0..=1_500);
        jb.handle_packet(now, Packet::new(1, seq, ts, &payload[..len]))
            .unwrap();
        if i % 100 == 0 {
            let _ = jb.poll(now);
        }
        assert!(jb.len() <= cap);
    }
    assert_eq!(jb.capacity(), cap);
    let s = jb.stats();
    assert!(s.discarded + s.overflow + s.late + s.duplicates > 0);
}

#[test]
fn in_order_flood_without_polls_keeps_only_the_newest_packets() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    for k in 0..10_000u32 {
        jb.handle_packet(t0, Packet::new(1, k as u16, k * 960, b"opus"))
            .unwrap();
    }
    assert!(jb.len() <= jb.capacity());
    assert!(jb.stats().overflow > 0 || jb.stats().discarded > 0);
}

#[test]
fn oversized_payload_is_refused_as_peer_misbehaviour() {
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    let big = vec![0u8; 1_501];
    let r = jb.handle_packet(Instant::now(), Packet::new(1, 1, 1, &big));
    assert_eq!(
        r,
        Err(Error::PayloadTooLarge {
            len: 1_501,
            max: 1_500
        })
    );
    assert!(jb.is_empty());
}

#[test]
fn invalid_config_is_refused() {
    let mut c = Config::default();
    c.quantile = 0.2;
    assert!(matches!(JitterBuffer::new(c), Err(Error::InvalidConfig(_))));
    let mut c = Config::default();
    c.frame_samples = 0;
    assert!(matches!(JitterBuffer::new(c), Err(Error::InvalidConfig(_))));
}
