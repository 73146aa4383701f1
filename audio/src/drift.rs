//! Clock drift between a sound card and the call: the card plays (or
//! records) at its own idea of 48 kHz, a few hundred parts per million off
//! the sender's, so over a long call a ring between the two fills up or
//! runs dry. Instead of dropping or repeating whole chunks, the playback
//! path is resampled by a ratio a hair away from one, steered by the ring's
//! fill level: no clicks, no periodic drops.
//!
//! [`DriftControl`] is the steering (sans-IO: a level in, a ratio out, once
//! per frame); [`Stretcher`] applies a ratio to 48 kHz frames (rubato's
//! cubic interpolation, a few samples of delay).
//!
//! Not wired into the device yet: on the playback path it also steered
//! while a writer was not paced in real time (a sink catching up) and
//! shifted the audio enough to fail the exact-playback device test; it
//! needs to learn only from a ring in steady state first.

use rubato::{FastFixedIn, PolynomialDegree, Resampler};

use crate::Error;

/// The largest correction, parts per million (a sound card is rarely more
/// than 300 ppm off; twice that leaves room to catch up).
pub const MAX_PPM: f64 = 1000.0;

/// Steers a ring's fill level to a target by a resampling ratio.
///
/// Every frame the level just before the write comes in, less what the
/// card has played of its current period since it last pulled (without
/// that, the level jumps by a whole period whenever the card's pulls slide
/// past our writes, and the steering hunts around the jump); its mean over
/// a window of [`DriftControl::WINDOW`] frames is the measure. A
/// proportional-integral step on the mean's distance from the target gives
/// the new ratio; the integral learns the card's offset, so once locked the
/// correction holds with no error left.
#[derive(Clone, Debug)]
pub struct DriftControl {
    target: f64,
    sum: f64,
    frames: u32,
    integral: f64,
    ratio: f64,
}

impl DriftControl {
    /// Frames per measurement (one second of 20 ms frames).
    pub const WINDOW: u32 = 50;
    /// Errors up to this many samples (1 ms at 48 kHz) are none.
    const DEADBAND: f64 = 48.0;
    /// ppm of correction per sample of error.
    const KP: f64 = 4.0;
    /// ppm of correction per sample of error per window, accumulated.
    const KI: f64 = 0.4;

    /// A controller holding the low point of the ring at `target` samples.
    pub fn new(target: usize) -> Self {
        Self {
            target: target as f64,
            sum: 0.0,
            frames: 0,
            integral: 0.0,
            ratio: 1.0,
        }
    }

    /// The ratio now (output samples per input sample).
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The ring's level (samples) just before this frame's write, less the
    /// part of the card's current period already played; returns the ratio
    /// to resample this frame by.
    pub fn update(&mut self, level: f64) -> f64 {
        self.sum += level;
        self.frames += 1;
        if self.frames < Self::WINDOW {
            return self.ratio;
        }
        let mean = self.sum / f64::from(self.frames);
        self.sum = 0.0;
        self.frames = 0;
        // Above the target: the card is slow (or we are fast): produce
        // fewer samples. Within a millisecond of it, nothing to do: a card
        // that keeps time is never resampled (an echo canceller's reference
        // stays exactly what is played).
        let error = match mean - self.target {
            e if e.abs() <= Self::DEADBAND => 0.0,
            e => e - Self::DEADBAND * e.signum(),
        };
        self.integral = (self.integral + Self::KI * error).clamp(-MAX_PPM, MAX_PPM);
        let ppm = (Self::KP * error + self.integral).clamp(-MAX_PPM, MAX_PPM);
        self.ratio = 1.0 - ppm * 1e-6;
        self.ratio
    }
}

/// Resamples 48 kHz frames by a ratio near one.
pub struct Stretcher {
    inner: FastFixedIn<f32>,
    out: Vec<Vec<f32>>,
}

impl std::fmt::Debug for Stretcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stretcher").finish_non_exhaustive()
    }
}

