//! The encoder's settings from the path's quality, sans-IO: the peer's
//! receiver reports (loss of our stream, round-trip time) in, the bitrate,
//! in-band FEC and the expected loss out.
//!
//! - **Expected loss** is the mean of the peer's reports over the last
//!   [`FEC_HOLD`], rounded, and at least 1 % while FEC is on: Opus spends
//!   bits on redundancy in proportion, and codes none at all for a planned
//!   loss of 0 (libopus's `decide_fec`). A single report covers about a
//!   second; under burst loss most seconds lose nothing and the next one
//!   loses a burst, so following each report turned the redundancy off
//!   just before the bursts it was for (Gilbert-Elliott path, bob's
//!   encoder: planned loss 3, 0, 4, 15, 0, 3, 7, 5, 7 % in one call;
//!   client/tests/call-quality-beside-gstreamer.rs).
//! - **FEC** is on while loss was seen in the last [`FEC_HOLD`], off on a
//!   clean path (the redundancy costs bits of the primary encoding).
//! - **Copies** (redundant audio, RFC 2198: each packet carries the
//!   frames sent just before it, [`crate::red`]) take FEC's place while
//!   loss is seen, when the peer takes them ([`RateControl::allow_copies`]):
//!   they rebuild every loss of up to two packets in a row exactly, where
//!   Opus's FEC rebuilds one, coarsely, and at 10 ms frames none at all.
//!   Whole call, 5 seeds, PESQ-WB (client/tests/call-quality-beside-gstreamer.rs):
//!   5 % random loss, 3.55 with two copies against 2.66 with FEC (20 ms
//!   frames, 32 kbit/s) and 3.71 against 3.02 (10 ms, 48 kbit/s);
//!   Gilbert-Elliott bursts 3.09 against 2.51 and 3.19 against 2.47-2.76.
//!   They cost bandwidth, not speech bits: with two copies the packets
//!   carry three frames (about 2.2 times the bytes on the wire), so the
//!   step up for a lossy link is not taken.
//! - A report that comes within [`SHORTEST_JUDGED`] of the one before (the
//!   peer reports a first loss at once) turns the protection on and
//!   nothing else: over a few packets one loss looked like 20 % and
//!   stepped the bitrate down (10 ms frames, 5 % random loss: 3.16 with
//!   that step, 3.71 without).
//! - **Bitrate** steps along [`LADDER`]: one step down at once when the path
//!   is bad (loss over 10 % or RTT over 500 ms, at most once per
//!   [`STEP_DOWN_GAP`]), one step up after [`STEP_UP_AFTER`] of a good path
//!   (loss under 2 %, RTT under 250 ms). A lossy path with a short RTT
//!   (2 to 10 % loss, RTT under 250 ms) is taken for a lossy link, not a
//!   congested one: one step up at once (at most once per
//!   [`STEP_DOWN_GAP`]), so that FEC's redundancy does not come out of the
//!   speech's bits (5 % random loss, constant bitrate with FEC, PESQ-WB on
//!   four speech samples: 2.91 at 32 kbit/s, 3.30 at 40;
//!   `audio/examples/opus_quality.rs`). Each step is still constant
//!   bitrate, so packet sizes follow the path's quality, never speech.
//! - **10 ms frames** spend half as much again on every step
//!   ([`RateControl::for_frame`]: 24 to 60 kbit/s): at the same bitrate
//!   they score far below 20 ms frames (PESQ-WB 3.06 against 3.70 at
//!   32 kbit/s), at 1.5 times it about the same (3.72 at 48 kbit/s;
//!   `audio/quality/encoder-gap.sh`). A microphone sends them by default,
//!   for about 20 ms less mouth to ear through devices.

use std::time::{Duration, Instant};

use crate::FrameDuration;

/// The bitrates the controller steps between, bits per second.
pub const LADDER: [u32; 4] = [16_000, 24_000, 32_000, 40_000];
/// FEC stays on this long after the last report of loss.
pub const FEC_HOLD: Duration = Duration::from_secs(10);
/// A good path for this long earns one step up.
pub const STEP_UP_AFTER: Duration = Duration::from_secs(10);
/// Steps down are at least this far apart (a report lags the change).
pub const STEP_DOWN_GAP: Duration = Duration::from_secs(2);

