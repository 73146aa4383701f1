//! The adaptive jitter buffer: a sans-IO state machine.

use core::time::Duration;
use std::time::Instant;

use crate::config::Config;
use crate::estimate::Estimator;
use crate::seq::{extend_seq, extend_ts, SEQ_BASE, TS_BASE};
use crate::Error;

/// Packets seen before the measured quantile replaces `start_delay`: 300 ms
/// of 20 ms frames, so that the first shrink falls in the pause before the
/// first word (at 50, a second, it cut that word on a loopback call:
/// client/tests/call-quality-beside-gstreamer.rs).
const WARMUP_PACKETS: usize = 15;
/// A sequence number this far ahead of the highest seen starts probation.
const MAX_DROPOUT: u64 = 3_000;
/// A sequence number this far behind the play position starts probation
/// (also the span of the duplicate-detection bitmap).
const MAX_MISORDER: u64 = 1_024;
/// How fast a late packet's delay decays out of the target once
/// `late_hold` is over: one part in `PEAK_DECAY` of the elapsed time.
const PEAK_DECAY: i64 = 10;
/// Late losses beyond the rate [`Config::quantile`] allows (a leaky bucket)
/// before one lifts the target at once instead of waiting for the quantile.
const LATE_BURST: u64 = 2;
/// One late loss in the leaky bucket, in parts per million of a packet.
const PPM: u64 = 1_000_000;
/// Dropping a frame in speech (no time-stretch available) waits this many
/// times `shrink_after`.
const DROP_SLOWDOWN: u32 = 5;
/// On a steady path, how far above the target a fine stretch leaves the
/// delay (µs): a device-paced caller's poll instants wander by a few ms,
/// and a delay that dips below the target loses late frames. With 2 ms,
/// a loopback call through PulseAudio devices concealed up to 33 frames
/// in 1 400 (late ones); with 4 ms, at most 4, and none without fine
/// stretching (`audio/quality/device-latency.sh`, 10 ms frames).
const STEADY_CUSHION_US: i64 = 4_000;

/// One RTP packet handed to [`JitterBuffer::handle_packet`], after SRTP
/// unprotection and RTP parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// RTP synchronisation source; a new value restarts the stream.
    pub ssrc: u32,
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp, at [`Config::clock_rate`].
    pub timestamp: u32,
    /// The codec payload (one Opus packet).
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Bundles the fields of a packet.
    pub const fn new(ssrc: u32, seq: u16, timestamp: u32, payload: &'a [u8]) -> Self {
        Self {
            ssrc,
            seq,
            timestamp,
            payload,
        }
    }
}

/// What [`JitterBuffer::handle_packet`] did with a packet.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Stored; it will be played in turn.
    Buffered,
    /// Stored as the first packet of a new stream (new SSRC, or a
    /// confirmed sequence or timestamp jump): everything older was flushed.
    Resynced,
    /// Already seen; ignored.
    Duplicate,
    /// Came after its frame was played or concealed; its delay still
    /// raised the target.
    Late,
    /// Too far from the stream (sequence or timing jump awaiting
    /// confirmation by the next packet); ignored.
    Discarded,
}

/// A time-stretch request riding on a [`Frame`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Stretch {
    /// Play the frame as it is.
    #[default]
    None,
    /// The buffer is deeper than needed: the audio side may play this frame
    /// a little shorter (e.g. remove one pitch period, 2.5 to 10 ms).
    Compress,
    /// The buffer is shallower than wanted: the audio side may play this
    /// frame a little longer.
    Expand,
}

/// The next frame's payload, ready for the decoder.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// RTP sequence number of the packet.
    pub seq: u16,
    /// RTP timestamp of the packet.
    pub timestamp: u32,
    /// The payload, borrowed from the buffer's slot until the next call.
    pub payload: &'a [u8],
    /// Whether the audio side should shorten or lengthen this frame.
    pub stretch: Stretch,
    /// By how much, when the audio side can shorten or lengthen by any
    /// amount (a frame in a pause): one whole frame on a jittery path (a
    /// coarse step inside a dead band a frame wide, so that the buffer does
    /// not hunt), the excess above the target less a small cushion (or the
    /// shortfall plus it) on a steady one (see
    /// [`Config::steady_jitter`](crate::Config::steady_jitter)). Zero when
    /// [`stretch`](Self::stretch) is `None`.
    pub stretch_by: Duration,
}

