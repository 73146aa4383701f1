//! Where frames come from: the [`Source`] trait and the headless sources
//! (WAV file, tone, silence).

use std::path::Path;
use std::time::Instant;

use crate::clock::FrameClock;
use crate::codec::{FrameDuration, SAMPLE_RATE};
use crate::resample::{f32_to_i16, CaptureResampler};
use crate::{AudioEvent, Error, StreamStats};

/// What [`Source::read_frame`] produced.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// One frame was written to the buffer.
    Frame,
    /// No frame is ready yet; try again after
    /// [`poll_timeout`](Source::poll_timeout) or at the next tick.
    Pending,
    /// The source has ended (end of a WAV file): no more frames.
    End,
}

/// How a generated (headless) source is paced.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pacing {
    /// One frame per frame period of the caller's clock (`now`), as a
    /// microphone would deliver them.
    #[default]
    RealTime,
    /// Every call yields a frame: for tests and offline processing.
    AsFastAsPossible,
}

/// A supplier of 48 kHz mono frames.
///
/// Call [`read_frame`](Self::read_frame) until it returns something other
/// than [`Read::Frame`], then wait until
/// [`poll_timeout`](Self::poll_timeout) (or the next frame period when it
/// is `None`, as for a sound device, whose hardware sets the pace).
pub trait Source: Send {
    /// Writes the next frame into `out` (exactly one frame long) if one is
    /// ready at `now`.
    fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Read, Error>;
    /// When the next frame will be ready, if the source knows.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next device event, if any.
    fn poll_event(&mut self) -> Option<AudioEvent> {
        None
    }
    /// Has a sound device call `waker` each time it captured a period, so
    /// that a frame is read as soon as it is complete. Nothing for sources
    /// not paced by a device.
    fn set_waker(&mut self, waker: crate::DeviceWaker) {
        let _ = waker;
    }
    /// Counters since the source was opened.
    fn stats(&self) -> StreamStats;
}

fn check_len(out: &[i16], frame: FrameDuration) -> Result<(), Error> {
    if out.len() != frame.samples() {
        return Err(Error::FrameSize {
            expected: frame.samples(),
            got: out.len(),
        });
    }
    Ok(())
}

/// Pacing state shared by the generated sources.
#[derive(Debug)]
struct Pace {
    clock: Option<FrameClock>,
}

impl Pace {
    fn new(pacing: Pacing, frame: FrameDuration) -> Self {
        Self {
            clock: match pacing {
                Pacing::RealTime => Some(FrameClock::new(frame.as_duration())),
                Pacing::AsFastAsPossible => None,
            },
        }
    }
    fn ready(&mut self, now: Instant) -> bool {
        self.clock.as_mut().is_none_or(|c| c.take(now))
    }
    fn timeout(&self) -> Option<Instant> {
        self.clock.as_ref().and_then(FrameClock::next_due)
    }
}

/// A sine tone at half of full scale.
#[derive(Debug)]
pub struct ToneSource {
    frame: FrameDuration,
    pace: Pace,
    step: f64,
    phase: f64,
    frames: u64,
}

impl ToneSource {
    /// A tone of `hz` Hz.
    pub fn new(hz: f32, frame: FrameDuration, pacing: Pacing) -> Result<Self, Error> {
        if !(hz > 0.0 && hz < SAMPLE_RATE as f32 / 2.0) {
            return Err(Error::InvalidConfig("tone frequency outside 0..24000 Hz"));
        }
        Ok(Self {
            frame,
            pace: Pace::new(pacing, frame),
            step: f64::from(hz) * std::f64::consts::TAU / f64::from(SAMPLE_RATE),
            phase: 0.0,
            frames: 0,
        })
    }
}

impl Source for ToneSource {
    fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Read, Error> {
        check_len(out, self.frame)?;
        if !self.pace.ready(now) {
            return Ok(Read::Pending);
        }
        for s in out.iter_mut() {
            *s = f32_to_i16((self.phase.sin() * 0.5) as f32);
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
        self.frames += 1;
        Ok(Read::Frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.pace.timeout()
    }
    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            ..StreamStats::default()
        }
    }
}

/// Digital silence, forever.
#[derive(Debug)]
pub struct SilenceSource {
    frame: FrameDuration,
    pace: Pace,
    frames: u64,
}

impl SilenceSource {
    /// Silence in frames of `frame`.
    pub fn new(frame: FrameDuration, pacing: Pacing) -> Self {
        Self {
            frame,
            pace: Pace::new(pacing, frame),
            frames: 0,
        }
    }
}

impl Source for SilenceSource {
    fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Read, Error> {
        check_len(out, self.frame)?;
        if !self.pace.ready(now) {
            return Ok(Read::Pending);
        }
        out.fill(0);
        self.frames += 1;
        Ok(Read::Frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.pace.timeout()
    }
    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            ..StreamStats::default()
        }
    }
}

/// A WAV file of any rate, channel count and sample format, converted to
/// 48 kHz mono when it is opened (channels averaged, rate converted with
/// the same resampler as a device), then played once; the last frame is
/// padded with silence.
///
/// The whole file is held in memory (about 5.6 MiB per minute), so that
/// reading a frame never touches the disk.
#[derive(Debug)]
pub struct WavSource {
    frame: FrameDuration,
    pace: Pace,
    pcm: Vec<i16>,
    pos: usize,
    frames: u64,
}