/// A report that comes sooner than this after the one before (or is the
/// first) covers too few packets to judge the path by (the receiver sends
/// one at once after a first loss, when one lost in five is 20 %): it turns
/// the protection on, and changes nothing else.
pub const SHORTEST_JUDGED: Duration = Duration::from_millis(400);

/// Reports remembered for the expected loss (one a second is the usual
/// rate; more within [`FEC_HOLD`] shorten the window).
const REPORTS: usize = 16;

/// What the encoder should use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Bits per second (constant bitrate).
    pub bitrate: u32,
    /// In-band forward error correction.
    pub fec: bool,
    /// The loss Opus should expect, percent.
    pub expected_loss_percent: u8,
    /// Copies of the frames before it each packet carries (0: none).
    pub copies: u8,
}

/// The controller (see the module docs).
#[derive(Clone, Debug)]
pub struct RateControl {
    step: usize,
    /// Halves of a [`LADDER`] bitrate spent per step: 2 for 20 ms frames,
    /// 3 for 10 ms.
    halves: u32,
    now: RateDecision,
    last_loss: Option<Instant>,
    good_since: Option<Instant>,
    last_down: Option<Instant>,
    /// Recent reports (time, loss), oldest overwritten first.
    reports: [Option<(Instant, f64)>; REPORTS],
    next_report: usize,
    /// Copies sent while loss is seen (0: the peer takes none).
    copies_allowed: u8,
    /// When the last report came.
    last_report: Option<Instant>,
}

impl RateControl {
    /// A controller for 20 ms frames starting at the ladder step nearest
    /// `bitrate`, FEC off.
    pub fn new(bitrate: u32) -> Self {
        Self::for_frame(bitrate, FrameDuration::Ms20)
    }

    /// A controller for frames of `frame` starting at the ladder step
    /// nearest `bitrate` (a 20 ms frame's bitrate: 10 ms frames spend 1.5
    /// times it on every step, for about the same quality), FEC off.
    pub fn for_frame(bitrate: u32, frame: FrameDuration) -> Self {
        let halves = match frame {
            FrameDuration::Ms10 => 3,
            FrameDuration::Ms20 => 2,
        };
        let step = LADDER
            .iter()
            .enumerate()
            .min_by_key(|(_, &b)| b.abs_diff(bitrate))
            .map_or(1, |(i, _)| i);
        Self {
            step,
            halves,
            now: RateDecision {
                bitrate: LADDER[step] * halves / 2,
                fec: false,
                expected_loss_percent: 0,
                copies: 0,
            },
            last_loss: None,
            good_since: None,
            last_down: None,
            reports: [None; REPORTS],
            next_report: 0,
            copies_allowed: 0,
            last_report: None,
        }
    }

    /// While loss is seen, send `copies` copies of the frames before each
    /// frame instead of Opus's FEC (0: FEC; the peer takes no copies).
    /// Takes effect at the next report.
    pub fn allow_copies(&mut self, copies: u8) {
        self.copies_allowed = copies;
    }

    /// Mean loss of the reports within [`FEC_HOLD`] of `now`.
    fn recent_loss(&self, now: Instant) -> f64 {
        let (sum, n) = self
            .reports
            .iter()
            .flatten()
            .filter(|(t, _)| now.saturating_duration_since(*t) < FEC_HOLD)
            .fold((0.0, 0u32), |(sum, n), (_, loss)| (sum + loss, n + 1));
        if n == 0 {
            0.0
        } else {
            sum / f64::from(n)
        }
    }

    /// The settings now.
    pub fn decision(&self) -> RateDecision {
        self.now
    }

