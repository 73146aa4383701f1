//! Where decoded frames go: the [`Sink`] trait and the headless sinks
//! (WAV file, null).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::codec::{FrameDuration, SAMPLE_RATE};
use crate::{AudioEvent, Error, StreamStats};

/// A consumer of 48 kHz mono frames.
pub trait Sink: Send {
    /// Plays or stores one frame (exactly one frame long). Never blocks: a
    /// device sink whose queue is full drops the excess and counts it.
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), Error>;
    /// Flushes what is buffered (finishes a WAV file's header). Idempotent.
    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
    /// The next device event, if any.
    fn poll_event(&mut self) -> Option<AudioEvent> {
        None
    }
    /// Counters since the sink was opened.
    fn stats(&self) -> StreamStats;
    /// Appends to `into` what was queued for playing since the last call,
    /// at 48 kHz, after any trimming or drift correction: the reference an
    /// echo canceller needs. `false` when that is exactly the frames
    /// written (files, null, a device that changed nothing).
    fn take_played(&mut self, into: &mut Vec<i16>) -> bool {
        let _ = into;
        false
    }
    /// Whether a sound device wants the next frame now: its queue is below
    /// what it needs to last until the next poll (or it has not started
    /// playing yet). `None` for a sink that is not paced by a device (files,
    /// null): write those one frame per frame period, by the clock.
    fn wants_frame(&self) -> Option<bool> {
        None
    }
    /// Has a sound device call `waker` each time it played a period, so
    /// the writer can refill at once instead of at its next poll. Nothing
    /// for sinks not paced by a device.
    fn set_waker(&mut self, waker: crate::DeviceWaker) {
        let _ = waker;
    }
}

fn check_len(frame: &[i16], d: FrameDuration) -> Result<(), Error> {
    if frame.len() != d.samples() {
        return Err(Error::FrameSize {
            expected: d.samples(),
            got: frame.len(),
        });
    }
    Ok(())
}

/// Discards every frame, counting them.
#[derive(Debug)]
pub struct NullSink {
    frame: FrameDuration,
    frames: u64,
}

impl NullSink {
    /// A null sink for frames of `frame`.
    pub fn new(frame: FrameDuration) -> Self {
        Self { frame, frames: 0 }
    }
}

impl Sink for NullSink {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), Error> {
        check_len(frame, self.frame)?;
        self.frames += 1;
        Ok(())
    }
    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            ..StreamStats::default()
        }
    }
}

/// Writes frames to a 48 kHz mono 16-bit WAV file.
pub struct WavSink {
    frame: FrameDuration,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    frames: u64,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("frames", &self.frames)
            .finish()
    }
}

/// The WAV format every sink writes.
pub const WAV_SPEC: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: SAMPLE_RATE,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

impl WavSink {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path, frame: FrameDuration) -> Result<Self, Error> {
        let writer = hound::WavWriter::create(path, WAV_SPEC)?;
        Ok(Self {
            frame,
            writer: Some(writer),
            frames: 0,
        })
    }
}

impl Sink for WavSink {
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), Error> {
        check_len(frame, self.frame)?;
        let w = self
            .writer
            .as_mut()
            .ok_or(Error::Wav("written after finish".into()))?;
        let mut iw = w.get_i16_writer(frame.len() as u32);
        for &s in frame {
            iw.write_sample(s);
        }
        iw.flush()?;
        self.frames += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<(), Error> {
        if let Some(w) = self.writer.take() {
            w.finalize()?;
        }
        Ok(())
    }
    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            ..StreamStats::default()
        }
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!("WAV sink: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn null_sink_counts_and_checks_size() {
        let mut s = NullSink::new(FrameDuration::Ms20);
        s.write_frame(&[0; 960]).unwrap();
        assert!(s.write_frame(&[0; 10]).is_err());
        assert_eq!(s.stats().frames, 1);
    }
}