/// The frame is missing: the decoder conceals it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conceal<'a> {
    /// RTP timestamp of the missing frame.
    pub timestamp: u32,
    /// The *following* packet's payload when it is already here: decode the
    /// missing frame from its in-band FEC (Opus LBRR, `decode_fec = true`)
    /// instead of running plain packet loss concealment. The packet itself
    /// is still played on the next poll.
    pub fec: Option<&'a [u8]>,
    /// `true` when no frame is missing but the buffer is growing: this
    /// concealment lengthens the play-out (played before the frame that is
    /// already here).
    pub inserted: bool,
}

impl Conceal<'_> {
    /// Whether the missing frame can be rebuilt from the next packet's FEC.
    pub fn fec_available(&self) -> bool {
        self.fec.is_some()
    }
}

/// Nothing to decode for this frame period.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// RTP timestamp of the frame period (0 before the first packet).
    pub timestamp: u32,
    /// `true` when the sender is in discontinuous transmission: play comfort
    /// noise. `false` when no stream is playing yet (idle or pre-roll).
    pub dtx: bool,
}

/// What to play for one frame period: the output of [`JitterBuffer::poll`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Playout<'a> {
    /// Decode and play this frame.
    Frame(Frame<'a>),
    /// Conceal a missing frame (PLC, or FEC from the following packet).
    Conceal(Conceal<'a>),
    /// Play silence or comfort noise.
    Silence(Silence),
}

/// Counters and gauges of a [`JitterBuffer`] since it was created.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets handed to [`JitterBuffer::handle_packet`] (valid size).
    pub received: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Packets that arrived after their frame's play-out (late losses).
    pub late: u64,
    /// Packets that arrived after their play-out time while the buffer was
    /// waiting for them: played, at the cost of a longer delay.
    pub rescued: u64,
    /// Packets ignored as too far from the stream.
    pub discarded: u64,
    /// Packets evicted because the buffer was full (flood, or a caller
    /// that stopped polling).
    pub overflow: u64,
    /// Frames played from a packet.
    pub played: u64,
    /// Frames concealed (all [`Playout::Conceal`] outputs).
    pub concealed: u64,
    /// Concealed frames for which the next packet's FEC was offered.
    pub fec_available: u64,
    /// Frames of DTX silence / comfort noise.
    pub silence: u64,
    /// Polls that found the buffer empty while a frame was due.
    pub underruns: u64,
    /// Frames added to grow the delay (concealment or silence).
    pub inserted: u64,
    /// Frames dropped to shrink the delay (mostly silence).
    pub dropped: u64,
    /// Frames sent with a [`Stretch`] request.
    pub stretched: u64,
    /// Stream restarts: new SSRC, or a confirmed sequence or timestamp jump.
    pub resyncs: u64,
    /// Missing frames rebuilt from a later packet's copy
    /// ([`JitterBuffer::handle_copy`]) in time to play.
    pub recovered: u64,
    /// Missing frames whose copies all came after their play time (each
    /// frame counts once, however many copies of it came).
    pub recovered_late: u64,
    /// Target delay beyond the fastest recent packet, at the last poll.
    pub target_delay: Duration,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    seq: u64,
    ts: u64,
    len: u32,
    used: bool,
}

/// An adaptive jitter buffer for one incoming audio stream.
///
/// # How to drive it
///
/// The buffer does no I/O and never reads the clock: every call takes the
/// current time as `now`, so it runs the same under a real clock and in a
/// simulation.
///
/// 1. For each RTP packet that survives SRTP unprotection, call
///    [`handle_packet`](Self::handle_packet) with its arrival time. The
///    payload is copied into a preallocated slot: no allocation per packet.
/// 2. Once per frame period, driven by the audio side's demand for PCM (for
///    example whenever the playback ring has room for another frame), call
///    [`poll`](Self::poll). It returns exactly one [`Playout`]: decode the
///    [`Frame`], conceal ([`Conceal`], with the next packet's payload when
///    FEC can rebuild the frame) or play [`Silence`]. Honour the frame's
///    [`Stretch`] request if the audio side can, and set
///    [`Config::time_stretch`] accordingly.
/// 3. [`poll_timeout`](Self::poll_timeout) says when the next poll is due
///    if the caller has no audio clock of its own.
///
/// The delay the buffer keeps is measured, not configured: a high quantile
/// ([`Config::quantile`]) of recent packets' transit beyond the fastest one,
/// plus a margin, within [`Config::min_delay`] and [`Config::max_delay`].
/// When the buffer runs dry it conceals without moving on, so a delayed
/// packet still plays (the delay grows by the gap) instead of being lost.
/// That wait also covers the packets queued behind the delayed one (they
/// arrive together when the link recovers), so those do not count towards
/// the quantile: only what a wait cannot fix (reordering, a slower path, the
/// head of a stall) raises the target. Late losses lift the target at once
/// when they come faster than the quantile allows. Shrinking is slow: frames
/// are dropped in silence, or the audio side is asked to compress frames,
/// only after the buffer has been deeper than needed for
/// [`Config::shrink_after`] (at once when it is a frame or more too deep,
/// as after a stall, and the audio side can stretch). Clock drift between
/// sender and receiver shows up as a slowly moving transit and is absorbed
/// the same way.
pub struct JitterBuffer {
    config: Config,
    frame_ts: u64,
    frame_us: i64,
    mask: u64,
    slots: Box<[Slot]>,
    data: Box<[u8]>,
    len: usize,
    seen: [u64; (MAX_MISORDER / 64) as usize],
    /// Transit of recent packets: its minimum is the fastest path.
    transits: Estimator,
    /// What recent packets asked of the target delay (see `record`).
    needs: Estimator,
    /// Sequence, timestamp (µs) and transit of the newest packet so far.
    newest: Option<(u64, i64, i64)>,
    /// Late losses beyond the allowed rate, in ppm of a packet.
    late_debt: u64,
    /// Packets allowed after the target, in ppm of a packet.
    miss_ppm: u64,

