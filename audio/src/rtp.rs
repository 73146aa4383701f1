//! The RTP side of Opus (RFC 7587): payload type, clock, timestamps and
//! the SDP-style parameters the invite carries.

use crate::codec::{EncoderConfig, FrameDuration, SAMPLE_RATE};

/// RTP clock rate of Opus: always 48 kHz, whatever the audio bandwidth
/// (RFC 7587 section 4.1).
pub const RTP_CLOCK_RATE: u32 = SAMPLE_RATE;

/// The dynamic payload type we use for Opus when nothing else was agreed
/// (any of 96..=127 is valid; 111 is the common choice).
pub const DEFAULT_PAYLOAD_TYPE: u8 = 111;

/// The codec name as it appears in an `rtpmap` and in the invite's
/// `audio_codecs` list: RFC 7587 always writes two channels, even for mono.
pub const CODEC_NAME: &str = "opus/48000/2";

/// Whether `pt` is in the dynamic payload type range 96..=127.
pub const fn is_dynamic_payload_type(pt: u8) -> bool {
    pt >= 96 && pt <= 127
}

/// The RFC 7587 format parameters (`a=fmtp`) describing what our encoder
/// sends: mono, in-band FEC, CBR, DTX and packet time.
pub fn fmtp(config: &EncoderConfig) -> String {
    format!(
        "minptime=10;ptime={};useinbandfec={};usedtx={};cbr={};stereo=0;sprop-stereo=0;maxaveragebitrate={}",
        config.frame.millis(),
        u8::from(config.fec),
        u8::from(config.dtx),
        u8::from(config.constant_bitrate),
        config.bitrate,
    )
}

/// The sender's RTP timestamp: it advances by one frame every frame
/// period, whether the frame carried speech, muted silence or nothing at
/// all (RFC 7587: 960 per 20 ms frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpClock {
    next: u32,
    step: u32,
}

impl RtpClock {
    /// Starts at `initial` (a random value, RFC 3550 section 5.1).
    pub const fn new(initial: u32, frame: FrameDuration) -> Self {
        Self {
            next: initial,
            step: frame.rtp_timestamp_step(),
        }
    }

    /// The timestamp of the next frame, without advancing.
    pub const fn peek(&self) -> u32 {
        self.next
    }

    /// The timestamp for the frame being sent now; the clock moves on.
    pub fn tick(&mut self) -> u32 {
        let t = self.next;
        self.next = self.next.wrapping_add(self.step);
        t
    }

    /// Skips `frames` frame periods that were not sent (DTX, or a source
    /// that was not ready), keeping the clock in step with real time.
    pub fn skip(&mut self, frames: u32) {
        self.next = self.next.wrapping_add(self.step.wrapping_mul(frames));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_advances_960_per_20ms_frame_and_wraps() {
        let mut c = RtpClock::new(u32::MAX - 959, FrameDuration::Ms20);
        assert_eq!(c.tick(), u32::MAX - 959);
        assert_eq!(c.tick(), 0);
        assert_eq!(c.tick(), 960);
        c.skip(2);
        assert_eq!(c.peek(), 960 * 4);
    }

    #[test]
    fn fmtp_describes_cbr_fec_mono() {
        let f = fmtp(&EncoderConfig::default());
        assert!(f.contains("useinbandfec=1"));
        assert!(f.contains("cbr=1"));
        assert!(f.contains("usedtx=0"));
        assert!(f.contains("ptime=20"));
        assert!(is_dynamic_payload_type(DEFAULT_PAYLOAD_TYPE));
        assert!(!is_dynamic_payload_type(0));
    }
}
