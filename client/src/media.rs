//! The media session of a call: RTP and RTCP over SRTP with the adaptive
//! jitter buffer, sans-IO.
//!
//! ```text
//!  encoded frame -> send_frame -> RTP (+ padding) -> SRTP -> datagram out
//!  datagram in -> handle_datagram -> SRTP/SRTCP unprotect -> RTP -> jitter buffer
//!                                                         \-> RTCP: loss, jitter, RTT
//!  poll_playout (once per frame) -> frame / conceal (FEC or PLC) / silence -> decoder
//!  poll_transmit -> SRTCP compound (SR or RR, SDES CNAME) when due
//! ```
//!
//! # How to drive it
//!
//! A [`MediaSession`] does no I/O and never reads the clock: every call
//! takes `now`. The driver around it loops:
//!
//! 1. every frame period, encode one frame and pass it to
//!    [`MediaSession::send_frame`], then send the bytes written;
//! 2. give every media datagram that arrives (SRTP and SRTCP share the
//!    socket, RFC 5761) to [`MediaSession::handle_datagram`]; errors mean
//!    the datagram was dropped (forged, replayed, malformed) and are only
//!    counted;
//! 3. every frame period, call [`MediaSession::poll_playout`] and decode
//!    what it says;
//! 4. call [`MediaSession::poll_transmit`] until it returns `None`, sending
//!    what it writes, and sleep until [`MediaSession::poll_timeout`];
//! 5. at hang-up, send what [`MediaSession::write_bye`] writes.
//!
//! Nothing allocates per packet: SRTP works in caller buffers and the
//! session's own scratch buffer.

use std::time::{Duration, Instant};

use cryptic_audio::red::{self, RedError, Redundant};
use cryptic_dtls_srtp::handshake::SrtpKeys;
use cryptic_dtls_srtp::rtcp::{self, Compound, RtcpPacket};
use cryptic_dtls_srtp::rtp::{RtpHeader, RtpPacket};
use cryptic_dtls_srtp::srtp::{Config as SrtpConfig, SrtpContext, SRTCP_OVERHEAD, SRTP_OVERHEAD};
use cryptic_dtls_srtp::stats::{round_trip_time, NtpClock, ReceptionStats, SenderStats};
use cryptic_jitter::{Arrival, JitterBuffer, Packet, Playout};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The frame length is learnt from the call's first this many packets.
const FOLLOW_WITHIN: u64 = 8;

/// Largest datagram the session reads or writes.
pub const MAX_DATAGRAM: usize = 1500;

/// Settings of a [`MediaSession`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MediaConfig {
    /// Our SSRC (random per call).
    pub ssrc: u32,
    /// RTP payload type of Opus (dynamic; 111 by convention).
    pub payload_type: u8,
    /// RTP payload type of redundant audio (RFC 2198), which we always
    /// take; whether we send it is [`MediaSession::set_redundancy`]'s.
    pub red_payload_type: u8,
    /// Whether the peer offered redundant audio (else we never send it).
    pub peer_takes_red: bool,
    /// RTP clock rate (48 kHz for Opus, RFC 7587).
    pub clock_rate: u32,
    /// Samples per frame we send, at the clock rate (960 for 20 ms; see
    /// [`MediaSession::set_frame_samples`]). What we receive follows the
    /// peer's RTP timestamps (see [`MediaSession::playout_frame_samples`]).
    pub frame_samples: u32,
    /// Mean interval between RTCP reports; each is randomised to 0.5 to
    /// 1.5 times this (RFC 3550 section 6.3.1). Default 1 s: a two-party
    /// audio call's reports are a few hundred bytes a second.
    pub rtcp_interval: Duration,
    /// Pad every RTP payload with RTP padding up to a multiple of this many
    /// bytes, so that packet sizes say nothing about speech (SPEC security
    /// property 4). 0 turns padding off. Default 32.
    pub payload_bucket: usize,
    /// The CNAME sent in SDES.
    pub cname: String,
    /// SRTP settings (replay window, SRTCP encryption).
    pub srtp: SrtpConfig,
    /// Jitter buffer settings.
    pub jitter: cryptic_jitter::Config,
    /// Seed of the RTCP interval randomisation and the initial sequence
    /// number and timestamp.
    pub seed: u64,
}

