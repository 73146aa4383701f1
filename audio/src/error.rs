//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in `cryptic-audio`.
///
/// Peer misbehaviour (a payload from the network that libopus refuses, or
/// that does not last one frame) is kept apart from API misuse (a buffer of
/// the wrong size) and from the local environment (files, sound devices).
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// A PCM buffer handed in does not hold exactly one frame.
    FrameSize {
        /// Samples the configured frame duration needs.
        expected: usize,
        /// Samples the caller's buffer holds.
        got: usize,
    },
    /// The output buffer for an encoded packet is too small.
    OutputTooSmall,
    /// A configuration value is out of range (bitrate, loss percentage,
    /// tone frequency...).
    InvalidConfig(&'static str),
    /// A payload from the network is not a valid Opus packet (peer
    /// misbehaviour or corruption).
    InvalidPacket,
    /// A payload from the network is valid Opus but does not last exactly
    /// one frame of the configured duration (peer misbehaviour).
    PacketDuration {
        /// Samples at 48 kHz the packet decodes to.
        samples: usize,
    },
    /// libopus reported an error that is none of the above.
    Codec(String),
    /// An `--input` or `--output` string could not be parsed.
    Spec(String),
    /// Reading or writing a WAV file failed.
    Wav(String),
    /// No sound device matched the request.
    NoDevice(String),
    /// A sound device refused to open or start, or cpal could not list
    /// devices.
    Device(String),
    /// The sound device failed or disappeared while streaming; the stream
    /// delivers nothing more. An [`AudioEvent`](crate::AudioEvent) said why.
    DeviceLost,
    /// A sample rate the resampler cannot convert.
    Resampler(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameSize { expected, got } => {
                write!(f, "PCM buffer holds {got} samples, one frame is {expected}")
            }
            Self::OutputTooSmall => f.write_str("output buffer too small for an Opus packet"),
            Self::InvalidConfig(what) => write!(f, "invalid audio configuration: {what}"),
            Self::InvalidPacket => f.write_str("invalid Opus packet"),
            Self::PacketDuration { samples } => {
                write!(f, "Opus packet lasts {samples} samples, not one frame")
            }
            Self::Codec(msg) => write!(f, "Opus: {msg}"),
            Self::Spec(msg) => write!(f, "audio spec: {msg}"),
            Self::Wav(msg) => write!(f, "WAV file: {msg}"),
            Self::NoDevice(name) => write!(f, "no sound device matches {name:?}"),
            Self::Device(msg) => write!(f, "sound device: {msg}"),
            Self::DeviceLost => f.write_str("sound device failed or disappeared"),
            Self::Resampler(msg) => write!(f, "resampler: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<hound::Error> for Error {
    fn from(e: hound::Error) -> Self {
        Self::Wav(e.to_string())
    }
}

impl From<cpal::Error> for Error {
    fn from(e: cpal::Error) -> Self {
        Self::Device(e.to_string())
    }
}
