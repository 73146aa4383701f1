//! Opus encoding and decoding of 48 kHz mono frames (RFC 6716, RFC 7587).

use std::time::Duration;

use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};

use crate::Error;

/// The one PCM sample rate of the pipeline, in Hz: Opus, RTP clock, frames.
pub const SAMPLE_RATE: u32 = 48_000;

/// The largest Opus packet we ever write (RFC 6716: at most 1275 bytes
/// per frame); a buffer this long always holds one encoded frame.
pub const MAX_PACKET: usize = 1275;

/// Lowest and highest bitrates the encoder accepts, in bit/s.
pub const BITRATE_RANGE: std::ops::RangeInclusive<u32> = 6_000..=128_000;

/// How much audio one Opus packet carries.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum FrameDuration {
    /// 10 ms: 480 samples; lower delay, higher packet rate.
    Ms10,
    /// 20 ms: 960 samples; the default.
    #[default]
    Ms20,
}

impl FrameDuration {
    /// The frame of `samples` at 48 kHz (480 or 960), if it is one.
    pub const fn from_samples(samples: u32) -> Option<Self> {
        match samples {
            480 => Some(Self::Ms10),
            960 => Some(Self::Ms20),
            _ => None,
        }
    }

    /// Samples per frame at 48 kHz mono.
    pub const fn samples(self) -> usize {
        match self {
            Self::Ms10 => 480,
            Self::Ms20 => 960,
        }
    }

    /// The frame period.
    pub const fn as_duration(self) -> Duration {
        match self {
            Self::Ms10 => Duration::from_millis(10),
            Self::Ms20 => Duration::from_millis(20),
        }
    }

    /// How far the RTP timestamp advances per frame (48 kHz clock,
    /// RFC 7587 section 4.1): 480 or 960.
    pub const fn rtp_timestamp_step(self) -> u32 {
        self.samples() as u32
    }

    /// The duration in milliseconds (for `ptime` and logs).
    pub const fn millis(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
        }
    }
}

/// How the [`Encoder`] is set up. Build it with [`EncoderConfig::default`]
/// and the `with_*` methods.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Target bitrate in bit/s (default 24 000).
    pub bitrate: u32,
    /// Frame duration (default 20 ms).
    pub frame: FrameDuration,
    /// Opus in-band forward error correction (LBRR), on by default.
    pub fec: bool,
    /// The packet loss the encoder plans FEC for, 0..=100 (default 5);
    /// feed it from RTCP receiver reports with
    /// [`Encoder::set_expected_loss_percent`].
    pub expected_loss_percent: u8,
    /// Constant bitrate: every packet the same size, so that packet sizes
    /// do not leak what is said (SPEC security property 4). On by default.
    pub constant_bitrate: bool,
    /// Discontinuous transmission: send almost nothing in silence. Off by
    /// default, since the short silent packets reveal speech pauses.
    pub dtx: bool,
    /// Encoder complexity 0..=10 (default 9).
    pub complexity: u8,
    /// What the encoder tunes for (default [`Tuning::Voice`]).
    pub tuning: Tuning,
}

/// What Opus tunes its encoder for (its "application").
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tuning {
    /// `OPUS_APPLICATION_VOIP`: speech intelligibility (a high-pass filter,
    /// earlier switch to SILK, more of the bits on the voice band).
    #[default]
    Voice,
    /// `OPUS_APPLICATION_AUDIO`: fidelity to the input (what GStreamer's
    /// `opusenc` uses by default).
    Fidelity,
    /// `OPUS_APPLICATION_RESTRICTED_LOWDELAY`: CELT only, 4 ms less
    /// algorithmic delay (2.5 ms against 6.5) at some cost to speech.
    LowDelay,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            bitrate: 24_000,
            frame: FrameDuration::Ms20,
            fec: true,
            expected_loss_percent: 5,
            constant_bitrate: true,
            dtx: false,
            complexity: 9,
            tuning: Tuning::Voice,
        }
    }
}