impl MediaConfig {
    /// Defaults for 20 ms Opus frames with the given SSRC, CNAME and seed.
    pub fn new(ssrc: u32, cname: impl Into<String>, seed: u64) -> Self {
        let mut jitter = cryptic_jitter::Config::default();
        // The decoder rebuilds a lost frame from the next packet's FEC (the
        // encoder adds it once the peer reports loss): while losses come,
        // wait a frame longer for that packet.
        jitter.fec_wait = Duration::from_secs(5);
        MediaConfig {
            ssrc,
            payload_type: cryptic_audio::rtp::DEFAULT_PAYLOAD_TYPE,
            red_payload_type: red::RED_PAYLOAD_TYPE,
            peer_takes_red: false,
            clock_rate: cryptic_audio::rtp::RTP_CLOCK_RATE,
            frame_samples: cryptic_audio::FrameDuration::Ms20.samples() as u32,
            rtcp_interval: Duration::from_secs(1),
            payload_bucket: 32,
            cname: cname.into(),
            srtp: SrtpConfig::default(),
            jitter,
            seed,
        }
    }
}

/// Why a datagram was dropped or a frame could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaError {
    /// SRTP or SRTCP refused the datagram (forged, replayed, truncated,
    /// malformed), or refused to protect.
    Srtp(cryptic_dtls_srtp::Error),
    /// The decrypted packet did not parse as RTP or RTCP.
    Malformed(cryptic_dtls_srtp::Error),
    /// The jitter buffer refused the payload (too large).
    Jitter(cryptic_jitter::Error),
    /// A redundant-audio payload did not parse, or carried no Opus.
    Redundant(RedError),
    /// The caller's output buffer or the payload is too large for a
    /// datagram.
    TooLarge,
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::Srtp(e) => write!(f, "SRTP: {e}"),
            MediaError::Malformed(e) => write!(f, "malformed media packet: {e}"),
            MediaError::Jitter(e) => write!(f, "jitter buffer: {e}"),
            MediaError::Redundant(e) => write!(f, "{e}"),
            MediaError::TooLarge => f.write_str("media packet too large"),
        }
    }
}

impl std::error::Error for MediaError {}

/// What an accepted datagram was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// An RTP packet, and what the jitter buffer did with it.
    Media(Arrival),
    /// An RTCP compound (reports; statistics were updated).
    Control,
    /// The peer sent RTCP BYE: it is leaving the call.
    Bye,
}

/// Call quality figures, for the status line and the call history.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct MediaStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP payload bytes sent (padding included).
    pub bytes_sent: u64,
    /// RTP packets accepted.
    pub packets_received: u64,
    /// Fraction of the peer's packets we never received (0 to 1).
    pub loss_received: f64,
    /// Fraction of our packets the peer reported lost in its last report.
    pub loss_reported_by_peer: f64,
    /// Interarrival jitter of what we receive.
    pub jitter: Duration,
    /// Round-trip time from the last report about our stream.
    pub rtt: Option<Duration>,
    /// Datagrams dropped because SRTP refused them (forged, replayed,
    /// malformed).
    pub dropped: u64,
    /// The jitter buffer's current target delay.
    pub jitter_buffer_delay: Duration,
    /// Frames concealed so far (PLC or FEC), [`inserted`](Self::inserted)
    /// ones included.
    pub concealed: u64,
    /// Frames the jitter buffer added to grow its delay (concealment or
    /// silence standing for no missing frame).
    pub inserted: u64,
    /// Frames played so far.
    pub played: u64,
    /// Lost frames rebuilt from a later packet's copy in time to play.
    pub recovered: u64,
    /// Copies of earlier frames each packet we send carries now.
    pub copies_sent: usize,
    /// Reports from the peer about our stream so far (a new one means
    /// [`loss_reported_by_peer`](Self::loss_reported_by_peer) is fresh).
    pub peer_reports: u64,
}

