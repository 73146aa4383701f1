//! The jitter buffer against its reference in the same group.
//!
//! - `jitter/insert_pop`: one `handle_packet` plus one `poll` per 20 ms
//!   packet, steady state; ours against the fixed-delay reference.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cryptic_jitter::reference::FixedDelay;
use cryptic_jitter::{Config, JitterBuffer, Packet, Playout};

const PAYLOAD: [u8; 80] = [0x5A; 80];

fn played(p: Playout<'_>) -> usize {
    match p {
        Playout::Frame(f) => f.payload.len(),
        Playout::Conceal(c) => c.fec.map_or(1, <[u8]>::len),
        _ => 0,
    }
}

/// Feeds packet `k` (arrival with a little jitter) and polls once.
macro_rules! step {
    ($buf:expr, $t0:expr, $k:expr) => {{
        let k: u64 = $k;
        let jitter = (k * 7_919 % 13) * 1_000;
        let arrival = $t0 + Duration::from_micros(k * 20_000 + 40_000 + jitter);
        let p = Packet::new(1, k as u16, (k as u32).wrapping_mul(960), &PAYLOAD);
        black_box($buf.handle_packet(arrival, black_box(p)).is_ok());
        let poll = $t0 + Duration::from_micros(k * 20_000 + 47_300);
        black_box(played($buf.poll(poll)))
    }};
}

fn insert_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("jitter/insert_pop");
    g.throughput(Throughput::Elements(1));
    let t0 = Instant::now();

    let mut ours = JitterBuffer::new(Config::default()).expect("default config is valid");
    let mut k = 0u64;
    for _ in 0..1_000 {
        step!(ours, t0, k);
        k += 1;
    }
    g.bench_function("adaptive", |b| {
        b.iter(|| {
            let r = step!(ours, t0, k);
            k += 1;
            r
        })
    });

    let mut fixed = FixedDelay::new(&Config::default(), Duration::from_millis(60))
        .expect("default config is valid");
    let mut k = 0u64;
    for _ in 0..1_000 {
        step!(fixed, t0, k);
        k += 1;
    }
    g.bench_function("fixed_60ms_reference", |b| {
        b.iter(|| {
            let r = step!(fixed, t0, k);
            k += 1;
            r
        })
    });
    g.finish();
}

criterion_group!(benches, insert_pop);
criterion_main!(benches);