impl EncoderConfig {
    /// Sets the bitrate in bit/s.
    pub fn with_bitrate(mut self, bitrate: u32) -> Self {
        self.bitrate = bitrate;
        self
    }
    /// Sets the frame duration.
    pub fn with_frame(mut self, frame: FrameDuration) -> Self {
        self.frame = frame;
        self
    }
    /// Turns in-band FEC on or off.
    pub fn with_fec(mut self, fec: bool) -> Self {
        self.fec = fec;
        self
    }
    /// Sets the expected packet loss percentage.
    pub fn with_expected_loss_percent(mut self, percent: u8) -> Self {
        self.expected_loss_percent = percent;
        self
    }
    /// Constant (true) or variable (false) bitrate.
    pub fn with_constant_bitrate(mut self, cbr: bool) -> Self {
        self.constant_bitrate = cbr;
        self
    }
    /// Turns discontinuous transmission on or off.
    pub fn with_dtx(mut self, dtx: bool) -> Self {
        self.dtx = dtx;
        self
    }
    /// Sets what the encoder tunes for.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }
    /// Sets the complexity, 0..=10.
    pub fn with_complexity(mut self, complexity: u8) -> Self {
        self.complexity = complexity;
        self
    }

    fn validate(&self) -> Result<(), Error> {
        if !BITRATE_RANGE.contains(&self.bitrate) {
            return Err(Error::InvalidConfig("bitrate outside 6..=128 kbit/s"));
        }
        if self.expected_loss_percent > 100 {
            return Err(Error::InvalidConfig("expected loss above 100 %"));
        }
        if self.complexity > 10 {
            return Err(Error::InvalidConfig("complexity above 10"));
        }
        Ok(())
    }

    /// Bytes of every packet at constant bitrate (`bitrate × frame / 8`).
    pub fn cbr_packet_bytes(&self) -> usize {
        (self.bitrate as usize * self.frame.millis() as usize) / 8_000
    }
}

fn codec_err(e: audiopus::Error) -> Error {
    Error::Codec(e.to_string())
}

// libopus request codes not wrapped by audiopus 0.3 (opus_defines.h).
const OPUS_SET_DTX_REQUEST: i32 = 4016;

/// Encodes 48 kHz mono frames to Opus packets (VOIP application).
///
/// One call to [`encode`](Self::encode) per frame; the packet goes into a
/// caller-provided buffer, so nothing is allocated per frame.
pub struct Encoder {
    inner: OpusEncoder,
    config: EncoderConfig,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Encoder {
    /// Creates an encoder with `config`.
    pub fn new(config: EncoderConfig) -> Result<Self, Error> {
        config.validate()?;
        let application = match config.tuning {
            Tuning::Voice => Application::Voip,
            Tuning::Fidelity => Application::Audio,
            Tuning::LowDelay => Application::LowDelay,
        };
        let inner = OpusEncoder::new(SampleRate::Hz48000, Channels::Mono, application)
            .map_err(codec_err)?;
        let mut enc = Self { inner, config };
        enc.apply()?;
        Ok(enc)
    }

    fn apply(&mut self) -> Result<(), Error> {
        let c = self.config;
        let e = &mut self.inner;
        e.set_bitrate(Bitrate::BitsPerSecond(c.bitrate as i32))
            .map_err(codec_err)?;
        e.set_vbr(!c.constant_bitrate).map_err(codec_err)?;
        e.set_inband_fec(c.fec).map_err(codec_err)?;
        e.set_packet_loss_perc(c.expected_loss_percent)
            .map_err(codec_err)?;
        e.set_complexity(c.complexity).map_err(codec_err)?;
        e.set_encoder_ctl_request(OPUS_SET_DTX_REQUEST, i32::from(c.dtx))
            .map_err(codec_err)?;
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Samples one frame must hold.
    pub fn frame_samples(&self) -> usize {
        self.config.frame.samples()
    }

    /// Encodes one frame of `pcm` (exactly [`frame_samples`](Self::frame_samples)
    /// samples) into `out`, returning the packet length. `out` of
    /// [`MAX_PACKET`] bytes always suffices.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, Error> {
        let expected = self.frame_samples();
        if pcm.len() != expected {
            return Err(Error::FrameSize {
                expected,
                got: pcm.len(),
            });
        }
        if out.is_empty() {
            return Err(Error::OutputTooSmall);
        }
        self.inner.encode(pcm, out).map_err(|e| match e {
            audiopus::Error::Opus(audiopus::ErrorCode::BufferTooSmall) => Error::OutputTooSmall,
            other => codec_err(other),
        })
    }

    /// Changes the bitrate (bit/s) from the next frame on.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), Error> {
        let mut c = self.config;
        c.bitrate = bitrate;
        c.validate()?;
        self.inner
            .set_bitrate(Bitrate::BitsPerSecond(bitrate as i32))
            .map_err(codec_err)?;
        self.config = c;
        Ok(())
    }