/// The media half of a call. See the module docs for how to drive it.
pub struct MediaSession {
    config: MediaConfig,
    tx: SrtpContext,
    rx: SrtpContext,
    rng: StdRng,
    seq: u16,
    timestamp: u32,
    /// The RTP timestamp of the last frame sent and when it was sent, to
    /// fill in an SR's RTP timestamp.
    last_sent: Option<(u32, Instant)>,
    sent: SenderStats,
    bytes_sent: u64,
    reception: Option<ReceptionStats>,
    packets_received: u64,
    jitter: JitterBuffer,
    /// The last packet received at the start of the call (SSRC, sequence
    /// number, timestamp): the next in a row says how long its frames are.
    stream_start: Option<(u32, u16, u32)>,
    clock: NtpClock,
    origin: Instant,
    next_rtcp: Instant,
    rtt: Option<Duration>,
    peer_fraction_lost: u8,
    /// Reports from the peer about our stream so far.
    peer_reports: u64,
    /// Whether the next gap in what we receive brings the next report
    /// forward (see [`EARLY_REPORT`]).
    early_report_armed: bool,
    dropped: u64,
    scratch: Box<[u8; MAX_DATAGRAM]>,
    /// Copies of earlier frames each packet carries (0: plain Opus).
    redundancy: usize,
    /// The frames sent last, for the copies.
    sent_frames: SentFrames,
    /// Where a redundant payload is put together.
    red_scratch: Box<[u8; MAX_DATAGRAM]>,
}

/// How soon a report follows the first gap in what we receive since a
/// report said no loss, instead of the next regular report (0.5 to 1.5 s
/// away), so that the peer's encoder protects its frames sooner (copies or
/// FEC). At most one early report per regular one that saw no loss.
pub const EARLY_REPORT: Duration = Duration::from_millis(20);

/// Most copies of earlier frames a packet we send carries.
pub const MAX_REDUNDANCY: usize = 2;

/// The last [`MAX_REDUNDANCY`] frames sent (timestamp and payload), in
/// fixed buffers: a copy's length has 10 bits in its header.
struct SentFrames {
    frames: [(u32, usize); MAX_REDUNDANCY],
    data: Box<[[u8; red::MAX_COPY_LEN]; MAX_REDUNDANCY]>,
    count: usize,
    next: usize,
}

impl SentFrames {
    fn new() -> Self {
        SentFrames {
            frames: [(0, 0); MAX_REDUNDANCY],
            data: Box::new([[0; red::MAX_COPY_LEN]; MAX_REDUNDANCY]),
            count: 0,
            next: 0,
        }
    }

    fn remember(&mut self, timestamp: u32, payload: &[u8]) {
        if payload.len() > red::MAX_COPY_LEN {
            // Cannot be copied: forget the older ones too, so that no copy
            // skips over it.
            self.count = 0;
            return;
        }
        let i = self.next;
        self.data[i][..payload.len()].copy_from_slice(payload);
        self.frames[i] = (timestamp, payload.len());
        self.next = (i + 1) % MAX_REDUNDANCY;
        self.count = (self.count + 1).min(MAX_REDUNDANCY);
    }