impl WavSource {
    /// Opens and converts the file at `path`.
    pub fn open(path: &Path, frame: FrameDuration, pacing: Pacing) -> Result<Self, Error> {
        let pcm = read_wav_48k_mono(path)?;
        Ok(Self::from_pcm(pcm, frame, pacing))
    }

    /// A source playing `pcm` (48 kHz mono) once.
    pub fn from_pcm(pcm: Vec<i16>, frame: FrameDuration, pacing: Pacing) -> Self {
        Self {
            frame,
            pace: Pace::new(pacing, frame),
            pcm,
            pos: 0,
            frames: 0,
        }
    }

    /// Samples (48 kHz) the file holds.
    pub fn len_samples(&self) -> usize {
        self.pcm.len()
    }
}

impl Source for WavSource {
    fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Read, Error> {
        check_len(out, self.frame)?;
        if self.pos >= self.pcm.len() {
            return Ok(Read::End);
        }
        if !self.pace.ready(now) {
            return Ok(Read::Pending);
        }
        let end = (self.pos + out.len()).min(self.pcm.len());
        let n = end - self.pos;
        out[..n].copy_from_slice(&self.pcm[self.pos..end]);
        out[n..].fill(0);
        self.pos = end;
        self.frames += 1;
        Ok(Read::Frame)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        if self.pos >= self.pcm.len() {
            return None;
        }
        self.pace.timeout()
    }
    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            ..StreamStats::default()
        }
    }
}

/// Reads a WAV file and converts it to 48 kHz mono 16-bit samples.
pub fn read_wav_48k_mono(path: &Path) -> Result<Vec<i16>, Error> {
    let reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(Error::Wav("zero channels".into()));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let bits = spec.bits_per_sample;
            if !(1..=32).contains(&bits) {
                return Err(Error::Wav(format!("{bits}-bit samples")));
            }
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    let mono48 = if spec.sample_rate == SAMPLE_RATE {
        mono
    } else {
        resample_all(&mono, spec.sample_rate)?
    };
    Ok(mono48.into_iter().map(f32_to_i16).collect())
}

/// Resamples a whole buffer to 48 kHz, removing the resampler's delay so
/// the output lines up with the input.
fn resample_all(input: &[f32], rate: u32) -> Result<Vec<f32>, Error> {
    let frame = FrameDuration::Ms20.samples();
    let mut rs = CaptureResampler::new(rate, frame)?;
    let delay = rs.delay();
    let wanted = (input.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(rate)) as usize;
    let mut out = Vec::with_capacity(wanted + delay + 2 * frame);
    let mut staging = vec![0.0f32; rs.input_max()];
    let mut buf = vec![0.0f32; frame];
    let mut pos = 0;
    while out.len() < wanted + delay {
        let need = rs.input_needed();
        let avail = input.len().saturating_sub(pos).min(need);
        staging[..avail].copy_from_slice(&input[pos..pos + avail]);
        staging[avail..need].fill(0.0);
        pos += avail;
        rs.process(&staging[..need], &mut buf)?;
        out.extend_from_slice(&buf);
    }
    out.drain(..delay);
    out.truncate(wanted);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn real_time_tone_yields_one_frame_per_period() {
        let t0 = Instant::now();
        let mut s = ToneSource::new(440.0, FrameDuration::Ms20, Pacing::RealTime).unwrap();
        let mut f = [0i16; 960];
        assert_eq!(s.read_frame(t0, &mut f).unwrap(), Read::Frame);
        assert_eq!(s.read_frame(t0, &mut f).unwrap(), Read::Pending);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(20)));
        assert_eq!(
            s.read_frame(t0 + Duration::from_millis(20), &mut f)
                .unwrap(),
            Read::Frame
        );
        let peak = f.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((16_000..=16_400).contains(&peak), "{peak}");
    }

    #[test]
    fn fast_wav_source_pads_the_last_frame_then_ends() {
        let pcm: Vec<i16> = (0..1000).map(|i| i as i16 + 1).collect();
        let mut s = WavSource::from_pcm(pcm, FrameDuration::Ms20, Pacing::AsFastAsPossible);
        let now = Instant::now();
        let mut f = [0i16; 960];
        assert_eq!(s.read_frame(now, &mut f).unwrap(), Read::Frame);
        assert_eq!(f[959], 960);
        assert_eq!(s.read_frame(now, &mut f).unwrap(), Read::Frame);
        assert_eq!(f[39], 1000);
        assert!(f[40..].iter().all(|&x| x == 0));
        assert_eq!(s.read_frame(now, &mut f).unwrap(), Read::End);
        assert_eq!(s.stats().frames, 2);
    }

    #[test]
    fn silence_is_silent_and_checks_frame_size() {
        let mut s = SilenceSource::new(FrameDuration::Ms10, Pacing::AsFastAsPossible);
        let mut f = [5i16; 480];
        assert_eq!(s.read_frame(Instant::now(), &mut f).unwrap(), Read::Frame);
        assert!(f.iter().all(|&x| x == 0));
        let mut wrong = [0i16; 960];
        assert!(s.read_frame(Instant::now(), &mut wrong).is_err());
    }
}