    epoch: Option<Instant>,
    active: bool,
    starting: bool,
    ssrc: u32,
    first_arrival: Option<Instant>,
    ts_origin: u64,
    seq_hi: u64,
    ts_hi: u64,
    next_seq: u64,
    next_ts: u64,
    hold: u64,
    max_hold: u64,
    in_dtx: bool,
    over_polls: u32,
    shrink_polls: u32,
    peak: Option<(i64, i64)>,
    probe: Option<(u16, u32)>,
    last_poll: Option<Instant>,
    target_delay_us: i64,
    /// When (µs) a frame was last missing at its play time.
    missed_at: Option<i64>,
    /// Frames to wait beyond the target while losses come: 1 for the next
    /// packet's FEC, more when copies of lost frames come that many
    /// packets behind them ([`JitterBuffer::handle_copy`]).
    loss_wait_frames: u64,
    /// The newest frame whose late copy was counted: each packet carries
    /// copies of the same lost frame one after another, and the frame
    /// counts once.
    late_copy_seq: Option<u64>,
    stats: Stats,

    min_delay_us: i64,
    max_delay_us: i64,
    start_delay_us: i64,
    margin_us: i64,
    late_hold_us: i64,
    hysteresis_us: i64,
    steady_jitter_us: i64,
    resync_us: i64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl JitterBuffer {
    /// Creates a buffer; all memory it will ever use is allocated here.
    pub fn new(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let frame_ts = u64::from(config.frame_samples);
        let frame_us =
            (i64::from(config.frame_samples) * 1_000_000 / i64::from(config.clock_rate)).max(1);
        let max_delay_us = micros(config.max_delay);
        let max_hold = (max_delay_us / frame_us).max(1) as u64;
        let capacity = ((max_hold as usize) * 2 + 16).next_power_of_two();
        let shrink_polls =
            (micros(config.shrink_after) / frame_us).clamp(1, i64::from(u32::MAX / 8));
        Ok(Self {
            frame_ts,
            frame_us,
            mask: capacity as u64 - 1,
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
            data: vec![0; capacity * config.max_payload].into_boxed_slice(),
            len: 0,
            seen: [0; (MAX_MISORDER / 64) as usize],
            transits: Estimator::min_only(config.history, max_delay_us),
            needs: Estimator::new(config.history, max_delay_us, config.quantile),
            newest: None,
            late_debt: 0,
            miss_ppm: ((1.0 - config.quantile) * 1e6).clamp(0.0, 1e6) as u64,
            epoch: None,
            active: false,
            starting: false,
            ssrc: 0,
            first_arrival: None,
            ts_origin: TS_BASE,
            seq_hi: SEQ_BASE,
            ts_hi: TS_BASE,
            next_seq: SEQ_BASE,
            next_ts: TS_BASE,
            hold: 0,
            max_hold,
            in_dtx: false,
            over_polls: 0,
            shrink_polls: shrink_polls as u32,
            peak: None,
            probe: None,
            last_poll: None,
            target_delay_us: 0,
            missed_at: None,
            loss_wait_frames: 1,
            late_copy_seq: None,
            stats: Stats::default(),
            min_delay_us: micros(config.min_delay),
            max_delay_us,
            start_delay_us: micros(config.start_delay),
            margin_us: micros(config.margin),
            late_hold_us: micros(config.late_hold),
            hysteresis_us: micros(config.hysteresis),
            steady_jitter_us: micros(config.steady_jitter),
            resync_us: max_delay_us.saturating_add(2_000_000),
            config,
        })
    }

    /// The configuration this buffer runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since creation, with the current target delay.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.target_delay = Duration::from_micros(self.target_delay_us.max(0) as u64);
        s
    }