    /// The frame sent at `timestamp`, if remembered.
    fn get(&self, timestamp: u32) -> Option<&[u8]> {
        (0..self.count)
            .map(|k| (self.next + MAX_REDUNDANCY - 1 - k) % MAX_REDUNDANCY)
            .find(|&i| self.frames[i].0 == timestamp)
            .map(|i| &self.data[i][..self.frames[i].1])
    }
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession")
            .field("ssrc", &self.config.ssrc)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn is_rtcp(datagram: &[u8]) -> bool {
    // RFC 5761 section 4: RTCP packet types 192..=223 sit where RTP has
    // marker + payload type; we never use payload types 64..=95.
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// A buffer that time-stretches (`jitter.time_stretch`) gets a dead band
/// and a start to match how the client stretches: whole quiet frames.
/// With fine stretching (10 ms frames to a speaker), a path whose delays spread
/// over at most this much (loopback, a LAN, a quiet internet path; a sound
/// device's capture jitter alone is 5 to 7 ms) is stretched in pauses by
/// just its excess, inside a quarter-frame band: the delay stays about
/// 4 ms above the target instead of anywhere in a band a frame wide (up
/// to 12 ms of 10 ms frames). Mouth to ear through devices with 10 ms
/// frames: 62-63 ms per run, against 61-69 ms without it. Not for a
/// file: a clean call into a WAV lost PESQ-WB with it (20 ms frames,
/// seeds 14 and 15 of tests/call-quality-beside-gstreamer.rs: 3.53
/// against 3.81; 10 ms frames, 5 seeds: 3.80 against 4.09).
pub(crate) const STEADY_JITTER: Duration = Duration::from_millis(10);

pub(crate) fn tune_for_stretch(jitter: &mut cryptic_jitter::Config) {
    if !jitter.time_stretch {
        return;
    }
    // The buffer's dead band with stretch is a quarter frame plus the
    // hysteresis: widen it to a whole frame plus 2 ms, since the audio
    // side shortens by a whole (quiet) frame. A narrow band made the
    // buffer ask on a fifth of the frames under scheduling jitter
    // (tests/call-quality-beside-gstreamer.rs).
    let frame = jitter.frame_duration();
    jitter.hysteresis = frame - frame / 4 + Duration::from_millis(2);
    // Start one frame deep, not two: the first word plays a frame sooner,
    // and a path with more jitter grows the buffer in the pause before it
    // (the warm-up is 300 ms), a doubled quiet frame at a time.
    jitter.start_delay = frame;
}

/// The jitter buffer plays frames as long as the peer sends them: the
/// first two packets in a row (among the call's first [`FOLLOW_WITHIN`])
/// say how far the timestamp steps (10 ms from a peer's microphone or
/// `--low-latency`, 20 ms otherwise), and the buffer is made again for that length before
/// the second is taken. A step of anything else, or a later change, is
/// left alone: a peer that mixes frame lengths gets its odd frames
/// concealed, nothing worse.
fn follow_frame_length(
    stream_start: &mut Option<(u32, u16, u32)>,
    buffer: &mut JitterBuffer,
    config: &mut cryptic_jitter::Config,
    received: u64,
    (ssrc, seq, timestamp): (u32, u16, u32),
) {
    if received > FOLLOW_WITHIN {
        return;
    }
    let previous = stream_start.replace((ssrc, seq, timestamp));
    let Some((last_ssrc, last_seq, last_ts)) = previous else {
        return;
    };
    if last_ssrc != ssrc || seq != last_seq.wrapping_add(1) {
        return;
    }
    let step = timestamp.wrapping_sub(last_ts);
    let current = config.frame_samples;
    if step == current || cryptic_audio::FrameDuration::from_samples(step).is_none() {
        return;
    }
    let mut wanted = config.clone();
    wanted.frame_samples = step;
    tune_for_stretch(&mut wanted);
    match JitterBuffer::new(wanted.clone()) {
        Ok(b) => {
            tracing::debug!("the peer sends frames of {step} samples");
            *buffer = b;
            *config = wanted;
        }
        Err(e) => tracing::debug!("frames of {step} samples refused: {e}"),
    }
}

impl MediaSession {
    /// A session sending with `keys.local` and receiving with
    /// `keys.remote`. `clock` maps `now` to NTP time for RTCP.
    pub fn new(
        keys: &SrtpKeys,
        config: MediaConfig,
        clock: NtpClock,
        now: Instant,
    ) -> Result<Self, MediaError> {
        let (tx, rx) = keys.contexts(config.srtp).map_err(MediaError::Srtp)?;
        let jitter = JitterBuffer::new(config.jitter.clone()).map_err(MediaError::Jitter)?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        // Random initial sequence number and timestamp (RFC 3550 5.1),
        // kept low enough that the rollover counter estimation at the
        // receiver starts in the first half of the sequence space.
        let seq = rng.random_range(0..0x4000);
        let timestamp = rng.random();
        let mut session = MediaSession {
            tx,
            rx,
            seq,
            timestamp,
            last_sent: None,
            sent: SenderStats::default(),
            bytes_sent: 0,
            reception: None,
            packets_received: 0,
            jitter,
            stream_start: None,
            clock,
            origin: now,
            next_rtcp: now,
            rtt: None,
            peer_fraction_lost: 0,
            peer_reports: 0,
            early_report_armed: true,
            dropped: 0,
            scratch: Box::new([0u8; MAX_DATAGRAM]),
            redundancy: 0,
            sent_frames: SentFrames::new(),
            red_scratch: Box::new([0u8; MAX_DATAGRAM]),
            rng,
            config,
        };
        session.next_rtcp = now + session.rtcp_delay();
        Ok(session)
    }

    fn rtcp_delay(&mut self) -> Duration {
        self.config
            .rtcp_interval
            .mul_f64(self.rng.random_range(0.5..1.5))
    }

    /// Protects one encoded frame as the next RTP packet into `out` and
    /// returns the datagram length. `marker` flags the first frame after
    /// silence.
    pub fn send_frame(
        &mut self,
        now: Instant,
        payload: &[u8],
        marker: bool,
        out: &mut [u8],
    ) -> Result<usize, MediaError> {
        let (payload_type, red_len) = match self.write_redundant(payload) {
            Some(n) => (self.config.red_payload_type, n),
            None => (self.config.payload_type, 0),
        };
        self.sent_frames.remember(self.timestamp, payload);
        let payload = if red_len > 0 {
            &self.red_scratch[..red_len]
        } else {
            payload
        };
        let bucket = self.config.payload_bucket;
        let padding = if bucket > 1 {
            (payload.len().next_multiple_of(bucket) - payload.len()).min(255)
        } else {
            0
        };
        let mut header = RtpHeader::new(payload_type, self.seq, self.timestamp, self.config.ssrc);
        header.marker = marker;
        let len = header.len() + payload.len() + padding;
        if len + SRTP_OVERHEAD > out.len() || len + SRTP_OVERHEAD > MAX_DATAGRAM {
            return Err(MediaError::TooLarge);
        }
        // The padding count is at most 255, checked above.
        header
            .write_packet(payload, padding as u8, out)
            .map_err(MediaError::Malformed)?;
        let n = self
            .tx
            .protect_rtp_in_place(out, len)
            .map_err(MediaError::Srtp)?;
        self.sent.on_sent(payload.len() + padding);
        self.bytes_sent += (payload.len() + padding) as u64;
        self.last_sent = Some((self.timestamp, now));
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.config.frame_samples);
        Ok(n)
    }

    /// With redundancy on, writes `payload` with copies of the frames sent
    /// just before it (those remembered, oldest first) into the scratch
    /// buffer and returns the length.
    fn write_redundant(&mut self, payload: &[u8]) -> Option<usize> {
        if self.redundancy == 0 {
            return None;
        }
        let step = self.config.frame_samples;
        let mut copies = [red::Block {
            payload_type: self.config.payload_type,
            offset: 0,
            data: &[],
        }; MAX_REDUNDANCY];
        let mut count = 0;
        for behind in (1..=self.redundancy as u32).rev() {
            let offset = behind * step;
            let at = self.timestamp.wrapping_sub(offset);
            if let Some(data) = self.sent_frames.get(at) {
                copies[count] = red::Block {
                    payload_type: self.config.payload_type,
                    offset,
                    data,
                };
                count += 1;
            }
        }
        red::write(
            &copies[..count],
            self.config.payload_type,
            payload,
            &mut self.red_scratch[..],
        )
    }

    /// Sends up to [`MAX_REDUNDANCY`] copies of the frames before each
    /// frame from the next one on (0: none). Only for a peer that offered
    /// redundant audio.
    pub fn set_redundancy(&mut self, copies: usize) {
        if self.config.peer_takes_red {
            self.redundancy = copies.min(MAX_REDUNDANCY);
        }
    }

    /// Whether the peer offered redundant audio.
    pub fn peer_takes_red(&self) -> bool {
        self.config.peer_takes_red
    }

    /// Takes one datagram that arrived at `now` on the media path.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Incoming, MediaError> {
        if datagram.len() > MAX_DATAGRAM {
            self.dropped += 1;
            return Err(MediaError::TooLarge);
        }
        let result = if is_rtcp(datagram) {
            self.handle_rtcp(now, datagram)
        } else {
            self.handle_rtp(now, datagram)
        };
        if result.is_err() {
            self.dropped += 1;
        }
        result
    }