    /// Tells the encoder how much loss to plan FEC for (from call
    /// statistics); values above 100 are clamped.
    pub fn set_expected_loss_percent(&mut self, percent: u8) -> Result<(), Error> {
        let p = percent.min(100);
        self.inner.set_packet_loss_perc(p).map_err(codec_err)?;
        self.config.expected_loss_percent = p;
        Ok(())
    }

    /// Turns in-band FEC on or off.
    pub fn set_fec(&mut self, fec: bool) -> Result<(), Error> {
        self.inner.set_inband_fec(fec).map_err(codec_err)?;
        self.config.fec = fec;
        Ok(())
    }

    /// Turns DTX on or off.
    pub fn set_dtx(&mut self, dtx: bool) -> Result<(), Error> {
        self.inner
            .set_encoder_ctl_request(OPUS_SET_DTX_REQUEST, i32::from(dtx))
            .map_err(codec_err)?;
        self.config.dtx = dtx;
        Ok(())
    }

    /// The encoder's look-ahead in samples (the codec delay to remove when
    /// aligning decoded audio with the input).
    pub fn lookahead(&self) -> Result<usize, Error> {
        self.inner
            .lookahead()
            .map(|n| n as usize)
            .map_err(codec_err)
    }
}

/// Decodes Opus packets to 48 kHz mono frames, conceals lost frames (PLC)
/// and rebuilds them from the next packet's in-band FEC.
///
/// Each of [`decode`](Self::decode), [`decode_fec`](Self::decode_fec) and
/// [`conceal`](Self::conceal) writes exactly one frame into the first
/// [`frame_samples`](Self::frame_samples) samples of the caller's buffer;
/// this matches one `Playout` of the jitter buffer per frame period. On
/// error the buffer is left as it was and the decoder state is unchanged:
/// call [`conceal`](Self::conceal) instead.
pub struct Decoder {
    inner: OpusDecoder,
    frame: FrameDuration,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("frame", &self.frame)
            .finish()
    }
}

impl Decoder {
    /// Creates a decoder for frames of `frame` duration.
    pub fn new(frame: FrameDuration) -> Result<Self, Error> {
        let inner = OpusDecoder::new(SampleRate::Hz48000, Channels::Mono).map_err(codec_err)?;
        Ok(Self { inner, frame })
    }

    /// Samples one frame holds.
    pub fn frame_samples(&self) -> usize {
        self.frame.samples()
    }

    /// The frame duration.
    pub fn frame(&self) -> FrameDuration {
        self.frame
    }

