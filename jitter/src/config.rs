//! Tuning knobs of the jitter buffer.

use core::time::Duration;

use crate::Error;

/// How a [`JitterBuffer`](crate::JitterBuffer) behaves.
///
/// Start from [`Config::default`] (48 kHz Opus in 20 ms frames) and change
/// the fields you need:
///
/// ```
/// # use cryptic_jitter::Config;
/// # use std::time::Duration;
/// let mut config = Config::default();
/// config.frame_samples = 480; // 10 ms frames
/// config.max_delay = Duration::from_millis(400);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// RTP clock rate in Hz (48 000 for Opus, RFC 7587).
    pub clock_rate: u32,
    /// Samples per frame at `clock_rate`: one frame is played per poll
    /// (960 = 20 ms, 480 = 10 ms at 48 kHz).
    pub frame_samples: u32,
    /// The target delay never goes below this.
    pub min_delay: Duration,
    /// The target delay never goes above this; also bounds how long the
    /// buffer waits for a stalled stream and sizes its slots.
    pub max_delay: Duration,
    /// Target delay used until enough packets have been seen to measure
    /// the network (the first 15 packets, 300 ms of 20 ms frames): short,
    /// so that the buffer settles in the silence before the first word.
    pub start_delay: Duration,
    /// Added to the measured delay quantile; also absorbs small jitter of
    /// the caller's poll instants.
    pub margin: Duration,
    /// Fraction of recent packets whose delay the target should cover, in
    /// `(0.5, 1.0]`; `0.99` lets about 1% arrive after the target. Packets
    /// that only queued behind a late predecessor do not count (waiting for
    /// the predecessor covered them), so this is close to the rate of late
    /// losses and stalls, not of late packets.
    pub quantile: f64,
    /// How many recent packets the delay quantile and the fastest path are
    /// measured over (1 500 = 30 s of 20 ms packets). Longer is steadier
    /// under stationary jitter but remembers a burst for longer.
    pub history: usize,
    /// When late losses come faster than [`quantile`](Self::quantile)
    /// allows (more than two beyond that rate), each further one lifts the
    /// target to its own delay at once: how long that lift holds before it
    /// decays at 100 ms per second (zero: decay at once; the quantile
    /// window remembers the delay anyway).
    pub late_hold: Duration,
    /// How long the buffer must stay deeper than needed before it starts to
    /// shrink during speech.
    pub shrink_after: Duration,
    /// Dead band above the target inside which the buffer does not shrink,
    /// beyond one frame without [`time_stretch`](Self::time_stretch) and
    /// beyond a quarter frame with it (one stretch step, so that a
    /// compressed frame does not overshoot below the target); keeps the
    /// buffer from hunting.
    pub hysteresis: Duration,
    /// With [`time_stretch`](Self::time_stretch): a path whose delay
    /// quantile lies at most this far above its fastest packet is steady,
    /// and the buffer asks the audio side to stretch pauses by just the
    /// excess or shortfall ([`Frame::stretch_by`](crate::Frame::stretch_by))
    /// inside a dead band of a quarter frame plus 4 ms, instead of by whole
    /// frames inside [`hysteresis`](Self::hysteresis). On a loopback or LAN
    /// call this keeps the delay a few ms above the target, not anywhere in
    /// a frame-wide band. Zero: never.
    pub steady_jitter: Duration,
    /// `true` when the audio side honours [`Stretch`](crate::Stretch)
    /// requests (shortens or lengthens a frame slightly). When `false`, the
    /// buffer shrinks during speech only as a fallback, by dropping a frame.
    pub time_stretch: bool,
    /// Largest payload accepted, in bytes: the size of each preallocated slot.
    pub max_payload: usize,
    /// After a frame was missing at its play time, for this long the
    /// target covers one frame more, so that the packet after a lost one is
    /// usually here when the lost one is due and its in-band FEC (Opus
    /// LBRR) rebuilds it instead of concealment; while copies of lost
    /// frames come ([`JitterBuffer::handle_copy`](crate::JitterBuffer::handle_copy)),
    /// as many frames more as the farthest of them came behind. Zero: never.
    pub fec_wait: Duration,
    /// Payloads this short are DTX frames (Opus sends TOC-only packets of
    /// 1 or 2 bytes, one every 400 ms, while the speaker is silent): after
    /// one is played the buffer plays silence, not concealment, until the
    /// next packet.
    pub dtx_payload: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            clock_rate: 48_000,
            frame_samples: 960,
            min_delay: Duration::ZERO,
            max_delay: Duration::from_millis(1_000),
            start_delay: Duration::from_millis(40),
            margin: Duration::from_millis(5),
            quantile: 0.99,
            history: 1_500,
            late_hold: Duration::ZERO,
            shrink_after: Duration::from_millis(200),
            hysteresis: Duration::from_millis(2),
            time_stretch: false,
            steady_jitter: Duration::ZERO,
            max_payload: 1_500,
            fec_wait: Duration::ZERO,
            dtx_payload: 2,
        }
    }
}

impl Config {
    /// Duration of one frame.
    pub fn frame_duration(&self) -> Duration {
        Duration::from_micros(
            u64::from(self.frame_samples) * 1_000_000 / u64::from(self.clock_rate.max(1)),
        )
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.clock_rate == 0 {
            return Err(Error::InvalidConfig("clock_rate must be positive"));
        }
        if self.frame_samples == 0 || self.frame_samples > self.clock_rate {
            return Err(Error::InvalidConfig(
                "frame_samples must be between 1 and one second",
            ));
        }
        if self.max_delay < self.min_delay || self.max_delay > Duration::from_secs(10) {
            return Err(Error::InvalidConfig(
                "max_delay must be at least min_delay and at most 10 s",
            ));
        }
        if !(self.quantile > 0.5 && self.quantile <= 1.0) {
            return Err(Error::InvalidConfig("quantile must be in (0.5, 1.0]"));
        }
        if self.history == 0 || self.history > 1 << 16 {
            return Err(Error::InvalidConfig("history must be between 1 and 65536"));
        }
        if self.max_payload == 0 || self.max_payload > 1 << 16 {
            return Err(Error::InvalidConfig(
                "max_payload must be between 1 and 65536",
            ));
        }
        let long = Duration::from_secs(3_600);
        if self.start_delay > long
            || self.margin > long
            || self.late_hold > long
            || self.shrink_after > long
            || self.hysteresis > long
            || self.steady_jitter > long
            || self.fec_wait > long
        {
            return Err(Error::InvalidConfig("durations must be at most one hour"));
        }
        Ok(())
    }
}
