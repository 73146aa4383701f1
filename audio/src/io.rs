//! [`Input`] and [`Output`]: what the client opens from `--input` and
//! `--output`, with mute.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::codec::FrameDuration;
use crate::device::{DeviceInput, DeviceOutput};
use crate::sink::{NullSink, Sink, WavSink};
use crate::source::{Pacing, Read, SilenceSource, Source, ToneSource, WavSource};
use crate::spec::{SinkSpec, SourceSpec};
use crate::{AudioEvent, Error, StreamStats};

/// A mute switch shared between the media loop and the user interface.
///
/// Muted, the input keeps delivering frames on time, only silent ones: the
/// RTP clock, packet rate and (at constant bitrate) packet sizes do not
/// change.
#[derive(Clone, Debug, Default)]
pub struct Mute(Arc<AtomicBool>);

impl Mute {
    /// Mutes (`true`) or unmutes.
    pub fn set(&self, muted: bool) {
        self.0.store(muted, Ordering::Relaxed);
    }
    /// Whether the input is muted.
    pub fn is_muted(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Options for [`Input::open`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputOptions {
    /// Frame duration (default 20 ms).
    pub frame: FrameDuration,
    /// Pacing of file, tone and silence sources (default real time).
    /// Devices are always paced by their hardware.
    pub pacing: Pacing,
}

impl InputOptions {
    /// Sets the frame duration.
    pub fn with_frame(mut self, frame: FrameDuration) -> Self {
        self.frame = frame;
        self
    }
    /// Sets the pacing of generated sources.
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }
}

/// The capture side of a call: a [`Source`] with a [`Mute`] switch.
pub struct Input {
    source: Box<dyn Source>,
    mute: Mute,
    frame: FrameDuration,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("frame", &self.frame)
            .field("muted", &self.mute.is_muted())
            .finish()
    }
}

impl Input {
    /// Opens what `spec` names.
    pub fn open(spec: &SourceSpec, options: InputOptions) -> Result<Self, Error> {
        let f = options.frame;
        let source: Box<dyn Source> = match spec {
            SourceSpec::Default => Box::new(DeviceInput::open(None, f)?),
            SourceSpec::Device(name) => Box::new(DeviceInput::open(Some(name), f)?),
            SourceSpec::Wav(path) => Box::new(WavSource::open(path, f, options.pacing)?),
            SourceSpec::Tone(hz) => Box::new(ToneSource::new(*hz, f, options.pacing)?),
            SourceSpec::Silence => Box::new(SilenceSource::new(f, options.pacing)),
        };
        Ok(Self::from_source(source, f))
    }

    /// Wraps any source delivering frames of `frame`.
    pub fn from_source(source: Box<dyn Source>, frame: FrameDuration) -> Self {
        Self {
            source,
            mute: Mute::default(),
            frame,
        }
    }

    /// The mute switch (clone it for the user interface).
    pub fn mute(&self) -> Mute {
        self.mute.clone()
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame.samples()
    }

    /// Reads the next frame if one is ready at `now`; silent when muted.
    ///
    /// Drive it like this, once per wake-up:
    /// `while input.read_frame(now, &mut pcm)? == Read::Frame { encode and send }`,
    /// then sleep until [`poll_timeout`](Self::poll_timeout) or, when that is
    /// `None` (a device), about half a frame period.
    pub fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Read, Error> {
        let r = self.source.read_frame(now, out)?;
        if r == Read::Frame && self.mute.is_muted() {
            out.fill(0);
        }
        Ok(r)
    }

    /// Has a sound device call `waker` after every captured period (see
    /// [`Source::set_waker`]): wake on it and read at once.
    pub fn set_waker(&mut self, waker: crate::DeviceWaker) {
        self.source.set_waker(waker);
    }

    /// When the next frame will be ready, if the source knows.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.source.poll_timeout()
    }

    /// The next device event (failure, xrun), if any.
    pub fn poll_event(&mut self) -> Option<AudioEvent> {
        self.source.poll_event()
    }

    /// Counters since the input was opened.
    pub fn stats(&self) -> StreamStats {
        self.source.stats()
    }
}

/// Options for [`Output::open`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// Frame duration (default 20 ms).
    pub frame: FrameDuration,
}

impl OutputOptions {
    /// Sets the frame duration.
    pub fn with_frame(mut self, frame: FrameDuration) -> Self {
        self.frame = frame;
        self
    }
}

/// The playback side of a call.
pub struct Output {
    sink: Box<dyn Sink>,
    frame: FrameDuration,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("frame", &self.frame)
            .finish()
    }
}

impl Output {
    /// Opens what `spec` names.
    pub fn open(spec: &SinkSpec, options: OutputOptions) -> Result<Self, Error> {
        let f = options.frame;
        let sink: Box<dyn Sink> = match spec {
            SinkSpec::Default => Box::new(DeviceOutput::open(None, f)?),
            SinkSpec::Device(name) => Box::new(DeviceOutput::open(Some(name), f)?),
            SinkSpec::Wav(path) => Box::new(WavSink::create(path, f)?),
            SinkSpec::Null => Box::new(NullSink::new(f)),
        };
        Ok(Self::from_sink(sink, f))
    }

    /// Wraps any sink taking frames of `frame`.
    pub fn from_sink(sink: Box<dyn Sink>, frame: FrameDuration) -> Self {
        Self { sink, frame }
    }

    /// Samples per frame.
    pub fn frame_samples(&self) -> usize {
        self.frame.samples()
    }

    /// Plays or stores one decoded frame; never blocks.
    pub fn write_frame(&mut self, frame: &[i16]) -> Result<(), Error> {
        self.sink.write_frame(frame)
    }

    /// Appends what was queued for playing since the last call (see
    /// [`Sink::take_played`]); `false` when that is exactly the frames
    /// written.
    pub fn take_played(&mut self, into: &mut Vec<i16>) -> bool {
        self.sink.take_played(into)
    }

    /// Whether the device wants the next frame now (see
    /// [`Sink::wants_frame`]); `None` when the output is played by the
    /// clock (files, null).
    pub fn wants_frame(&self) -> Option<bool> {
        self.sink.wants_frame()
    }

    /// Has a sound device call `waker` after every played period (see
    /// [`Sink::set_waker`]): wake on it and ask [`wants_frame`](Self::wants_frame).
    pub fn set_waker(&mut self, waker: crate::DeviceWaker) {
        self.sink.set_waker(waker);
    }

    /// Finishes a file (WAV header); harmless for devices.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.sink.finish()
    }

    /// The next device event, if any.
    pub fn poll_event(&mut self) -> Option<AudioEvent> {
        self.sink.poll_event()
    }

    /// Counters since the output was opened.
    pub fn stats(&self) -> StreamStats {
        self.sink.stats()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mute_gives_silent_frames_on_the_same_clock() {
        let opts = InputOptions::default().with_pacing(Pacing::AsFastAsPossible);
        let mut input = Input::open(&SourceSpec::Tone(440.0), opts).unwrap();
        let mute = input.mute();
        let mut f = [0i16; 960];
        let now = Instant::now();
        assert_eq!(input.read_frame(now, &mut f).unwrap(), Read::Frame);
        assert!(f.iter().any(|&s| s != 0));
        mute.set(true);
        assert_eq!(input.read_frame(now, &mut f).unwrap(), Read::Frame);
        assert!(f.iter().all(|&s| s == 0));
        mute.set(false);
        assert_eq!(input.read_frame(now, &mut f).unwrap(), Read::Frame);
        assert!(f.iter().any(|&s| s != 0));
        assert_eq!(input.stats().frames, 3);
    }
}
