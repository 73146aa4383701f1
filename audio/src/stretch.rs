//! Time-stretch of decoded speech, one pitch period at a time: the jitter
//! buffer asks for a frame to be played a little shorter (its delay is
//! higher than it needs) or a little longer (lower than it wants), and this
//! removes or repeats one pitch period inside the frame, where the signal
//! repeats itself anyway, so that nobody hears it. As NetEq's accelerate
//! and preemptive expand do, and only where that is safe: on a strongly
//! periodic (voiced, stationary) stretch of the frame, or on a quiet one;
//! otherwise the frame plays as it is and the request waits for the next.
//!
//! The period is the lag of the best normalised autocorrelation between
//! 2.5 and 10 ms (400 to 100 Hz); the cut or the copy is a linear
//! cross-fade over one period, so the waveform stays continuous.

/// The shortest period tried: 2.5 ms at 48 kHz (a 400 Hz voice).
pub const MIN_PERIOD: usize = 120;
/// The longest: 10 ms (100 Hz), so that two periods fit in a 20 ms frame.
pub const MAX_PERIOD: usize = 480;
/// Normalised correlation above which a stretch counts as periodic.
const PERIODIC: f64 = 0.85;
/// Mean square below which a frame counts as quiet (about -50 dBFS).
const QUIET: f64 = 100.0 * 100.0;

/// What [`stretch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stretched {
    /// Nothing: the frame was neither periodic nor quiet enough.
    Unchanged,
    /// One period of this many samples was removed.
    Shortened(usize),
    /// One period of this many samples was repeated.
    Lengthened(usize),
}