    /// Target delay beyond the fastest recent packet, as of the last poll.
    pub fn target_delay(&self) -> Duration {
        Duration::from_micros(self.target_delay_us.max(0) as u64)
    }

    /// Packets currently stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no packet is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fixed number of packet slots (never grows).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// When the next [`poll`](Self::poll) is due: one frame after the last
    /// poll, or right away once the first packet is in. `None` while idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.active {
            return None;
        }
        match self.last_poll {
            Some(t) => t.checked_add(self.config.frame_duration()),
            None => self.first_arrival,
        }
    }

    /// Forgets the stream (keeps the counters); the next packet starts afresh.
    pub fn reset(&mut self) {
        self.flush();
        self.active = false;
        self.starting = false;
    }

    /// Forgets the delays measured so far, keeps the frames queued and the
    /// play position: the packets handed in since were not timed by the
    /// network. Call it when the receiver could not read for a while (an
    /// audio device that took 300 ms to open left a backlog in the socket,
    /// read in one burst, out of order with the packets the server relayed
    /// meanwhile): measured, that burst held the target at 300 ms for the
    /// 30 s of [`Config::history`]. The fastest transit seen stays (a
    /// backlog only makes packets look slower); the delays asked for start
    /// again from it.
    pub fn forget_delays(&mut self) {
        self.needs.clear();
        if let Some(base) = self.transits.min() {
            self.needs.add(base);
        }
        self.newest = None;
        self.late_debt = 0;
        self.peak = None;
        self.probe = None;
    }

    fn now_us(&self, now: Instant) -> i64 {
        let Some(epoch) = self.epoch else { return 0 };
        match now.checked_duration_since(epoch) {
            Some(d) => micros(d),
            None => micros(epoch.saturating_duration_since(now)).saturating_neg(),
        }
    }

    fn ts_us(&self, ts: u64) -> i64 {
        let delta = ts.wrapping_sub(self.ts_origin) as i64;
        delta.saturating_mul(1_000_000) / i64::from(self.config.clock_rate)
    }

    fn flush(&mut self) {
        for s in self.slots.iter_mut() {
            s.used = false;
        }
        self.len = 0;
        self.seen = [0; (MAX_MISORDER / 64) as usize];
        self.transits.clear();
        self.needs.clear();
        self.newest = None;
        self.late_debt = 0;
        self.peak = None;
        self.probe = None;
        self.hold = 0;
        self.in_dtx = false;
        self.over_polls = 0;
        self.loss_wait_frames = 1;
        self.late_copy_seq = None;
    }

    fn restart(&mut self, now: Instant, p: &Packet<'_>) {
        self.stats.discarded += self.len as u64;
        self.flush();
        self.active = true;
        self.starting = true;
        self.ssrc = p.ssrc;
        self.first_arrival = Some(now);
        self.seq_hi = SEQ_BASE + u64::from(p.seq);
        self.ts_hi = TS_BASE + u64::from(p.timestamp);
        self.ts_origin = self.ts_hi;
        self.next_seq = self.seq_hi;
        self.next_ts = self.ts_hi;
    }

    fn seen_bit(seq: u64) -> (usize, u64) {
        let i = seq % MAX_MISORDER;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn is_duplicate(&self, seq: u64) -> bool {
        if seq > self.seq_hi || self.seq_hi - seq >= MAX_MISORDER {
            return false;
        }
        let (w, b) = Self::seen_bit(seq);
        self.seen[w] & b != 0
    }

    fn mark_seen(&mut self, seq: u64) {
        if seq > self.seq_hi {
            let from = self.seq_hi + 1;
            if seq - self.seq_hi >= MAX_MISORDER {
                self.seen = [0; (MAX_MISORDER / 64) as usize];
            } else {
                for s in from..=seq {
                    let (w, b) = Self::seen_bit(s);
                    self.seen[w] &= !b;
                }
            }
        }
        let (w, b) = Self::seen_bit(seq);
        self.seen[w] |= b;
    }

    fn bump_peak(&mut self, now_us: i64, transit: i64) {
        let current = self.peak_at(now_us).unwrap_or(i64::MIN);
        self.peak = Some((transit.max(current), now_us));
    }

    fn peak_at(&self, now_us: i64) -> Option<i64> {
        let (value, at) = self.peak?;
        let decaying = now_us.saturating_sub(at).saturating_sub(self.late_hold_us);
        Some(value.saturating_sub(decaying.max(0) / PEAK_DECAY))
    }

    /// Transit (µs) the play-out aims at: frames play when
    /// `now - timestamp` reaches it.
    fn target_transit(&mut self, now_us: i64) -> i64 {
        let (Some(base), Some(need)) = (self.transits.min(), self.needs.quantile()) else {
            return self.start_delay_us;
        };
        let mut want = need.saturating_add(self.margin_us);
        if self.transits.len() < WARMUP_PACKETS.min(self.config.history) {
            want = want.max(base.saturating_add(self.start_delay_us));
        }
        if let Some(peak) = self.peak_at(now_us) {
            want = want.max(peak.saturating_add(self.margin_us));
        }
        let fec_wait = micros(self.config.fec_wait);
        if self
            .missed_at
            .is_some_and(|t| now_us < t.saturating_add(fec_wait))
        {
            // Losses lately: the next packet's FEC (or a later packet's
            // copy of the lost frame) should be here in time.
            let wait = self.frame_us.saturating_mul(self.loss_wait_frames as i64);
            want = want.saturating_add(wait);
        } else {
            self.loss_wait_frames = 1;
        }
        let want = want.clamp(
            base.saturating_add(self.min_delay_us),
            base.saturating_add(self.max_delay_us),
        );
        self.target_delay_us = want.saturating_sub(base);
        want
    }

    /// Hands one received packet to the buffer.
    ///
    /// `now` is the packet's arrival time. Never allocates; the payload is
    /// copied into a fixed slot.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet<'_>) -> Result<Arrival, Error> {
        if packet.payload.len() > self.config.max_payload {
            return Err(Error::PayloadTooLarge {
                len: packet.payload.len(),
                max: self.config.max_payload,
            });
        }
        self.stats.received += 1;
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }
        let now_us = self.now_us(now);
        if !self.active || packet.ssrc != self.ssrc {
            let arrival = if self.active {
                self.stats.resyncs += 1;
                Arrival::Resynced
            } else {
                Arrival::Buffered
            };
            self.restart(now, &packet);
            let transit = now_us - self.ts_us(self.ts_hi);
            self.record(self.seq_hi, self.ts_hi, transit);
            self.store(self.seq_hi, self.ts_hi, packet.payload);
            return Ok(arrival);
        }

        let seq = extend_seq(self.seq_hi, packet.seq);
        let ts = extend_ts(self.ts_hi, packet.timestamp);
        let transit = now_us.saturating_sub(self.ts_us(ts));
        let base = self.transits.min().unwrap_or(transit);
        let far_seq = seq > self.seq_hi + MAX_DROPOUT || seq + MAX_MISORDER < self.next_seq;
        let far_time = transit.saturating_sub(base).saturating_abs() > self.resync_us;
        if far_seq || far_time {
            let confirmed = self.probe.is_some_and(|(pseq, pts)| {
                pseq.wrapping_add(1) == packet.seq
                    && packet.timestamp.wrapping_sub(pts) <= self.config.clock_rate
            });
            if confirmed {
                self.stats.resyncs += 1;
                self.restart(now, &packet);
                let transit = now_us - self.ts_us(self.ts_hi);
                self.record(self.seq_hi, self.ts_hi, transit);
                self.store(self.seq_hi, self.ts_hi, packet.payload);
                return Ok(Arrival::Resynced);
            }
            self.probe = Some((packet.seq, packet.timestamp));
            self.stats.discarded += 1;
            return Ok(Arrival::Discarded);
        }
        self.probe = None;

        if self.is_duplicate(seq) || self.slot_holds(seq) {
            self.stats.duplicates += 1;
            return Ok(Arrival::Duplicate);
        }
        if seq < self.next_seq || ts + self.frame_ts <= self.next_ts {
            self.mark_seen(seq);
            self.record(seq, ts, transit);
            // One late loss is the tail the quantile allows for; several
            // in a row mean the network got worse: grow at once.
            self.late_debt = self.late_debt.saturating_add(PPM);
            if self.late_debt > LATE_BURST * PPM {
                self.bump_peak(now_us, transit);
            }
            self.stats.late += 1;
            return Ok(Arrival::Late);
        }
        if self.hold > 0 && ts < self.next_ts + self.hold * self.frame_ts {
            // Late, but the buffer ran dry and waited for it.
            self.stats.rescued += 1;
        }
        if seq - self.next_seq > self.mask {
            self.make_room(seq, ts);
        }
        self.record(seq, ts, transit);
        self.store(seq, ts, packet.payload);
        Ok(Arrival::Buffered)
    }

    /// Hands in a copy of an earlier frame that came inside a later packet
    /// (redundant audio, RFC 2198): `packet` is the copy with the sequence
    /// number and timestamp of the frame it stands for, `behind` how many
    /// packets after that frame it came (1 for a copy of the frame just
    /// before). Returns whether the copy fills a frame still missing.
    ///
    /// A copy tells nothing about the path's delay, so it is not measured.
    /// Copies of frames already here or played are ignored. A copy of a
    /// missing frame means a loss: the buffer waits `behind` frames longer
    /// for a while (as for FEC, [`Config::fec_wait`]), so that the next
    /// copies come in time; a frame whose copy came after its play time
    /// counts once in [`Stats::recovered_late`].
    pub fn handle_copy(
        &mut self,
        now: Instant,
        packet: Packet<'_>,
        behind: u16,
    ) -> Result<bool, Error> {
        if packet.payload.len() > self.config.max_payload {
            return Err(Error::PayloadTooLarge {
                len: packet.payload.len(),
                max: self.config.max_payload,
            });
        }
        if !self.active || packet.ssrc != self.ssrc || behind == 0 {
            return Ok(false);
        }
        let seq = extend_seq(self.seq_hi, packet.seq);
        let ts = extend_ts(self.ts_hi, packet.timestamp);
        if seq >= self.seq_hi
            || self.seq_hi - seq >= MAX_MISORDER
            || self.is_duplicate(seq)
            || self.slot_holds(seq)
        {
            return Ok(false);
        }
        let now_us = self.now_us(now);
        self.missed_at = Some(now_us);
        self.loss_wait_frames = self.loss_wait_frames.max(u64::from(behind));
        if seq < self.next_seq || ts + self.frame_ts <= self.next_ts {
            // Not marked seen: the frame's own packet may still come,
            // late, and its delay must count.
            if self.late_copy_seq.is_none_or(|s| seq > s) {
                self.late_copy_seq = Some(seq);
                self.stats.recovered_late += 1;
            }
            return Ok(false);
        }
        if seq - self.next_seq > self.mask {
            return Ok(false);
        }
        self.store(seq, ts, packet.payload);
        self.stats.recovered += 1;
        Ok(true)
    }

    /// Measures one packet: its transit, and the transit it asks the target
    /// to cover (its own).
    ///
    /// A packet that arrives in order, hard on the heels of its predecessor
    /// (less than half its frame period later) and no later than that one,
    /// asks for nothing beyond the fastest path: it queued behind the
    /// predecessor (a FIFO backlog after a stall), so whatever wait covered
    /// the predecessor covered it too. Only the head of such a backlog
    /// counts, and a one-second stall does not weigh like fifty late packets.
    /// Reordered packets always count in full: no wait can save a packet
    /// that a later one overtook.
    fn record(&mut self, seq: u64, ts: u64, transit: i64) {
        self.transits.add(transit);
        let base = self.transits.min().unwrap_or(transit);
        let mut need = transit;
        if seq > self.seq_hi || self.newest.is_none() {
            let ts_us = self.ts_us(ts);
            let queued = self.newest.is_some_and(|(s, t, prev)| {
                let half_period = ts_us.saturating_sub(t) / 2;
                s + 1 == seq && transit.saturating_add(half_period) <= prev
            });
            if queued {
                need = base;
            }
            self.newest = Some((seq, ts_us, transit));
        }
        self.needs.add(need);
        self.late_debt = self.late_debt.saturating_sub(self.miss_ppm);
    }

    fn slot_holds(&self, seq: u64) -> bool {
        let s = &self.slots[(seq & self.mask) as usize];
        s.used && s.seq == seq
    }

    /// The buffer cannot hold `seq`: give up the oldest positions.
    fn make_room(&mut self, seq: u64, ts: u64) {
        let new_next = seq - self.mask;
        for s in self.next_seq..new_next.min(self.next_seq + self.mask + 1) {
            let slot = &mut self.slots[(s & self.mask) as usize];
            if slot.used && slot.seq == s {
                slot.used = false;
                self.len -= 1;
                self.stats.overflow += 1;
            }
        }
        self.next_seq = new_next;
        let guess = ts.saturating_sub((seq - new_next) * self.frame_ts);
        self.next_ts = self.next_ts.max(guess);
        self.hold = 0;
    }

    fn store(&mut self, seq: u64, ts: u64, payload: &[u8]) {
        let i = (seq & self.mask) as usize;
        if self.slots[i].used {
            self.stats.overflow += 1;
        } else {
            self.len += 1;
        }
        let at = i * self.config.max_payload;
        self.data[at..at + payload.len()].copy_from_slice(payload);
        self.slots[i] = Slot {
            seq,
            ts,
            len: payload.len() as u32,
            used: true,
        };
        self.mark_seen(seq);
        if seq > self.seq_hi {
            self.seq_hi = seq;
            self.ts_hi = ts;
        }
    }

    /// The earliest stored packet at or after the play position; stale ones
    /// (whose frame is already past) are evicted on the way.
    fn find_head(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut s = self.next_seq;
        let end = self.seq_hi.min(self.next_seq + self.mask);
        while s <= end {
            let i = (s & self.mask) as usize;
            let slot = self.slots[i];
            if slot.used && slot.seq == s {
                if slot.ts + self.frame_ts <= self.next_ts {
                    self.slots[i].used = false;
                    self.len -= 1;
                    self.stats.dropped += 1;
                    self.next_seq = s + 1;
                } else {
                    return Some(i);
                }
            }
            s += 1;
        }
        None
    }

    fn payload(&self, i: usize) -> &[u8] {
        let at = i * self.config.max_payload;
        &self.data[at..at + self.slots[i].len as usize]
    }

    fn take(&mut self, i: usize) -> (u64, u64) {
        let slot = self.slots[i];
        self.slots[i].used = false;
        self.len -= 1;
        self.next_seq = slot.seq + 1;
        self.next_ts = slot.ts + self.frame_ts;
        self.stats.played += 1;
        (slot.seq, slot.ts)
    }

    /// Whether the path is steady enough for fine stretching: time-stretch
    /// is on and the delay quantile lies at most
    /// [`Config::steady_jitter`] above the fastest packet (the target less
    /// its margin; a lift for FEC or a late burst counts as jitter).
    fn steady(&self) -> bool {
        self.config.time_stretch
            && self.steady_jitter_us > 0
            && !self.starting
            && self.target_delay_us.saturating_sub(self.margin_us) <= self.steady_jitter_us
    }

    /// How far above the target (µs) the delay may sit before the buffer
    /// shrinks. On a steady path the audio side removes just the excess in
    /// a pause, so the dead band is a quarter frame over the cushion; with
    /// time-stretch on a jittery one it trims a few ms at a time (a quarter
    /// frame plus the configured hysteresis); without it, a whole frame.
    fn shrink_at(&self, steady: bool) -> i64 {
        if steady {
            self.frame_us / 4 + STEADY_CUSHION_US
        } else if self.config.time_stretch {
            self.frame_us / 4 + self.hysteresis_us
        } else {
            self.frame_us + self.hysteresis_us
        }
    }

    fn error_us(&mut self, now_us: i64) -> i64 {
        let target = self.target_transit(now_us);
        now_us
            .saturating_sub(self.ts_us(self.next_ts))
            .saturating_sub(target)
    }

    /// Says what to play for the next frame period.
    ///
    /// Call once per frame period, when the audio side needs the next frame.
    /// The returned payloads borrow the buffer until the next call.
    pub fn poll(&mut self, now: Instant) -> Playout<'_> {
        self.last_poll = Some(now);
        if !self.active {
            return Playout::Silence(Silence {
                timestamp: 0,
                dtx: false,
            });
        }
        let now_us = self.now_us(now);
        let mut err = self.error_us(now_us);
        if self.starting {
            if err < 0 {
                return Playout::Silence(Silence {
                    timestamp: self.next_ts as u32,
                    dtx: false,
                });
            }
            self.starting = false;
        }
        // Far deeper than allowed (the caller stopped polling, or a flood):
        // skip ahead at once.
        if self.hold == 0 && err > self.max_delay_us.saturating_add(self.frame_us) {
            let skip = (err / self.frame_us) as u64;
            self.next_ts += skip * self.frame_ts;
            err -= skip as i64 * self.frame_us;
        }

        let Some(i) = self.find_head() else {
            return self.on_empty();
        };
        let (seq_j, ts_j) = (self.slots[i].seq, self.slots[i].ts);

        if self.hold > 0 {
            // We concealed `hold` frames without moving on: the ones the
            // stream now covers become extra delay, the rest were lost.
            let virt = self.next_ts + self.hold * self.frame_ts;
            let new_next = virt.min(ts_j).max(self.next_ts);
            let advanced = (new_next - self.next_ts) / self.frame_ts;
            self.stats.inserted += self.hold.saturating_sub(advanced);
            if advanced > 0 {
                self.missed_at = Some(now_us);
            }
            self.next_ts = new_next;
            self.hold = 0;
            err = self.error_us(now_us);
        }

        let frame_us = self.frame_us;
        let steady = self.steady();
        let shrink_at = self.shrink_at(steady);
        if ts_j < self.next_ts + self.frame_ts {
            // The frame is here.
            self.in_dtx = false;
            let mut stretch = Stretch::None;
            let mut stretch_by = frame_us;
            let mut play = i;
            if err < 0 {
                self.over_polls = 0;
                if !self.config.time_stretch || err < -frame_us / 2 {
                    self.stats.inserted += 1;
                    self.stats.concealed += 1;
                    return Playout::Conceal(Conceal {
                        timestamp: self.next_ts as u32,
                        fec: None,
                        inserted: true,
                    });
                }
                stretch = Stretch::Expand;
                if steady {
                    stretch_by = STEADY_CUSHION_US.saturating_sub(err).min(frame_us);
                }
            } else if err >= shrink_at {
                self.over_polls = self.over_polls.saturating_add(1);
                if err >= shrink_at + frame_us {
                    // A frame or more too deep (a stall's backlog): start
                    // compressing at once.
                    self.over_polls = self.over_polls.max(self.shrink_polls);
                }
                if self.over_polls >= self.shrink_polls {
                    if self.config.time_stretch {
                        stretch = Stretch::Compress;
                        if steady {
                            stretch_by = (err - STEADY_CUSHION_US).clamp(0, frame_us);
                        }
                    } else if self.over_polls >= self.shrink_polls * DROP_SLOWDOWN {
                        let next = ((seq_j + 1) & self.mask) as usize;
                        if self.slot_holds(seq_j + 1) && self.slots[next].ts == ts_j + self.frame_ts
                        {
                            self.slots[i].used = false;
                            self.len -= 1;
                            self.stats.dropped += 1;
                            play = next;
                            self.over_polls = 0;
                        }
                    }
                }
            } else {
                self.over_polls = 0;
            }
            if stretch != Stretch::None {
                self.stats.stretched += 1;
            } else {
                stretch_by = 0;
            }
            self.in_dtx = self.slots[play].len as usize <= self.config.dtx_payload;
            let (seq, ts) = self.take(play);
            return Playout::Frame(Frame {
                seq: seq as u16,
                timestamp: ts as u32,
                payload: self.payload(play),
                stretch,
                stretch_by: Duration::from_micros(stretch_by.max(0) as u64),
            });
        }

        // The frame at `next_ts` is missing, a later packet is here.
        let timestamp = self.next_ts as u32;
        if seq_j == self.next_seq || self.in_dtx {
            // No packet missing: the sender paused (DTX). Silence can grow
            // or shrink freely.
            self.in_dtx = true;
            self.stats.silence += 1;
            self.over_polls = 0;
            if err < 0 {
                self.stats.inserted += 1;
            } else {
                let room = (ts_j - self.next_ts) / self.frame_ts;
                let mut extra = 0;
                if err >= shrink_at {
                    extra = ((err / frame_us) as u64).min(room.saturating_sub(1));
                }
                self.stats.dropped += extra;
                self.next_ts += (1 + extra) * self.frame_ts;
                if seq_j != self.next_seq && self.next_ts >= ts_j {
                    self.next_seq = seq_j;
                }
            }
            return Playout::Silence(Silence {
                timestamp,
                dtx: true,
            });
        }
        self.on_lost(i, seq_j, ts_j, now_us)
    }

    /// The frame at `next_ts` is lost (or later than we can wait for) and
    /// the packet in slot `head` (`seq_j`, `ts_j`) is the next one here:
    /// conceal, with that packet's FEC when it directly follows.
    fn on_lost(&mut self, head: usize, seq_j: u64, ts_j: u64, now_us: i64) -> Playout<'_> {
        let timestamp = self.next_ts as u32;
        self.over_polls = 0;
        self.stats.concealed += 1;
        self.missed_at = Some(now_us);
        let fec = ts_j == self.next_ts + self.frame_ts;
        if fec {
            self.stats.fec_available += 1;
        }
        self.next_ts += self.frame_ts;
        self.next_seq = (self.next_seq + 1).min(seq_j);
        Playout::Conceal(Conceal {
            timestamp,
            fec: fec.then(|| self.payload(head)),
            inserted: false,
        })
    }

    fn on_empty(&mut self) -> Playout<'_> {
        let timestamp = self.next_ts as u32;
        if self.hold < self.max_hold {
            self.hold += 1;
        } else {
            self.next_ts += self.frame_ts;
        }
        if self.in_dtx {
            self.stats.silence += 1;
            return Playout::Silence(Silence {
                timestamp,
                dtx: true,
            });
        }
        self.stats.underruns += 1;
        self.stats.concealed += 1;
        Playout::Conceal(Conceal {
            timestamp,
            fec: None,
            inserted: false,
        })
    }
}

impl core::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("len", &self.len)
            .field("capacity", &self.slots.len())
            .field("target_delay", &self.target_delay())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
