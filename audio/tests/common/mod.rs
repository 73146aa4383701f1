//! Shared by the integration tests: a private PulseAudio daemon, test
//! signals and alignment by cross-correlation.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::path::Path;

use rand::{Rng, SeedableRng};

#[allow(unused_imports)] // only the device tests use it
pub use cryptic_tests::pulse::pulse_or_skip;

/// Seeded noise bursts (50 to 250 ms on, 30 to 150 ms off) at about a
/// quarter of full scale: a signal whose alignment is unambiguous.
pub fn noise_bursts(seed: u64, samples: usize) -> Vec<i16> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(samples);
    let mut on = true;
    while out.len() < samples {
        let len = if on {
            rng.random_range(2_400..12_000)
        } else {
            rng.random_range(1_440..7_200)
        };
        for _ in 0..len {
            out.push(if on {
                rng.random_range(-8_000i16..8_000)
            } else {
                0
            });
        }
        on = !on;
    }
    out.truncate(samples);
    out
}

/// A speech-like test signal: a few harmonics of a gliding pitch, shaped
/// by syllable-like envelopes (for codec tests, where noise is unfair).
pub fn voiced(samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            let pitch = 140.0 + 40.0 * (t * 1.3).sin();
            let phase = std::f32::consts::TAU * pitch * t;
            let env = (std::f32::consts::PI * t * 4.0).sin().abs();
            let s = phase.sin()
                + 0.5 * (2.0 * phase).sin()
                + 0.3 * (3.0 * phase).sin()
                + 0.2 * (5.0 * phase).sin();
            (s * env * 6_000.0) as i16
        })
        .collect()
}

/// A less predictable voice: pitch gliding between 100 and 260 Hz several
/// times a second, formant-like harmonics and seeded syllables of random
/// length and loudness, so that concealment cannot simply repeat the last
/// pitch period.
pub fn lively_voice(seed: u64, samples: usize) -> Vec<i16> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(samples);
    let mut phase = 0.0f32;
    while out.len() < samples {
        let len = rng.random_range(3_000..12_000);
        let gain = rng.random_range(0.2f32..1.0);
        let f0 = rng.random_range(100.0f32..260.0);
        let glide = rng.random_range(-2.0f32..2.0);
        for k in 0..len {
            let x = k as f32 / len as f32;
            let pitch = (f0 * (1.0 + glide * x * 0.5)).clamp(80.0, 300.0);
            phase += std::f32::consts::TAU * pitch / 48_000.0;
            let env = (std::f32::consts::PI * x).sin() * gain;
            let s = phase.sin()
                + 0.6 * (2.0 * phase).sin()
                + 0.4 * (3.0 * phase).sin()
                + 0.25 * (4.0 * phase + 1.0).sin();
            out.push((s * env * 7_000.0) as i16);
        }
        let gap = rng.random_range(0..4_000);
        out.extend(std::iter::repeat_n(0i16, gap));
    }
    out.truncate(samples);
    out
}

pub fn write_wav(path: &Path, pcm: &[i16]) {
    let mut w = hound::WavWriter::create(path, cryptic_audio::WAV_SPEC).unwrap();
    for &s in pcm {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn envelope(x: &[i16], block: usize) -> Vec<f32> {
    x.chunks(block)
        .map(|c| c.iter().map(|&s| f32::from(s).abs()).sum::<f32>() / c.len() as f32)
        .collect()
}

fn ncc_at(a: &[f32], b: &[f32], lag: isize) -> f64 {
    // correlates a[i] with b[i + lag] over the overlap
    // over at least half of `a`: tiny overlaps correlate by chance
    let (mut ab, mut aa, mut bb, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (i, &x) in a.iter().enumerate() {
        let j = i as isize + lag;
        if j < 0 || j as usize >= b.len() {
            continue;
        }
        n += 1;
        let y = b[j as usize];
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa == 0.0 || bb == 0.0 || n < a.len() / 2 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

/// Finds where `reference` starts inside `recorded` (lag in samples,
/// between `-max_lag` and `max_lag`; negative when the recording missed the
/// reference's start) and the normalised cross-correlation of the waveforms
/// over their overlap at that lag: first on 1 ms envelopes, then sample by
/// sample.
pub fn align(reference: &[i16], recorded: &[i16], max_lag: usize) -> (isize, f64) {
    const BLOCK: usize = 48;
    let er = envelope(reference, BLOCK);
    let ec = envelope(recorded, BLOCK);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let (mr, mc) = (mean(&er), mean(&ec));
    let er: Vec<f32> = er.iter().map(|x| x - mr).collect();
    let ec: Vec<f32> = ec.iter().map(|x| x - mc).collect();
    let mut best = (0isize, f64::MIN);
    let m = (max_lag / BLOCK) as isize;
    for lag in -m..=m {
        let c = ncc_at(&er, &ec, lag);
        if c > best.1 {
            best = (lag, c);
        }
    }
    let coarse = best.0 * BLOCK as isize;
    let rf: Vec<f32> = reference.iter().map(|&s| f32::from(s)).collect();
    let cf: Vec<f32> = recorded.iter().map(|&s| f32::from(s)).collect();
    let mut fine = (coarse, f64::MIN);
    for lag in coarse - 2 * BLOCK as isize..=coarse + 2 * BLOCK as isize {
        let c = ncc_at(&rf, &cf, lag);
        if c > fine.1 {
            fine = (lag, c);
        }
    }
    (fine.0, fine.1)
}

/// Aligns `reference` inside `recorded` piece by piece (200 ms pieces, each
/// searched within 100 ms of the global alignment), so that a glitch of the
/// sound server (an underrun shifting what follows) costs one piece, not
/// the whole comparison. Returns the cross-correlation of each piece that
/// is not mostly silent.
pub fn align_pieces(reference: &[i16], recorded: &[i16], max_lag: usize) -> Vec<f64> {
    let (lag, _) = align(reference, recorded, max_lag);
    const PIECE: usize = 9_600;
    const SLACK: isize = 4_800;
    reference
        .chunks_exact(PIECE)
        .enumerate()
        .filter(|(_, piece)| piece.iter().filter(|&&s| s != 0).count() > PIECE / 2)
        .map(|(i, piece)| {
            let start = (lag + (i * PIECE) as isize - SLACK).max(0) as usize;
            let end = (start + PIECE + 2 * SLACK as usize).min(recorded.len());
            if start >= end {
                return 0.0;
            }
            align(piece, &recorded[start..end], 2 * SLACK as usize).1
        })
        .collect()
}
