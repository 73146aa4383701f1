//! Issue 16: under loss, about a third of the concealed frames of a whole
//! call were played before the packet after them had arrived, so the
//! decoder could not rebuild them from that packet's in-band FEC (Opus
//! LBRR) although the sender added it. With `fec_wait` the buffer holds one
//! frame more while losses come: the packet after a lost one is then
//! nearly always there when the lost one is due. These runs measure the
//! share of lost frames whose FEC was at hand (of those whose next packet
//! arrived at all), and what it costs in
//! delay, on the whole-call figure's path (40 ms ± 10 ms, 5 % random loss),
//! with the buffer as the client configures it.

mod common;

use std::time::Duration;

use common::{run, Trace, FLOOR_US, FRAME_TS, FRAME_US};
use cryptic_jitter::{Config, JitterBuffer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn buffer(fec_wait: Duration) -> JitterBuffer {
    let mut c = Config::default();
    c.time_stretch = true;
    let frame = c.frame_duration();
    c.hysteresis = frame - frame / 4 + Duration::from_millis(2);
    c.start_delay = frame;
    c.fec_wait = fec_wait;
    JitterBuffer::new(c).expect("valid config")
}

/// `seconds` of 20 ms packets, 40 ± 10 ms (uniform), `loss` random.
fn path(seconds: usize, loss: f64, seed: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let packets = (0..seconds * 50)
        .map(|k| {
            let send_us = k as i64 * FRAME_US;
            let extra = rng.random_range(-10_000..=10_000i64);
            let lost = rng.random_bool(loss);
            common::SimPacket {
                seq: 3_000u16.wrapping_add(k as u16),
                ts: 9_000u32.wrapping_add(k as u32 * FRAME_TS),
                send_us,
                arrival_us: (!lost).then_some(send_us + FLOOR_US + extra),
            }
        })
        .collect();
    Trace {
        name: "random loss",
        packets,
        ts0: 9_000,
    }
}

#[test]
fn with_fec_wait_nearly_every_lost_frame_has_the_next_packets_fec() {
    let (mut without_share, mut with_share) = (0.0, 0.0);
    let (mut without_delay, mut with_delay) = (0.0, 0.0);
    let seeds = 5;
    for seed in 0..seeds {
        let trace = path(120, 0.05, seed);
        let mut a = buffer(Duration::ZERO);
        let ma = run(&trace, &mut a, 7_300, true);
        let mut b = buffer(Duration::from_secs(5));
        let mb = run(&trace, &mut b, 7_300, true);
        // Lost frames whose next packet arrived: FEC can rebuild those.
        let lost: Vec<bool> = trace
            .packets
            .iter()
            .map(|p| p.arrival_us.is_none())
            .collect();
        let rebuildable = lost.windows(2).filter(|w| w[0] && !w[1]).count();
        let share = |s: cryptic_jitter::Stats| s.fec_available as f64 / rebuildable as f64;
        let (sa, sb) = (share(a.stats()), share(b.stats()));
        println!(
            "seed {seed}: FEC at hand for {:.0} % of the lost frames it could rebuild without the \
             wait, {:.0} % with; mean delay {:.1} ms -> {:.1} ms; concealed {} -> {}",
            sa * 100.0,
            sb * 100.0,
            ma.mean_ms(),
            mb.mean_ms(),
            a.stats().concealed,
            b.stats().concealed,
        );
        assert!(sb >= 0.98, "seed {seed}: FEC at hand for {sb:.2} only");
        // One frame more, no more.
        assert!(
            mb.mean_ms() <= ma.mean_ms() + 21.0,
            "seed {seed}: delay {:.1} -> {:.1} ms",
            ma.mean_ms(),
            mb.mean_ms()
        );
        without_share += sa;
        with_share += sb;
        without_delay += ma.mean_ms();
        with_delay += mb.mean_ms();
    }
    let n = f64::from(seeds as u32);
    println!(
        "mean over {seeds} seeds: FEC at hand {:.0} % -> {:.0} %, delay {:.1} -> {:.1} ms",
        without_share / n * 100.0,
        with_share / n * 100.0,
        without_delay / n,
        with_delay / n
    );
    assert!(with_share > without_share, "the wait brought no FEC");
}

#[test]
fn without_losses_the_wait_costs_nothing() {
    let trace = path(60, 0.0, 9);
    let mut a = buffer(Duration::ZERO);
    let ma = run(&trace, &mut a, 7_300, true);
    let mut b = buffer(Duration::from_secs(5));
    let mb = run(&trace, &mut b, 7_300, true);
    assert_eq!(a.stats(), b.stats());
    assert!((ma.mean_ms() - mb.mean_ms()).abs() < 1e-9);
}
