//! # cryptic-audio: from the microphone to Opus and back to the speaker
//!
//! ```text
//!  send:    Input (mic | wav | tone | silence, + mute) --20 ms frame, 48 kHz mono i16-->
//!           Encoder (Opus CBR, FEC) --payload--> RTP (PT 111, ts += 960)   [client]
//!  receive: RTP -> jitter buffer [cryptic-jitter] -> Decoder::decode | decode_fec | conceal
//!           --frame--> Output (speaker | wav | null)
//! ```
//!
//! ## Pieces
//!
//! - [`Encoder`] / [`Decoder`]: libopus through `audiopus`, 48 kHz mono,
//!   VOIP application, 20 ms frames (10 ms optional), constant bitrate by
//!   default so packet sizes say nothing about speech, in-band FEC with a
//!   settable expected loss, DTX optional. The decoder turns each jitter
//!   buffer decision into exactly one frame: a payload, FEC from the next
//!   packet, or concealment. Buffers are the caller's: nothing is allocated
//!   per frame.
//! - [`rtp`]: RFC 7587 constants, the RTP clock and the `fmtp` string.
//! - [`Input`] / [`Output`], opened from a [`SourceSpec`] / [`SinkSpec`]
//!   parsed from the CLI's `--input` / `--output` (`default`,
//!   `device:NAME`, `wav:PATH`, `tone:440`, `silence`, `null`). Devices go
//!   through cpal (ALSA on Linux), except ALSA capture, which runs on our
//!   own blocking thread (a third of a call's CPU, see `alsa_io`); files,
//!   tones and silence need no sound card and run either in real time on
//!   the caller's clock or as fast as possible.
//! - The device edge ([`DeviceInput`], [`DeviceOutput`]): the cpal
//!   callbacks (or our capture thread) exchange PCM with the media thread
//!   only through `ringbuf` SPSC queues and atomics; the media thread converts between the
//!   device's rate and 48 kHz with rubato. A device that fails produces an
//!   [`AudioEvent`], never a panic.
//!
//! ## The client's loop
//!
//! ```no_run
//! # fn main() -> Result<(), cryptic_audio::Error> {
//! use std::time::Instant;
//! use cryptic_audio::*;
//!
//! let mut input = Input::open(&"tone:440".parse()?, InputOptions::default())?;
//! let mut output = Output::open(&"null".parse()?, OutputOptions::default())?;
//! let mut enc = Encoder::new(EncoderConfig::default())?;
//! let mut dec = Decoder::new(FrameDuration::Ms20)?;
//! let mut clock = rtp::RtpClock::new(0x1234, FrameDuration::Ms20);
//! let (mut pcm, mut packet) = ([0i16; 960], [0u8; MAX_PACKET]);
//! // each wake-up:
//! while input.read_frame(Instant::now(), &mut pcm)? == Read::Frame {
//!     let len = enc.encode(&pcm, &mut packet)?;
//!     let timestamp = clock.tick();
//!     // RTP(pt = rtp::DEFAULT_PAYLOAD_TYPE, timestamp) carries &packet[..len]
//! #   dec.decode(&packet[..len], &mut pcm)?; output.write_frame(&pcm)?; break;
//! }
//! // each frame period on the receive side, per jitter buffer decision:
//! //   Frame(f)   => dec.decode(f.payload, &mut pcm)
//! //   Conceal(c) => match c.fec { Some(next) => dec.decode_fec(next, &mut pcm),
//! //                               None => dec.conceal(&mut pcm) }
//! //   Silence(_) => pcm.fill(0)
//! // (on a decode error: dec.conceal(&mut pcm)), then:
//! output.write_frame(&pcm)?;
//! while let Some(event) = input.poll_event().or_else(|| output.poll_event()) {
//!     eprintln!("audio: {event}");
//! }
//! # Ok(()) }
//! ```

#[cfg(target_os = "linux")]
mod alsa_io;
mod clock;
mod codec;
mod device;
mod error;
mod io;
pub mod processing;
pub mod rate;
pub mod red;
mod resample;
pub mod rtp;
mod sink;
mod source;
mod spec;
pub mod stretch;

pub use clock::FrameClock;
pub use codec::{
    Decoder, Encoder, EncoderConfig, FrameDuration, Tuning, BITRATE_RANGE, MAX_PACKET, SAMPLE_RATE,
};
pub use device::{list_devices, DeviceInfo, DeviceInput, DeviceOutput, DeviceWaker};
pub use error::Error;
pub use io::{Input, InputOptions, Mute, Output, OutputOptions};
pub use processing::{processing, Processing, ProcessingConfig, Sonora, PROCESSING_FRAME};
pub use rate::{RateControl, RateDecision};
pub use resample::{CaptureResampler, PlaybackResampler};
pub use sink::{NullSink, Sink, WavSink, WAV_SPEC};
pub use source::{read_wav_48k_mono, Pacing, Read, SilenceSource, Source, ToneSource, WavSource};
pub use spec::{SinkSpec, SourceSpec, DEFAULT_TONE_HZ};

#[doc(hidden)]
pub mod fuzzing;

use std::fmt;

/// Which way a device stream goes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Microphone.
    Capture,
    /// Speaker.
    Playback,
}

/// Something that happened on a sound device, reported by
/// [`Input::poll_event`] / [`Output::poll_event`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioEvent {
    /// The stream failed or its device disappeared: it delivers nothing
    /// more. Reopen a device, or switch to `silence` / `null`, to go on.
    DeviceFailed {
        /// Which stream.
        direction: Direction,
        /// What the sound system said.
        reason: String,
    },
    /// The sound system reported an error; the stream goes on (a glitch
    /// may be heard). Many in a row with no audio mean trouble.
    DeviceError {
        /// Which stream.
        direction: Direction,
        /// What the sound system said.
        reason: String,
    },
    /// The device ran over or under (a glitch); the stream goes on.
    Xrun {
        /// Which stream.
        direction: Direction,
    },
}

impl fmt::Display for AudioEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeviceFailed { direction, reason } => {
                write!(f, "{direction:?} device failed: {reason}")
            }
            Self::DeviceError { direction, reason } => {
                write!(f, "{direction:?} device error: {reason}")
            }
            Self::Xrun { direction } => write!(f, "{direction:?} device xrun"),
        }
    }
}

/// Counters of an [`Input`] or [`Output`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Frames read or written.
    pub frames: u64,
    /// Device-rate samples dropped: ring full, or capture backlog trimmed.
    pub dropped_samples: u64,
    /// Playback callbacks that ran dry after playing had started.
    pub underruns: u64,
    /// Samples of silence those underruns played.
    pub underrun_samples: u64,
    /// Device-rate samples waiting in the ring right now (latency).
    pub queued_samples: usize,
    /// The device's sample rate (0 for files, tones and null).
    pub device_rate: u32,
    /// What the sound system itself holds, as its last callback said:
    /// capture, from the sound entering the device to the callback;
    /// playback, from the callback to the sound leaving the device. Zero
    /// for files and when the backend does not say.
    pub device_latency: std::time::Duration,
}