    fn handle_rtp(&mut self, now: Instant, datagram: &[u8]) -> Result<Incoming, MediaError> {
        let n = self
            .rx
            .unprotect_rtp(datagram, &mut self.scratch[..])
            .map_err(MediaError::Srtp)?;
        let packet = RtpPacket::parse(&self.scratch[..n]).map_err(MediaError::Malformed)?;
        let ssrc = packet.ssrc();
        let stats = match &mut self.reception {
            Some(s) if s.ssrc() == ssrc => s,
            slot => slot.insert(ReceptionStats::new(
                ssrc,
                self.config.clock_rate,
                self.origin,
            )),
        };
        let skipped = stats.on_packet(packet.sequence_number(), packet.timestamp(), now);
        self.packets_received += 1;
        if skipped > 0 && std::mem::take(&mut self.early_report_armed) {
            self.next_rtcp = self.next_rtcp.min(now + EARLY_REPORT);
        }
        follow_frame_length(
            &mut self.stream_start,
            &mut self.jitter,
            &mut self.config.jitter,
            self.packets_received,
            (ssrc, packet.sequence_number(), packet.timestamp()),
        );
        let (seq, timestamp) = (packet.sequence_number(), packet.timestamp());
        if packet.payload_type() != self.config.red_payload_type {
            let arrival = self
                .jitter
                .handle_packet(now, Packet::new(ssrc, seq, timestamp, packet.payload()))
                .map_err(MediaError::Jitter)?;
            return Ok(Incoming::Media(arrival));
        }
        let red = Redundant::parse(packet.payload()).map_err(MediaError::Redundant)?;
        let opus = self.config.payload_type;
        if red.primary.payload_type != opus {
            return Err(MediaError::Redundant(RedError::Foreign));
        }
        let arrival = self
            .jitter
            .handle_packet(now, Packet::new(ssrc, seq, timestamp, red.primary.data))
            .map_err(MediaError::Jitter)?;
        let step = self.config.jitter.frame_samples.max(1);
        for copy in red.copies() {
            // A copy stands for a whole frame some frames back; anything
            // else (another codec, an offset between frames) is skipped.
            let behind = copy.offset / step;
            if copy.payload_type != opus
                || copy.offset % step != 0
                || behind == 0
                || behind > red::MAX_COPIES as u32
            {
                continue;
            }
            let behind = behind as u16;
            let copy = Packet::new(
                ssrc,
                seq.wrapping_sub(behind),
                timestamp.wrapping_sub(copy.offset),
                copy.data,
            );
            if let Err(e) = self.jitter.handle_copy(now, copy, behind) {
                tracing::debug!("copy of an earlier frame dropped: {e}");
            }
        }
        Ok(Incoming::Media(arrival))
    }

