//! Seeded network simulator shared by the scenario tests.
//!
//! A trace is a list of 20 ms packets with their send time (sender clock
//! mapped to real time) and arrival time (or loss). [`run`] replays a trace
//! into a buffer under a virtual clock: arrivals and polls are processed in
//! time order, the audio side polls once per frame period (shortened or
//! lengthened when it honours a stretch request), and every output is
//! scored. Nothing sleeps; the only clock is `Instant` base + offsets.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use cryptic_jitter::reference::FixedDelay;
use cryptic_jitter::{Config, JitterBuffer, Packet, Playout, Stats, Stretch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(crate) const FRAME_US: i64 = 20_000;
pub(crate) const FRAME_TS: u32 = 960;
/// Propagation delay every trace shares; play-out delay is measured above it.
pub(crate) const FLOOR_US: i64 = 40_000;
pub(crate) const SSRC: u32 = 0x5EED_0001;

#[derive(Clone, Copy, Debug)]
pub(crate) struct SimPacket {
    pub(crate) seq: u16,
    pub(crate) ts: u32,
    pub(crate) send_us: i64,
    pub(crate) arrival_us: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) struct Trace {
    pub(crate) name: &'static str,
    pub(crate) packets: Vec<SimPacket>,
    pub(crate) ts0: u32,
}

/// The network conditions of the report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Net {
    Clean,
    /// Normal delay variation: 60 ms mean extra delay, 30 ms standard deviation.
    Gaussian30,
    /// Calm periods alternating with bursts whose queueing delay is Pareto
    /// distributed (x_m 5 ms, alpha 2), first in first out.
    ParetoBursty,
    /// 5% independent loss.
    Loss5,
    /// Gilbert-Elliott burst loss (G->B 1%, B->G 30%, loss 0.5% / 70%).
    GilbertElliott,
    /// netem-style reordering: 2% of packets skip the 30 ms queue and
    /// overtake the packet sent before them.
    Reorder2,
    /// The link stalls for 300 ms once, then delivers the backlog at once.
    Spike300,
    /// The sender's clock runs fast (positive) or slow (negative), in ppm.
    Drift(i32),
}

pub(crate) fn gaussian(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn pareto(rng: &mut StdRng, xm: f64, alpha: f64) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-12);
    xm / u.powf(1.0 / alpha)
}

/// Builds a seeded trace of `seconds` of 20 ms packets.
pub(crate) fn trace(net: Net, seconds: u32, seed: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = seconds as usize * 50;
    let seq0: u16 = rng.random();
    let ts0: u32 = rng.random();
    let ppm = match net {
        Net::Drift(p) => f64::from(p),
        _ => 0.0,
    };
    let mut packets = Vec::with_capacity(n);
    let mut bursty = false;
    let mut bad = false;
    let mut last_arrival = i64::MIN;
    let spike_at = i64::from(seconds) * 500_000 + 7_000;
    for k in 0..n {
        let send_us = (k as f64 * FRAME_US as f64 / (1.0 + ppm * 1e-6)).round() as i64;
        let mut extra: i64 = 0;
        let mut lost = false;
        let mut fifo = false;
        match net {
            Net::Clean | Net::Drift(_) => {}
            Net::Gaussian30 => {
                extra = (60_000.0 + 30_000.0 * gaussian(&mut rng)).max(0.0) as i64;
            }
            Net::ParetoBursty => {
                // Mean calm period 20 s, mean burst 5 s.
                if bursty {
                    bursty = rng.random::<f64>() >= 1.0 / 250.0;
                } else {
                    bursty = rng.random::<f64>() < 1.0 / 1_000.0;
                }
                extra = if bursty {
                    (pareto(&mut rng, 5_000.0, 2.0) - 5_000.0).min(1_000_000.0) as i64
                } else {
                    (pareto(&mut rng, 2_000.0, 3.0) - 2_000.0) as i64
                };
                fifo = true;
            }
            Net::Loss5 => lost = rng.random::<f64>() < 0.05,
            Net::GilbertElliott => {
                bad = if bad {
                    rng.random::<f64>() >= 0.3
                } else {
                    rng.random::<f64>() < 0.01
                };
                lost = rng.random::<f64>() < if bad { 0.7 } else { 0.005 };
            }
            Net::Reorder2 => {
                extra = if rng.random::<f64>() < 0.02 {
                    0
                } else {
                    30_000
                };
            }
            Net::Spike300 => {
                if send_us >= spike_at && send_us < spike_at + 300_000 {
                    extra = spike_at + 300_000 - send_us;
                }
                fifo = true;
            }
        }
        let mut arrival = send_us + FLOOR_US + extra;
        if fifo {
            arrival = arrival.max(last_arrival + 100);
            last_arrival = arrival;
        }
        packets.push(SimPacket {
            seq: seq0.wrapping_add(k as u16),
            ts: ts0.wrapping_add(k as u32 * FRAME_TS),
            send_us,
            arrival_us: (!lost).then_some(arrival),
        });
    }
    let name = match net {
        Net::Clean => "clean",
        Net::Gaussian30 => "gaussian jitter 30 ms",
        Net::ParetoBursty => "bursty jitter (Pareto)",
        Net::Loss5 => "5% random loss",
        Net::GilbertElliott => "Gilbert-Elliott loss",
        Net::Reorder2 => "2% reordering",
        Net::Spike300 => "300 ms delay spike",
        Net::Drift(p) if p >= 0 => "sender clock 200 ppm fast",
        Net::Drift(_) => "sender clock 200 ppm slow",
    };
    Trace { name, packets, ts0 }
}