/// The pitch period of `x` (in samples) and its normalised correlation,
/// over lags [`MIN_PERIOD`]..=[`MAX_PERIOD`] that fit twice in `x`.
pub fn pitch_period(x: &[i16]) -> Option<(usize, f64)> {
    let max = MAX_PERIOD.min(x.len() / 2);
    if max < MIN_PERIOD {
        return None;
    }
    let nccs: Vec<f64> = (MIN_PERIOD..=max)
        .map(|lag| {
            // The two periods that would be cut or copied: x[s..s+lag] and
            // x[s+lag..s+2lag], centred in the frame.
            let s = (x.len() - 2 * lag) / 2;
            let (a, b) = (&x[s..s + lag], &x[s + lag..s + 2 * lag]);
            let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
            for (&p, &q) in a.iter().zip(b) {
                let (p, q) = (f64::from(p), f64::from(q));
                ab += p * q;
                aa += p * p;
                bb += q * q;
            }
            if aa > 0.0 && bb > 0.0 {
                ab / (aa * bb).sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let best = nccs.iter().copied().fold(f64::MIN, f64::max);
    // Multiples of the period correlate as well as the period itself: take
    // the shortest lag that is a local peak within a hair of the best.
    (0..nccs.len())
        .find(|&i| {
            let peak = (i == 0 || nccs[i] >= nccs[i - 1])
                && (i + 1 == nccs.len() || nccs[i] >= nccs[i + 1]);
            peak && nccs[i] >= best - 0.02
        })
        .map(|i| (MIN_PERIOD + i, nccs[i]))
}

/// Cross-fades `from` into `to` (same length) into `out`.
fn cross_fade(from: &[i16], to: &[i16], out: &mut Vec<i16>) {
    let n = from.len() as f64;
    for (i, (&f, &t)) in from.iter().zip(to).enumerate() {
        let w = (i as f64 + 0.5) / n;
        out.push((f64::from(f) * (1.0 - w) + f64::from(t) * w).round() as i16);
    }
}

/// Whether `frame` is quiet enough (under about -50 dBFS) that cutting or
/// repeating a piece of it cannot be heard.
pub fn is_quiet(frame: &[i16]) -> bool {
    let energy =
        frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len().max(1) as f64;
    energy < QUIET
}

/// Plays `frame` one pitch period shorter (`shorten`) or longer into
/// `out` (cleared first), when the frame is periodic or quiet; otherwise
/// copies it unchanged.
pub fn stretch(frame: &[i16], shorten: bool, out: &mut Vec<i16>) -> Stretched {
    out.clear();
    let quiet = is_quiet(frame);
    let period = match pitch_period(frame) {
        Some((lag, ncc)) if ncc >= PERIODIC => Some(lag),
        // Quiet: any period will do; the shortest keeps the change small.
        _ if quiet && frame.len() >= 2 * MIN_PERIOD => Some(MIN_PERIOD),
        _ => None,
    };
    let Some(t) = period else {
        out.extend_from_slice(frame);
        return Stretched::Unchanged;
    };
    let s = (frame.len() - 2 * t) / 2;
    let (a, b) = (&frame[s..s + t], &frame[s + t..s + 2 * t]);
    if shorten {
        // ... A B ... -> ... (A fading into B) ...
        out.extend_from_slice(&frame[..s]);
        cross_fade(a, b, out);
        out.extend_from_slice(&frame[s + 2 * t..]);
        Stretched::Shortened(t)
    } else {
        // ... A B ... -> ... A (B fading into A) B ...
        out.extend_from_slice(&frame[..s + t]);
        cross_fade(b, a, out);
        out.extend_from_slice(&frame[s + t..]);
        Stretched::Lengthened(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced-like frame: a 200 Hz fundamental with harmonics.
    fn voiced(len: usize, phase: usize) -> Vec<i16> {
        (0..len)
            .map(|i| {
                let t = (i + phase) as f64 / 48_000.0;
                let w = std::f64::consts::TAU * 200.0 * t;
                (6000.0 * w.sin() + 3000.0 * (2.0 * w).sin() + 1500.0 * (3.0 * w).sin()) as i16
            })
            .collect()
    }

    /// The largest step between neighbouring samples.
    fn max_step(x: &[i16]) -> i32 {
        x.windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_voiced_frame_loses_or_gains_exactly_one_period_without_a_jump() {
        let frame = voiced(960, 17);
        assert_eq!(pitch_period(&frame).map(|p| p.0), Some(240));
        let mut out = Vec::new();
        assert_eq!(stretch(&frame, true, &mut out), Stretched::Shortened(240));
        assert_eq!(out.len(), 720);
        assert!(max_step(&out) <= max_step(&frame) + 50, "no click");
        assert_eq!(stretch(&frame, false, &mut out), Stretched::Lengthened(240));
        assert_eq!(out.len(), 1200);
        assert!(max_step(&out) <= max_step(&frame) + 50, "no click");
        // A periodic signal stretched by whole periods is the same signal.
        let longer = voiced(1200, 17);
        let err = out
            .iter()
            .zip(&longer)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap_or(0);
        assert!(err <= 2, "lengthened frame is the voice itself ({err})");
    }

    #[test]
    fn loud_noise_is_left_alone_and_quiet_frames_are_stretched() {
        let mut seed = 7u32;
        let noise: Vec<i16> = (0..960)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 16) as i16 / 4
            })
            .collect();
        let mut out = Vec::new();
        assert_eq!(stretch(&noise, true, &mut out), Stretched::Unchanged);
        assert_eq!(out, noise);
        let quiet: Vec<i16> = noise.iter().map(|s| s / 200).collect();
        assert_eq!(
            stretch(&quiet, true, &mut out),
            Stretched::Shortened(MIN_PERIOD)
        );
        assert_eq!(out.len(), 960 - MIN_PERIOD);
    }

    #[test]
    fn short_or_empty_frames_are_copied() {
        let mut out = Vec::new();
        assert_eq!(stretch(&[], true, &mut out), Stretched::Unchanged);
        assert_eq!(stretch(&[5; 100], false, &mut out), Stretched::Unchanged);
        assert_eq!(out, vec![5; 100]);
    }
}
