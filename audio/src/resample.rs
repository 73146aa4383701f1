//! Band-limited resampling between a device's rate and 48 kHz (rubato's
//! synchronous FFT resamplers), with every buffer allocated up front.

use rubato::{FftFixedIn, FftFixedOut, Resampler};

use crate::codec::SAMPLE_RATE;
use crate::Error;

fn err<E: std::fmt::Display>(e: E) -> Error {
    Error::Resampler(e.to_string())
}

fn check_rate(rate: u32) -> Result<(), Error> {
    if !(8_000..=384_000).contains(&rate) {
        return Err(Error::Resampler(format!(
            "unsupported device rate {rate} Hz"
        )));
    }
    Ok(())
}

/// Converts mono audio at a device rate into frames of 48 kHz.
///
/// Each [`process`](Self::process) call takes exactly
/// [`input_needed`](Self::input_needed) device samples (the count varies
/// slightly from call to call) and writes one 48 kHz frame.
pub struct CaptureResampler {
    inner: FftFixedOut<f32>,
    frame: usize,
}

impl std::fmt::Debug for CaptureResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureResampler")
            .field("frame", &self.frame)
            .finish()
    }
}

impl CaptureResampler {
    /// A resampler from `device_rate` Hz to 48 kHz frames of
    /// `frame_samples` samples.
    pub fn new(device_rate: u32, frame_samples: usize) -> Result<Self, Error> {
        check_rate(device_rate)?;
        let inner = FftFixedOut::<f32>::new(
            device_rate as usize,
            SAMPLE_RATE as usize,
            frame_samples,
            1,
            1,
        )
        .map_err(err)?;
        Ok(Self {
            inner,
            frame: frame_samples,
        })
    }

    /// Device samples the next [`process`](Self::process) call consumes.
    pub fn input_needed(&self) -> usize {
        self.inner.input_frames_next()
    }

    /// The most device samples one call may need (size your staging buffer).
    pub fn input_max(&self) -> usize {
        self.inner.input_frames_max()
    }

    /// Resampler delay in 48 kHz samples.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Converts `input` (exactly [`input_needed`](Self::input_needed)
    /// samples) into one frame written to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), Error> {
        if out.len() != self.frame {
            return Err(Error::FrameSize {
                expected: self.frame,
                got: out.len(),
            });
        }
        let need = self.input_needed();
        if input.len() != need {
            return Err(Error::FrameSize {
                expected: need,
                got: input.len(),
            });
        }
        self.inner
            .process_into_buffer(&[input], &mut [out], None)
            .map_err(err)?;
        Ok(())
    }
}

/// Converts 48 kHz frames into mono audio at a device rate.
pub struct PlaybackResampler {
    inner: FftFixedIn<f32>,
    frame: usize,
}

impl std::fmt::Debug for PlaybackResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackResampler")
            .field("frame", &self.frame)
            .finish()
    }
}

impl PlaybackResampler {
    /// A resampler from 48 kHz frames of `frame_samples` samples to
    /// `device_rate` Hz.
    pub fn new(device_rate: u32, frame_samples: usize) -> Result<Self, Error> {
        check_rate(device_rate)?;
        let inner = FftFixedIn::<f32>::new(
            SAMPLE_RATE as usize,
            device_rate as usize,
            frame_samples,
            1,
            1,
        )
        .map_err(err)?;
        Ok(Self {
            inner,
            frame: frame_samples,
        })
    }

    /// The most device samples one call writes (size your output buffer).
    pub fn output_max(&self) -> usize {
        self.inner.output_frames_max()
    }

    /// Resampler delay in device samples.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Converts one 48 kHz frame into device-rate samples written to the
    /// start of `out` (at least [`output_max`](Self::output_max) long);
    /// returns how many.
    pub fn process(&mut self, frame: &[f32], out: &mut [f32]) -> Result<usize, Error> {
        if frame.len() != self.frame {
            return Err(Error::FrameSize {
                expected: self.frame,
                got: frame.len(),
            });
        }
        if out.len() < self.inner.output_frames_next() {
            return Err(Error::OutputTooSmall);
        }
        let (_, written) = self
            .inner
            .process_into_buffer(&[frame], &mut [out], None)
            .map_err(err)?;
        Ok(written)
    }
}

/// Converts a 16-bit sample to `f32` in `[-1, 1)`.
pub(crate) fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32_768.0
}

/// Converts an `f32` sample to 16 bits, clamping out-of-range values.
pub(crate) fn f32_to_i16(s: f32) -> i16 {
    (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tone(rate: u32, n: usize, hz: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * hz * std::f32::consts::TAU / rate as f32).sin() * 0.5)
            .collect()
    }

    /// Runs 44.1 kHz -> 48 kHz -> 44.1 kHz and checks the tone survives
    /// with its level and frequency (zero crossings per second).
    #[test]
    fn round_trip_through_44100_keeps_a_tone() {
        let input = tone(44_100, 44_100, 1_000.0);
        let mut up = CaptureResampler::new(44_100, 960).unwrap();
        let mut frames = Vec::new();
        let mut pos = 0;
        let mut out = vec![0.0; 960];
        while pos + up.input_needed() <= input.len() {
            let need = up.input_needed();
            up.process(&input[pos..pos + need], &mut out).unwrap();
            frames.extend_from_slice(&out);
            pos += need;
        }
        assert!(frames.len() >= 47_000, "{}", frames.len());
        let steady = &frames[4_800..frames.len() - 960];
        let crossings = steady
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        let hz = crossings as f32 * 48_000.0 / steady.len() as f32;
        assert!((hz - 1_000.0).abs() < 5.0, "{hz}");
        let peak = steady.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.02, "{peak}");

        let mut down = PlaybackResampler::new(44_100, 960).unwrap();
        let mut back = vec![0.0; down.output_max()];
        let mut total = 0;
        for f in frames.chunks_exact(960) {
            total += down.process(f, &mut back).unwrap();
        }
        let expected = frames.len() / 960 * 882;
        assert_eq!(total, expected);
    }

    #[test]
    fn refuses_absurd_rates_and_wrong_sizes() {
        assert!(CaptureResampler::new(0, 960).is_err());
        assert!(PlaybackResampler::new(1_000_000, 960).is_err());
        let mut up = CaptureResampler::new(16_000, 960).unwrap();
        let mut out = vec![0.0; 100];
        assert!(up.process(&[0.0; 320], &mut out).is_err());
    }

    #[test]
    fn sample_conversion_clamps() {
        assert_eq!(f32_to_i16(2.0), i16::MAX);
        assert_eq!(f32_to_i16(-2.0), i16::MIN);
        assert_eq!(f32_to_i16(i16_to_f32(1234)), 1234);
    }
}