    fn handle_rtcp(&mut self, now: Instant, datagram: &[u8]) -> Result<Incoming, MediaError> {
        let n = self
            .rx
            .unprotect_rtcp(datagram, &mut self.scratch[..])
            .map_err(MediaError::Srtp)?;
        let compound = Compound::parse(&self.scratch[..n]).map_err(MediaError::Malformed)?;
        let mut bye = false;
        let arrival_mid32 = self.clock.ntp_mid32(now);
        for packet in compound.packets() {
            let blocks = match packet {
                RtcpPacket::SenderReport(sr) => {
                    if let Some(stats) = &mut self.reception {
                        if stats.ssrc() == sr.info.ssrc {
                            stats.on_sender_report(&sr.info, now);
                        }
                    }
                    Some(sr.reports().collect::<heapless_blocks::Blocks>())
                }
                RtcpPacket::ReceiverReport(rr) => Some(rr.reports().collect()),
                RtcpPacket::Goodbye(_) => {
                    bye = true;
                    None
                }
                _ => None,
            };
            for block in blocks.iter().flat_map(|b| b.iter()) {
                if block.ssrc == self.config.ssrc {
                    if let Some(rtt) = round_trip_time(block, arrival_mid32) {
                        self.rtt = Some(rtt);
                    }
                    self.peer_fraction_lost = block.fraction_lost;
                    self.peer_reports += 1;
                }
            }
        }
        Ok(if bye {
            Incoming::Bye
        } else {
            Incoming::Control
        })
    }

    /// Sends frames of `samples` (480 for 10 ms, 960 for 20 ms) from now
    /// on: the RTP timestamp steps by this much per packet.
    pub fn set_frame_samples(&mut self, samples: u32) {
        if samples > 0 {
            self.config.frame_samples = samples;
        }
    }

    /// Samples per frame of what we receive: each
    /// [`poll_playout`](Self::poll_playout) plays this much.
    pub fn playout_frame_samples(&self) -> u32 {
        self.config.jitter.frame_samples
    }

    /// The packets received so far were not timed by the network (the
    /// receiver could not read for a while): the jitter buffer keeps them
    /// but forgets the delays they showed
    /// ([`JitterBuffer::forget_delays`]).
    pub fn forget_receive_delays(&mut self) {
        self.jitter.forget_delays();
    }