    /// A report from the peer at `now`: the fraction of our packets it lost
    /// (0 to 1) and the round-trip time if known. Returns the new settings
    /// when they changed.
    pub fn on_report(
        &mut self,
        now: Instant,
        loss: f64,
        rtt: Option<Duration>,
    ) -> Option<RateDecision> {
        let loss = if loss.is_finite() {
            loss.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if (loss * 100.0).round() >= 1.0 {
            self.last_loss = Some(now);
        }
        let previous = self.last_report.replace(now);
        let judged = previous.is_some_and(|t| now.saturating_duration_since(t) >= SHORTEST_JUDGED);
        if !judged {
            return self.decide(now);
        }
        self.reports[self.next_report] = Some((now, loss));
        self.next_report = (self.next_report + 1) % REPORTS;
        let rtt = rtt.unwrap_or(Duration::ZERO);
        let bad = loss > 0.10 || rtt > Duration::from_millis(500);
        let good = loss < 0.02 && rtt < Duration::from_millis(250);
        // With copies the redundancy is not paid for with speech bits, and
        // a step up would be paid three times over.
        let lossy_link =
            !bad && !good && rtt < Duration::from_millis(250) && self.copies_allowed == 0;
        if lossy_link {
            self.good_since = None;
            let gap_ok = self
                .last_down
                .is_none_or(|t| now.saturating_duration_since(t) >= STEP_DOWN_GAP);
            if gap_ok && self.step + 1 < LADDER.len() {
                self.step += 1;
                self.last_down = Some(now);
            }
        } else if bad {
            self.good_since = None;
            let gap_ok = self
                .last_down
                .is_none_or(|t| now.saturating_duration_since(t) >= STEP_DOWN_GAP);
            if gap_ok && self.step > 0 {
                self.step -= 1;
                self.last_down = Some(now);
            }
        } else if good {
            let since = *self.good_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= STEP_UP_AFTER && self.step + 1 < LADDER.len()
            {
                self.step += 1;
                self.good_since = Some(now);
            }
        } else {
            self.good_since = None;
        }
        self.decide(now)
    }

    /// The settings from the steps taken and the loss seen, when they
    /// changed.
    fn decide(&mut self, now: Instant) -> Option<RateDecision> {
        let lossy = self
            .last_loss
            .is_some_and(|t| now.saturating_duration_since(t) < FEC_HOLD);
        let copies = if lossy { self.copies_allowed } else { 0 };
        let percent = (self.recent_loss(now) * 100.0).round().min(30.0) as u8;
        let next = RateDecision {
            bitrate: LADDER[self.step] * self.halves / 2,
            fec: lossy && copies == 0,
            expected_loss_percent: if lossy { percent.max(1) } else { percent },
            copies,
        };
        (next != self.now).then(|| {
            self.now = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &mut RateControl, start: Instant, secs: u64, loss: f64, rtt_ms: u64) -> Instant {
        let mut t = start;
        for _ in 0..secs {
            t += Duration::from_secs(1);
            c.on_report(t, loss, Some(Duration::from_millis(rtt_ms)));
        }
        t
    }

    #[test]
    fn ten_ms_frames_spend_half_as_much_again_on_every_step() {
        let mut c = RateControl::for_frame(32_000, FrameDuration::Ms10);
        assert_eq!(c.decision().bitrate, 48_000);
        run(&mut c, Instant::now(), 25, 0.0, 40);
        assert_eq!(c.decision().bitrate, 60_000);
        let c = RateControl::for_frame(16_000, FrameDuration::Ms10);
        assert_eq!(c.decision().bitrate, 24_000);
        assert_eq!(RateControl::new(32_000).decision().bitrate, 32_000);
    }

    #[test]
    fn a_clean_path_climbs_the_ladder_without_fec() {
        let mut c = RateControl::new(24_000);
        assert_eq!(c.decision().bitrate, 24_000);
        let t = run(&mut c, Instant::now(), 25, 0.0, 40);
        let d = c.decision();
        assert_eq!(d.bitrate, 40_000);
        assert!(!d.fec);
        assert_eq!(d.expected_loss_percent, 0);
        // And stays at the top.
        run(&mut c, t, 30, 0.0, 40);
        assert_eq!(c.decision().bitrate, 40_000);
    }

    #[test]
    fn loss_turns_fec_on_with_the_measured_expectation_and_off_again() {
        let mut c = RateControl::new(24_000);
        // The first report only turns FEC on; two steps up are 2 s apart.
        let t = run(&mut c, Instant::now(), 4, 0.05, 40);
        let d = c.decision();
        assert!(d.fec);
        assert_eq!(d.expected_loss_percent, 5);
        assert_eq!(
            d.bitrate, 40_000,
            "5 % with a short RTT is a lossy link: up, to pay for FEC"
        );
        let t = run(&mut c, t, 5, 0.0, 40);
        assert!(c.decision().fec, "held for 10 s after the last loss");
        run(&mut c, t, 6, 0.0, 40);
        assert!(!c.decision().fec);
        assert_eq!(c.decision().expected_loss_percent, 0);
    }

    #[test]
    fn burst_loss_keeps_fec_planned_through_the_seconds_without_loss() {
        // A Gilbert-Elliott path as the reports see it: a burst one
        // second, nothing the next ones (about 5 % in all).
        let mut c = RateControl::new(32_000);
        let mut t = Instant::now();
        let pattern = [0.0, 0.15, 0.0, 0.0, 0.04, 0.0, 0.07, 0.0, 0.03, 0.0];
        let mut planned = Vec::new();
        for loss in pattern.iter().cycle().take(30) {
            t += Duration::from_secs(1);
            c.on_report(t, *loss, Some(Duration::from_millis(90)));
            planned.push(c.decision().expected_loss_percent);
        }
        assert!(c.decision().fec);
        // From the first loss on, Opus always plans some loss (0 would
        // turn its redundancy off), and once the window is full about the
        // path's mean.
        assert!(planned[1..].iter().all(|&p| p >= 1), "{planned:?}");
        assert!(
            planned[10..].iter().all(|&p| (2..=8).contains(&p)),
            "{planned:?}"
        );
    }

    #[test]
    fn copies_take_the_place_of_fec_while_loss_is_seen() {
        let mut c = RateControl::new(32_000);
        c.allow_copies(2);
        let t = run(&mut c, Instant::now(), 3, 0.05, 40);
        let d = c.decision();
        assert_eq!(d.copies, 2);
        assert!(!d.fec, "the copies rebuild what FEC would");
        assert_eq!(d.expected_loss_percent, 5);
        assert_eq!(
            d.bitrate, 32_000,
            "no step up: the copies cost no speech bits"
        );
        run(&mut c, t, 11, 0.0, 40);
        assert_eq!(c.decision().copies, 0, "a clean path sends none");
    }

    #[test]
    fn a_report_soon_after_another_turns_protection_on_and_nothing_else() {
        // The receiver reports its first loss at once: one packet of five
        // is 20 %, which a second's report would take for congestion.
        let mut c = RateControl::new(32_000);
        c.allow_copies(2);
        let t0 = Instant::now();
        let t = run(&mut c, t0, 3, 0.0, 40);
        let d = c
            .on_report(
                t + Duration::from_millis(100),
                0.2,
                Some(Duration::from_millis(40)),
            )
            .expect("protection on");
        assert_eq!(d.copies, 2);
        assert_eq!(d.bitrate, 32_000, "not a step down");
        // The first report of a call covers an unknown stretch too.
        let mut c = RateControl::new(32_000);
        c.on_report(t0, 0.5, None);
        assert!(c.decision().fec);
        assert_eq!(c.decision().bitrate, 32_000);
    }

    #[test]
    fn loss_on_a_long_path_does_not_step_up() {
        let mut c = RateControl::new(24_000);
        run(&mut c, Instant::now(), 5, 0.05, 300);
        assert_eq!(c.decision().bitrate, 24_000);
        assert!(c.decision().fec);
    }

    #[test]
    fn a_bad_path_steps_down_one_step_at_a_time_to_the_floor() {
        let mut c = RateControl::new(40_000);
        let t0 = Instant::now();
        c.on_report(t0, 0.0, None);
        c.on_report(t0 + Duration::from_secs(1), 0.2, None);
        assert_eq!(c.decision().bitrate, 32_000);
        // Within the gap: no second step.
        c.on_report(t0 + Duration::from_millis(1500), 0.2, None);
        assert_eq!(c.decision().bitrate, 32_000);
        run(&mut c, t0 + Duration::from_secs(2), 20, 0.0, 900);
        assert_eq!(c.decision().bitrate, 16_000, "a long RTT is a bad path");
        assert_eq!(c.decision().expected_loss_percent, 0);
    }

    #[test]
    fn nonsense_reports_are_clamped() {
        let mut c = RateControl::new(1);
        assert_eq!(c.decision().bitrate, 16_000);
        let t0 = Instant::now();
        c.on_report(t0, f64::NAN, None);
        c.on_report(t0 + Duration::from_secs(1), 7.0, None);
        assert_eq!(c.decision().expected_loss_percent, 30);
    }
}
