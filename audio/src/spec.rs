//! `--input` / `--output` strings: which source feeds the encoder and which
//! sink plays the decoder's output.
//!
//! | string | input | output |
//! |---|---|---|
//! | `default` | default microphone | default speaker |
//! | `device:NAME` | named capture device | named playback device |
//! | `wav:PATH` (or a path ending in `.wav`) | play the file | write the file |
//! | `tone` / `tone:HZ` | sine tone (440 Hz) | — |
//! | `silence` | digital silence | — |
//! | `null` | — | discard |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// Default tone frequency in Hz.
pub const DEFAULT_TONE_HZ: f32 = 440.0;

/// Where captured audio comes from.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// The default capture device.
    Default,
    /// A capture device by name or id (see [`list_devices`](crate::list_devices)).
    Device(String),
    /// A WAV file (any rate, channels and sample format), played once.
    Wav(PathBuf),
    /// A sine tone of this frequency in Hz.
    Tone(f32),
    /// Digital silence.
    Silence,
}

/// Where decoded audio goes.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    /// The default playback device.
    Default,
    /// A playback device by name or id.
    Device(String),
    /// A WAV file, 48 kHz mono 16-bit.
    Wav(PathBuf),
    /// Discard everything.
    Null,
}

fn split(s: &str) -> (&str, Option<&str>) {
    match s.split_once(':') {
        Some((k, v)) => (k, Some(v)),
        None => (s, None),
    }
}

fn nonempty(kind: &str, v: Option<&str>) -> Result<String, Error> {
    match v {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(Error::Spec(format!("{kind}: needs a value after ':'"))),
    }
}

fn is_wav_path(s: &str) -> bool {
    s.to_ascii_lowercase().ends_with(".wav")
}

impl FromStr for SourceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        match split(s) {
            ("default", None) => Ok(Self::Default),
            ("silence", None) => Ok(Self::Silence),
            ("tone", None) => Ok(Self::Tone(DEFAULT_TONE_HZ)),
            ("tone", Some(hz)) => {
                let hz: f32 = hz
                    .parse()
                    .map_err(|_| Error::Spec(format!("tone: {hz:?} is not a frequency in Hz")))?;
                if !(1.0..=20_000.0).contains(&hz) {
                    return Err(Error::Spec(format!("tone: {hz} Hz is outside 1..=20000")));
                }
                Ok(Self::Tone(hz))
            }
            ("device", v) => Ok(Self::Device(nonempty("device", v)?)),
            ("wav", v) => Ok(Self::Wav(PathBuf::from(nonempty("wav", v)?))),
            _ if is_wav_path(s) => Ok(Self::Wav(PathBuf::from(s))),
            _ => Err(Error::Spec(format!(
                "unknown input {s:?}: use default, device:NAME, wav:PATH, tone[:HZ] or silence"
            ))),
        }
    }
}

impl FromStr for SinkSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        match split(s) {
            ("default", None) => Ok(Self::Default),
            ("null", None) => Ok(Self::Null),
            ("device", v) => Ok(Self::Device(nonempty("device", v)?)),
            ("wav", v) => Ok(Self::Wav(PathBuf::from(nonempty("wav", v)?))),
            _ if is_wav_path(s) => Ok(Self::Wav(PathBuf::from(s))),
            _ => Err(Error::Spec(format!(
                "unknown output {s:?}: use default, device:NAME, wav:PATH or null"
            ))),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Device(n) => write!(f, "device:{n}"),
            Self::Wav(p) => write!(f, "wav:{}", p.display()),
            Self::Tone(hz) => write!(f, "tone:{hz}"),
            Self::Silence => f.write_str("silence"),
        }
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Device(n) => write!(f, "device:{n}"),
            Self::Wav(p) => write!(f, "wav:{}", p.display()),
            Self::Null => f.write_str("null"),
        }
    }
}

impl SourceSpec {
    /// Whether this source is a sound device (clocked by hardware).
    pub fn is_device(&self) -> bool {
        matches!(self, Self::Default | Self::Device(_))
    }
}

impl SinkSpec {
    /// Whether this sink is a sound device.
    pub fn is_device(&self) -> bool {
        matches!(self, Self::Default | Self::Device(_))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_input_form_and_prints_it_back() {
        for (s, want) in [
            ("default", SourceSpec::Default),
            ("device:pulse", SourceSpec::Device("pulse".into())),
            ("device:hw:0,0", SourceSpec::Device("hw:0,0".into())),
            ("wav:/tmp/a b.wav", SourceSpec::Wav("/tmp/a b.wav".into())),
            ("speech.WAV", SourceSpec::Wav("speech.WAV".into())),
            ("tone", SourceSpec::Tone(440.0)),
            ("tone:1000", SourceSpec::Tone(1000.0)),
            ("silence", SourceSpec::Silence),
        ] {
            let got: SourceSpec = s.parse().unwrap();
            assert_eq!(got, want, "{s}");
            let again: SourceSpec = got.to_string().parse().unwrap();
            assert_eq!(again, want);
        }
    }

    #[test]
    fn parses_every_output_form() {
        assert_eq!("null".parse::<SinkSpec>().unwrap(), SinkSpec::Null);
        assert_eq!("default".parse::<SinkSpec>().unwrap(), SinkSpec::Default);
        assert_eq!(
            "wav:o.wav".parse::<SinkSpec>().unwrap(),
            SinkSpec::Wav("o.wav".into())
        );
        assert_eq!(
            "device:spk".parse::<SinkSpec>().unwrap(),
            SinkSpec::Device("spk".into())
        );
    }

    #[test]
    fn rejects_malformed_specs_with_a_reason() {
        for s in [
            "tone:abc",
            "tone:0",
            "tone:99999",
            "device:",
            "wav:",
            "mic",
            "",
        ] {
            assert!(
                matches!(s.parse::<SourceSpec>(), Err(Error::Spec(_))),
                "{s}"
            );
        }
        for s in ["silence", "tone", "device:", "speaker"] {
            assert!(matches!(s.parse::<SinkSpec>(), Err(Error::Spec(_))), "{s}");
        }
    }
}