    fn out_frame<'a>(&self, out: &'a mut [i16]) -> Result<&'a mut [i16], Error> {
        let n = self.frame_samples();
        let got = out.len();
        out.get_mut(..n)
            .ok_or(Error::FrameSize { expected: n, got })
    }

    /// Checks that `payload` is one Opus packet lasting exactly one frame.
    fn check(&self, payload: &[u8]) -> Result<(), Error> {
        let packet = Packet::try_from(payload).map_err(|_| Error::InvalidPacket)?;
        let samples = audiopus::packet::nb_samples(packet, SampleRate::Hz48000)
            .map_err(|_| Error::InvalidPacket)?;
        if samples != self.frame_samples() {
            return Err(Error::PacketDuration { samples });
        }
        Ok(())
    }

    fn run(&mut self, payload: Option<&[u8]>, out: &mut [i16], fec: bool) -> Result<(), Error> {
        let n = self.frame_samples();
        let frame = self.out_frame(out)?;
        let packet = match payload {
            Some(p) => Some(Packet::try_from(p).map_err(|_| Error::InvalidPacket)?),
            None => None,
        };
        let signals = MutSignals::try_from(frame).map_err(codec_err)?;
        let got = self
            .inner
            .decode(packet, signals, fec)
            .map_err(|e| match e {
                audiopus::Error::Opus(audiopus::ErrorCode::InvalidPacket) => Error::InvalidPacket,
                audiopus::Error::Opus(audiopus::ErrorCode::BufferTooSmall) => Error::InvalidPacket,
                other => codec_err(other),
            })?;
        if got != n {
            return Err(Error::PacketDuration { samples: got });
        }
        Ok(())
    }

    /// Decodes the packet `payload` (one RTP payload) into one frame.
    ///
    /// An empty payload means "lost" in Opus (RFC 6716 section 3.1) and is
    /// concealed. A payload that is not Opus, or that lasts anything but one
    /// frame, is rejected with [`Error::InvalidPacket`] or
    /// [`Error::PacketDuration`].
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<(), Error> {
        if payload.is_empty() {
            return self.conceal(out);
        }
        self.check(payload)?;
        self.run(Some(payload), out, false)
    }

    /// Rebuilds the frame *before* `next_payload` from its in-band FEC
    /// data. When `next_payload` carries no FEC, libopus falls back to
    /// concealment, so the result is never worse than [`conceal`](Self::conceal).
    /// Decode `next_payload` itself with [`decode`](Self::decode) in the
    /// next frame period.
    pub fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<(), Error> {
        if next_payload.is_empty() {
            return self.conceal(out);
        }
        // FEC may only be asked of a packet at least one frame long.
        let packet = Packet::try_from(next_payload).map_err(|_| Error::InvalidPacket)?;
        let samples = audiopus::packet::nb_samples(packet, SampleRate::Hz48000)
            .map_err(|_| Error::InvalidPacket)?;
        if samples < self.frame_samples() {
            return Err(Error::PacketDuration { samples });
        }
        self.run(Some(next_payload), out, true)
    }

    /// Conceals one lost frame (Opus packet loss concealment).
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<(), Error> {
        self.run(None, out, false)
    }

    /// Forgets the stream (a new SSRC starts): the next frame decodes as
    /// the first of a stream.
    pub fn reset(&mut self) -> Result<(), Error> {
        let fresh = OpusDecoder::new(SampleRate::Hz48000, Channels::Mono).map_err(codec_err)?;
        self.inner = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sine(n: usize, start: usize, hz: f32) -> Vec<i16> {
        (start..start + n)
            .map(|i| ((i as f32 * hz * std::f32::consts::TAU / 48_000.0).sin() * 8000.0) as i16)
            .collect()
    }

    #[test]
    fn rejects_bitrate_out_of_range() {
        assert!(matches!(
            Encoder::new(EncoderConfig::default().with_bitrate(1_000)),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn rejects_pcm_that_is_not_one_frame() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        let mut out = [0u8; MAX_PACKET];
        assert!(matches!(
            enc.encode(&[0; 480], &mut out),
            Err(Error::FrameSize {
                expected: 960,
                got: 480
            })
        ));
    }

    #[test]
    fn ten_ms_frames_round_trip_with_480_samples() {
        let cfg = EncoderConfig::default().with_frame(FrameDuration::Ms10);
        let mut enc = Encoder::new(cfg).unwrap();
        let mut dec = Decoder::new(FrameDuration::Ms10).unwrap();
        let mut pkt = [0u8; MAX_PACKET];
        let mut out = [0i16; 480];
        let n = enc.encode(&sine(480, 0, 440.0), &mut pkt).unwrap();
        assert_eq!(n, cfg.cbr_packet_bytes());
        dec.decode(&pkt[..n], &mut out).unwrap();
        assert_eq!(FrameDuration::Ms10.rtp_timestamp_step(), 480);
    }

    #[test]
    fn decoder_rejects_a_packet_of_another_duration() {
        let mut enc =
            Encoder::new(EncoderConfig::default().with_frame(FrameDuration::Ms10)).unwrap();
        let mut dec = Decoder::new(FrameDuration::Ms20).unwrap();
        let mut pkt = [0u8; MAX_PACKET];
        let n = enc.encode(&sine(480, 0, 440.0), &mut pkt).unwrap();
        let mut out = [7i16; 960];
        assert!(matches!(
            dec.decode(&pkt[..n], &mut out),
            Err(Error::PacketDuration { samples: 480 })
        ));
        assert!(out.iter().all(|&s| s == 7), "buffer untouched on error");
    }

    #[test]
    fn empty_payload_is_concealed_and_short_buffer_is_refused() {
        let mut dec = Decoder::new(FrameDuration::Ms20).unwrap();
        let mut out = [1i16; 960];
        dec.decode(&[], &mut out).unwrap();
        let mut short = [0i16; 100];
        assert!(matches!(
            dec.conceal(&mut short),
            Err(Error::FrameSize { .. })
        ));
    }

    #[test]
    fn expected_loss_is_clamped_and_bitrate_changes_packet_size() {
        let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
        enc.set_expected_loss_percent(250).unwrap();
        assert_eq!(enc.config().expected_loss_percent, 100);
        enc.set_bitrate(32_000).unwrap();
        let mut pkt = [0u8; MAX_PACKET];
        let mut sizes = Vec::new();
        for k in 0..10 {
            sizes.push(enc.encode(&sine(960, k * 960, 300.0), &mut pkt).unwrap());
        }
        assert!(sizes.iter().all(|&s| s == 80), "{sizes:?}");
        assert!(enc.set_bitrate(500_000).is_err());
        assert_eq!(enc.config().bitrate, 32_000);
    }
}