    /// What to play for the next frame period; call once per period.
    pub fn poll_playout(&mut self, now: Instant) -> Playout<'_> {
        self.jitter.poll(now)
    }

    /// When the session next needs [`MediaSession::poll_transmit`].
    pub fn poll_timeout(&self) -> Instant {
        self.next_rtcp
    }

    fn write_report(&mut self, now: Instant, out: &mut [u8]) -> Result<usize, MediaError> {
        let ssrc = self.config.ssrc;
        let block = self.reception.as_mut().map(|r| r.report_block(now));
        if block.as_ref().is_some_and(|b| b.fraction_lost == 0) {
            self.early_report_armed = true;
        }
        let blocks = block.as_slice();
        let mut n = match self.last_sent {
            Some((ts, at)) => {
                let elapsed = now.saturating_duration_since(at);
                let units = (elapsed.as_nanos() * u128::from(self.config.clock_rate)
                    / 1_000_000_000) as u32;
                let info = self
                    .sent
                    .sender_info(ssrc, &self.clock, now, ts.wrapping_add(units));
                rtcp::write_sender_report(out, &info, blocks)
            }
            None => rtcp::write_receiver_report(out, ssrc, blocks),
        }
        .map_err(MediaError::Malformed)?;
        let cname = self.config.cname.as_bytes();
        n += rtcp::write_sdes(
            &mut out[n..],
            ssrc,
            &[(rtcp::SDES_CNAME, &cname[..cname.len().min(255)])],
        )
        .map_err(MediaError::Malformed)?;
        Ok(n)
    }

    /// Writes an SRTCP compound into `out` when a report is due and returns
    /// its length; `None` when nothing is due.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Option<Result<usize, MediaError>> {
        if now < self.next_rtcp {
            return None;
        }
        self.next_rtcp = now + self.rtcp_delay();
        Some(self.protect_report(now, out, false))
    }

    fn protect_report(
        &mut self,
        now: Instant,
        out: &mut [u8],
        bye: bool,
    ) -> Result<usize, MediaError> {
        let limit = out.len().min(MAX_DATAGRAM);
        if limit < SRTCP_OVERHEAD {
            return Err(MediaError::TooLarge);
        }
        let space = limit - SRTCP_OVERHEAD;
        let mut n = self.write_report(now, &mut out[..space])?;
        if bye {
            n += rtcp::write_bye(&mut out[n..space], &[self.config.ssrc], Some(b"hangup"))
                .map_err(MediaError::Malformed)?;
        }
        self.tx
            .protect_rtcp_in_place(&mut out[..limit], n)
            .map_err(MediaError::Srtp)
    }

    /// Writes a final SRTCP compound with BYE, to send at hang-up.
    pub fn write_bye(&mut self, now: Instant, out: &mut [u8]) -> Result<usize, MediaError> {
        self.protect_report(now, out, true)
    }

    /// Quality figures so far.
    pub fn stats(&self) -> MediaStats {
        let summary = self.reception.as_ref().map(|r| r.summary());
        let jitter = self.jitter.stats();
        MediaStats {
            packets_sent: u64::from(self.sent.packets),
            bytes_sent: self.bytes_sent,
            packets_received: self.packets_received,
            loss_received: summary.map_or(0.0, |s| s.loss),
            loss_reported_by_peer: f64::from(self.peer_fraction_lost) / 256.0,
            jitter: summary.map_or(Duration::ZERO, |s| s.jitter),
            rtt: self.rtt,
            dropped: self.dropped,
            jitter_buffer_delay: jitter.target_delay,
            concealed: jitter.concealed,
            inserted: jitter.inserted,
            played: jitter.played,
            recovered: jitter.recovered,
            copies_sent: self.redundancy,
            peer_reports: self.peer_reports,
        }
    }
}

/// Report blocks of one RTCP packet, collected without a heap allocation
/// for the usual zero or one block.
mod heapless_blocks {
    use cryptic_dtls_srtp::rtcp::ReportBlock;

    /// Up to 31 report blocks (the RTCP count field's limit).
    pub(super) struct Blocks {
        items: [ReportBlock; 31],
        len: usize,
    }

    impl Blocks {
        pub(super) fn iter(&self) -> impl Iterator<Item = &ReportBlock> {
            self.items[..self.len].iter()
        }
    }

    impl FromIterator<ReportBlock> for Blocks {
        fn from_iter<I: IntoIterator<Item = ReportBlock>>(iter: I) -> Self {
            let mut b = Blocks {
                items: [ReportBlock::default(); 31],
                len: 0,
            };
            for block in iter.into_iter().take(31) {
                b.items[b.len] = block;
                b.len += 1;
            }
            b
        }
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        // What the play-out did over the call, for `-vv`.
        tracing::debug!(
            "jitter buffer at the end: {:?}, target {:?}",
            self.jitter.stats(),
            self.jitter.target_delay()
        );
    }
}
