//! RTP reception and sending statistics for RTCP reports (RFC 3550
//! section 6.4 and appendices A.1, A.3 and A.8): loss, interarrival jitter
//! and round-trip time.
//!
//! Sans-IO like the rest of the crate: arrival times come in as
//! `Instant`s, and the one wall-clock reading RTCP needs (NTP time) comes
//! from an [`NtpClock`] the driver makes once at start-up.

use std::time::{Duration, Instant};

use crate::rtcp::{ReportBlock, SenderInfo};

/// Maps the monotonic clock onto NTP time (seconds since 1900 in the high
/// 32 bits, the fraction in the low 32), from one reading taken at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpClock {
    origin: Instant,
    origin_ntp: u64,
}

/// Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl NtpClock {
    /// A clock on which `origin` is NTP time `origin_ntp`.
    pub fn new(origin: Instant, origin_ntp: u64) -> Self {
        NtpClock { origin, origin_ntp }
    }

    /// A clock from one reading of the system clock (drivers only).
    pub fn from_system_time(origin: Instant, since_unix_epoch: Duration) -> Self {
        let secs = since_unix_epoch.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        NtpClock::new(origin, (secs << 32) | frac)
    }

    /// NTP time at `now`.
    pub fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.origin);
        let frac = (u128::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        self.origin_ntp
            .wrapping_add(d.as_secs() << 32)
            .wrapping_add(frac as u64)
    }

    /// The middle 32 bits of the NTP time at `now`, as LSR and RTT use.
    pub fn ntp_mid32(&self, now: Instant) -> u32 {
        (self.ntp(now) >> 16) as u32
    }
}

/// Round-trip time from a report block about our stream received at NTP
/// middle-32 time `arrival_mid32` (RFC 3550 section 6.4.1): `A - LSR -
/// DLSR`, or `None` when the block carries no LSR or the result is
/// negative (clock skew or a bogus report).
pub fn round_trip_time(block: &ReportBlock, arrival_mid32: u32) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = i64::from(arrival_mid32.wrapping_sub(block.last_sr) as i32)
        - i64::from(block.delay_since_last_sr);
    if rtt < 0 {
        return None;
    }
    // Units of 1/65536 s.
    Some(Duration::from_nanos((rtt as u64 * 1_000_000_000) >> 16))
}

/// What a sender counts for its SRs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

impl SenderStats {
    /// Counts one sent packet with `payload_len` payload octets.
    pub fn on_sent(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }

    /// The sender information of an SR sent at `now` whose RTP timestamp
    /// for that instant is `rtp_timestamp`.
    pub fn sender_info(
        &self,
        ssrc: u32,
        clock: &NtpClock,
        now: Instant,
        rtp_timestamp: u32,
    ) -> SenderInfo {
        SenderInfo {
            ssrc,
            ntp_timestamp: clock.ntp(now),
            rtp_timestamp,
            packet_count: self.packets,
            octet_count: self.octets,
        }
    }
}

/// Reception statistics of one remote source (RFC 3550 appendix A.1, A.3
/// and A.8), fed with every packet that authenticated.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    clock_rate: u32,
    origin: Instant,
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    last_transit: Option<i64>,
    /// Jitter in RTP units, scaled by 16 as appendix A.8 suggests.
    jitter_q4: u64,
    last_sr: Option<(u32, Instant)>,
}

/// A summary of reception for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceptionSummary {
    /// Packets expected from the sequence numbers seen.
    pub expected: u64,
    /// Packets received (duplicates included).
    pub received: u64,
    /// Fraction of expected packets lost so far (0 to 1).
    pub loss: f64,
    /// Interarrival jitter.
    pub jitter: Duration,
}

impl ReceptionStats {
    /// Statistics for `ssrc` whose RTP clock runs at `clock_rate` Hz;
    /// `origin` is any instant before the first arrival.
    pub fn new(ssrc: u32, clock_rate: u32, origin: Instant) -> Self {
        ReceptionStats {
            ssrc,
            clock_rate: clock_rate.max(1),
            origin,
            started: false,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter_q4: 0,
            last_sr: None,
        }
    }

    /// Counts a packet with sequence number `seq` and RTP timestamp `ts`
    /// that arrived at `arrival`. Returns how many sequence numbers it
    /// skipped past the highest one so far (0 for the first packet, the
    /// next in order, a repeat or a late one).
    pub fn on_packet(&mut self, seq: u16, ts: u32, arrival: Instant) -> u16 {
        let mut skipped = 0;
        if !self.started {
            self.started = true;
            self.base_seq = u32::from(seq);
            self.max_seq = seq;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
                skipped = delta - 1;
            }
        }
        self.received = self.received.wrapping_add(1);