impl Stretcher {
    /// A stretcher for frames of `frame` samples.
    ///
    /// # Errors
    ///
    /// When rubato refuses the sizes.
    pub fn new(frame: usize) -> Result<Self, Error> {
        let inner = FastFixedIn::new(1.0, 1.01, PolynomialDegree::Cubic, frame, 1)
            .map_err(|e| Error::Resampler(e.to_string()))?;
        let max = inner.output_frames_max();
        Ok(Self {
            inner,
            out: vec![vec![0.0; max]],
        })
    }

    /// Resamples `frame` by `ratio` (clamped to ±[`MAX_PPM`]); returns the
    /// output (one or two samples more or fewer than the input).
    ///
    /// # Errors
    ///
    /// When the frame has the wrong length.
    pub fn process(&mut self, frame: &[f32], ratio: f64) -> Result<&[f32], Error> {
        let r = ratio.clamp(1.0 - MAX_PPM * 1e-6, 1.0 + MAX_PPM * 1e-6);
        self.inner
            .set_resample_ratio_relative(r, true)
            .map_err(|e| Error::Resampler(e.to_string()))?;
        let (_, n) = self
            .inner
            .process_into_buffer(&[frame], &mut self.out, None)
            .map_err(|e| Error::Resampler(e.to_string()))?;
        Ok(&self.out[0][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated hour: frames of 960 samples every 20 ms through the
    /// stretcher into a ring, a card pulling 480-sample periods every 10 ms
    /// of its own clock, `ppm` fast (positive) or slow. Returns the range of
    /// the delay the ring adds (each second's mean of the level before a
    /// write, less what the card played of its period) after the first
    /// minute, and the underruns after it.
    fn hour(ppm: f64) -> (f64, f64, u32) {
        let mut control = DriftControl::new(480);
        let mut stretch = Stretcher::new(960).unwrap();
        let frame: Vec<f32> = (0..960).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let mut ring: usize = 960;
        // Samples the card consumed, counted in its own clock.
        let mut pulled = 0.0f64;
        let (mut low, mut high, mut dry) = (f64::MAX, 0.0f64, 0);
        let mut second = 0.0;
        let frames = 180_000; // an hour of 20 ms frames
        for i in 0..frames {
            let due_now = i as f64 * 960.0 * (1.0 + ppm * 1e-6);
            let level = ring as f64 - (due_now - pulled).clamp(0.0, 480.0);
            second += level / 50.0;
            if i % 50 == 49 {
                if i >= 3_000 {
                    low = low.min(second);
                    high = high.max(second);
                }
                second = 0.0;
            }
            let r = control.update(level);
            ring += stretch.process(&frame, r).unwrap().len();
            // 20 ms of our clock: the card pulls its periods meanwhile.
            let due = (i as f64 + 1.0) * 960.0 * (1.0 + ppm * 1e-6);
            while pulled + 480.0 <= due {
                pulled += 480.0;
                if ring >= 480 {
                    ring -= 480;
                } else {
                    if i >= 3_000 {
                        dry += 1;
                    }
                    ring = 0;
                }
            }
        }
        (low, high, dry)
    }

    #[test]
    fn a_card_300_ppm_fast_or_slow_keeps_the_delay_flat_for_an_hour() {
        for ppm in [300.0, -300.0] {
            let (low, high, dry) = hour(ppm);
            println!(
                "{ppm:+} ppm: the ring holds {:.2}..{:.2} ms for an hour, {dry} underruns",
                low / 48.0,
                high / 48.0
            );
            assert_eq!(dry, 0, "{ppm} ppm: no underrun after the first minute");
            // Flat: within 1.5 ms of the 10 ms target all hour (the
            // steering leaves errors under 1 ms alone).
            assert!(
                (low - 480.0).abs() < 72.0 && (high - 480.0).abs() < 72.0,
                "{ppm} ppm: {low}..{high}"
            );
        }
    }

    #[test]
    fn ratios_stay_within_the_bound() {
        let mut c = DriftControl::new(100);
        for _ in 0..10_000 {
            let r = c.update(100_000.0);
            assert!((1.0 - r).abs() <= MAX_PPM * 1e-6 + 1e-12);
        }
        assert!(c.ratio() < 1.0);
    }
}