/// What the simulator needs from a buffer.
pub(crate) trait Buffer {
    fn insert(&mut self, now: Instant, p: Packet<'_>);
    fn poll(&mut self, now: Instant) -> Out;
    fn stats(&self) -> Stats;
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Out {
    Frame { ts: u32, stretch: Stretch },
    Conceal,
    Silence,
}

fn out(p: Playout<'_>) -> Out {
    match p {
        Playout::Frame(f) => Out::Frame {
            ts: f.timestamp,
            stretch: f.stretch,
        },
        Playout::Conceal(_) => Out::Conceal,
        Playout::Silence(_) => Out::Silence,
        _ => Out::Silence,
    }
}

impl Buffer for JitterBuffer {
    fn insert(&mut self, now: Instant, p: Packet<'_>) {
        self.handle_packet(now, p).expect("payload fits");
    }
    fn poll(&mut self, now: Instant) -> Out {
        out(JitterBuffer::poll(self, now))
    }
    fn stats(&self) -> Stats {
        JitterBuffer::stats(self)
    }
}

impl Buffer for FixedDelay {
    fn insert(&mut self, now: Instant, p: Packet<'_>) {
        self.handle_packet(now, p).expect("payload fits");
    }
    fn poll(&mut self, now: Instant) -> Out {
        out(FixedDelay::poll(self, now))
    }
    fn stats(&self) -> Stats {
        FixedDelay::stats(self)
    }
}

/// Our buffer as the report runs it: the audio side honours stretch requests.
pub(crate) fn ours() -> JitterBuffer {
    let mut c = Config::default();
    c.time_stretch = true;
    JitterBuffer::new(c).expect("valid config")
}

/// Ours without time-stretch: a buffer too deep drops whole frames.
pub(crate) fn ours_dropping() -> JitterBuffer {
    JitterBuffer::new(Config::default()).expect("valid config")
}

/// The fixed 60 ms reference.
pub(crate) fn fixed60() -> FixedDelay {
    FixedDelay::new(&Config::default(), Duration::from_millis(60)).expect("valid config")
}

/// Scores of one run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) sent: u64,
    pub(crate) arrived: u64,
    pub(crate) played: u64,
    /// Arrived but never played (too late, or dropped to shrink).
    pub(crate) late_lost: u64,
    /// Conceal outputs between the first and last played frame.
    pub(crate) concealed: u64,
    /// Polls between the first and last played frame.
    pub(crate) polls: u64,
    /// Conceal or silence while nothing newer than the last played frame
    /// had arrived and the next packet was not lost: the buffer ran dry.
    pub(crate) underruns: u64,
    /// Play-out delay of each played frame above the propagation floor, µs.
    pub(crate) delays: Vec<i64>,
    pub(crate) stats: Stats,
}

impl Metrics {
    pub(crate) fn mean_ms(&self) -> f64 {
        self.delays.iter().sum::<i64>() as f64 / self.delays.len().max(1) as f64 / 1e3
    }
    pub(crate) fn p95_ms(&self) -> f64 {
        let mut d = self.delays.clone();
        d.sort_unstable();
        let i = (d.len() as f64 * 0.95) as usize;
        d.get(i.min(d.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1e3
    }
    pub(crate) fn late_rate(&self) -> f64 {
        self.late_lost as f64 / self.sent.max(1) as f64
    }
    pub(crate) fn conceal_rate(&self) -> f64 {
        self.concealed as f64 / self.polls.max(1) as f64
    }
}

/// How much a stretch request shortens or lengthens one frame on the audio side.
pub(crate) const STRETCH_US: i64 = 5_000;

/// Replays `trace` into `buf`; the audio side starts polling at
/// `phase_us` and honours stretch requests when `stretch` is true.
pub(crate) fn run<B: Buffer>(trace: &Trace, buf: &mut B, phase_us: i64, stretch: bool) -> Metrics {
    let base = Instant::now();
    let at = |us: i64| base + Duration::from_micros(us.max(0) as u64);
    let mut arrivals: Vec<(i64, usize)> = trace
        .packets
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.arrival_us.map(|a| (a, i)))
        .collect();
    arrivals.sort_unstable();
    let end_us = arrivals.last().map_or(0, |a| a.0) + 2_000_000;
    let payload = [0x42u8; 80];
    let mut m = Metrics {
        sent: trace.packets.len() as u64,
        arrived: arrivals.len() as u64,
        delays: Vec::with_capacity(trace.packets.len()),
        ..Metrics::default()
    };
    let mut played = vec![false; trace.packets.len()];
    let mut next_arrival = 0;
    let mut max_arrived: Option<usize> = None;
    let mut last_played: Option<usize> = None;
    let mut pending_conceal = (0u64, 0u64, 0u64); // since the last played frame
    let mut poll_us = phase_us;
    while poll_us <= end_us {
        while next_arrival < arrivals.len() && arrivals[next_arrival].0 <= poll_us {
            let (a, i) = arrivals[next_arrival];
            let p = &trace.packets[i];
            buf.insert(at(a), Packet::new(SSRC, p.seq, p.ts, &payload));
            max_arrived = max_arrived.max(Some(i));
            next_arrival += 1;
        }
        let mut period = FRAME_US;
        match buf.poll(at(poll_us)) {
            Out::Frame { ts, stretch: s } => {
                let i = (ts.wrapping_sub(trace.ts0) / FRAME_TS) as usize;
                if let Some(slot) = played.get_mut(i) {
                    *slot = true;
                    m.played += 1;
                    m.delays.push(poll_us - trace.packets[i].send_us - FLOOR_US);
                }
                if last_played.is_some() {
                    m.concealed += pending_conceal.0;
                    m.polls += pending_conceal.1;
                    m.underruns += pending_conceal.2;
                }
                m.polls += 1;
                pending_conceal = (0, 0, 0);
                last_played = Some(i);
                if stretch {
                    period += match s {
                        Stretch::Compress => -STRETCH_US,
                        Stretch::Expand => STRETCH_US,
                        _ => 0,
                    };
                }
            }
            o => {
                if last_played.is_some() {
                    pending_conceal.1 += 1;
                    if o == Out::Conceal {
                        pending_conceal.0 += 1;
                    }
                    // Ran dry although the next packet was not lost: it is
                    // merely late.
                    let next = last_played.map_or(0, |l| l + 1);
                    let next_coming = trace
                        .packets
                        .get(next)
                        .is_some_and(|p| p.arrival_us.is_some());
                    if max_arrived <= last_played && next_coming {
                        pending_conceal.2 += 1;
                    }
                }
            }
        }
        poll_us += period;
    }
    m.late_lost = trace
        .packets
        .iter()
        .zip(&played)
        .filter(|(p, &pl)| p.arrival_us.is_some() && !pl)
        .count() as u64;
    m.stats = buf.stats();
    m
}