        // Transit in RTP units; only differences matter (appendix A.8).
        let arrival_units = (arrival.saturating_duration_since(self.origin).as_nanos()
            * u128::from(self.clock_rate)
            / 1_000_000_000) as i64;
        let transit = arrival_units - i64::from(ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            let j = self.jitter_q4 as i64 + d as i64 - ((self.jitter_q4 + 8) >> 4) as i64;
            self.jitter_q4 = j.max(0) as u64;
        }
        self.last_transit = Some(transit);
        skipped
    }

    /// The source these statistics are about.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Notes an SR from this source received at `now`, for LSR and DLSR.
    pub fn on_sender_report(&mut self, info: &SenderInfo, now: Instant) {
        self.last_sr = Some(((info.ntp_timestamp >> 16) as u32, now));
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        if !self.started {
            return 0;
        }
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// The interarrival jitter.
    pub fn jitter(&self) -> Duration {
        let units = self.jitter_q4 >> 4;
        Duration::from_nanos(units * 1_000_000_000 / u64::from(self.clock_rate))
    }

    /// Totals so far.
    pub fn summary(&self) -> ReceptionSummary {
        let expected = u64::from(self.expected());
        let received = u64::from(self.received);
        let lost = expected.saturating_sub(received);
        ReceptionSummary {
            expected,
            received,
            loss: if expected == 0 {
                0.0
            } else {
                lost as f64 / expected as f64
            },
            jitter: self.jitter(),
        }
    }

    /// The report block to send at `now`, and the start of a new interval
    /// for the fraction lost.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let lost_total = i64::from(expected) - i64::from(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let d = now.saturating_duration_since(at);
                let dlsr = (d.as_nanos() << 16) / 1_000_000_000;
                (lsr, dlsr.min(u128::from(u32::MAX)) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost_total.clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq: self.extended_max(),
            jitter: (self.jitter_q4 >> 4).min(u64::from(u32::MAX)) as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_across_sequence_wrap() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(1, 48_000, t0);
        let mut ts = 0u32;
        let mut seq = 65_500u16;
        for i in 0..100 {
            if i % 10 != 3 {
                s.on_packet(seq, ts, t0 + Duration::from_millis(20 * i));
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
        let block = s.report_block(t0 + Duration::from_secs(2));
        assert_eq!(block.cumulative_lost, 10);
        assert_eq!(
            block.extended_highest_seq,
            (1 << 16) + u32::from(seq.wrapping_sub(1))
        );
        assert_eq!(block.fraction_lost, (10 * 256 / 100) as u8);
        assert_eq!(block.jitter, 0, "perfectly paced packets have no jitter");
        // A new interval with no loss.
        for _ in 0..10 {
            s.on_packet(seq, ts, t0 + Duration::from_secs(3));
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
        assert_eq!(s.report_block(t0 + Duration::from_secs(3)).fraction_lost, 0);
        assert!((s.summary().loss - 10.0 / 110.0).abs() < 1e-9);
    }

    #[test]
    fn a_packet_says_how_many_it_skipped() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(1, 48_000, t0);
        assert_eq!(s.on_packet(65_534, 0, t0), 0, "the first");
        assert_eq!(s.on_packet(65_535, 960, t0), 0, "the next");
        assert_eq!(s.on_packet(2, 3 * 960, t0), 2, "across the wrap");
        assert_eq!(s.on_packet(1, 2 * 960, t0), 0, "a late one");
        assert_eq!(s.on_packet(2, 3 * 960, t0), 0, "a repeat");
    }

    #[test]
    fn jitter_follows_alternating_delay() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(1, 48_000, t0);
        for i in 0..2000u32 {
            // Every other packet 10 ms late: |D| = 480 units each time.
            let late = if i % 2 == 0 { 0 } else { 10 };
            s.on_packet(
                i as u16,
                i * 960,
                t0 + Duration::from_millis(u64::from(20 * i + late)),
            );
        }
        let j = s.jitter().as_secs_f64() * 1000.0;
        assert!((9.0..=10.5).contains(&j), "jitter {j} ms");
    }

    #[test]
    fn round_trip_time_comes_from_lsr_and_dlsr() {
        let t0 = Instant::now();
        let clock = NtpClock::new(t0, 0x1234_5678_0000_0000);
        let mut remote = ReceptionStats::new(9, 48_000, t0);
        remote.on_packet(1, 0, t0);
        // We send an SR at t0 + 1 s; it arrives 40 ms later; the peer
        // answers 100 ms after that; the answer takes 40 ms back.
        let sr = SenderStats::default().sender_info(9, &clock, t0 + Duration::from_secs(1), 0);
        remote.on_sender_report(&sr, t0 + Duration::from_millis(1040));
        let block = remote.report_block(t0 + Duration::from_millis(1140));
        let rtt = round_trip_time(&block, clock.ntp_mid32(t0 + Duration::from_millis(1180)))
            .expect("an LSR is present");
        assert!((rtt.as_secs_f64() * 1000.0 - 80.0).abs() < 0.1, "{rtt:?}");
    }

    #[test]
    fn ntp_time_from_the_system_clock_has_the_1900_epoch() {
        let t0 = Instant::now();
        let c = NtpClock::from_system_time(t0, Duration::from_secs(1));
        assert_eq!(c.ntp(t0) >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(
            c.ntp(t0 + Duration::from_millis(500)) & 0xffff_ffff,
            1 << 31
        );
    }
}
