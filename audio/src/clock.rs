//! Frame pacing on the caller's clock (sans-IO: time comes in as `now`).

use std::time::{Duration, Instant};

/// Says when each frame of a generated source is due: frame `k` is due at
/// `start + k × period`, where `start` is the first `now` it sees.
///
/// The clock never reads the time itself, so tests can drive it with a
/// virtual clock and the client with `Instant::now()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameClock {
    period: Duration,
    start: Option<Instant>,
    taken: u32,
}

impl FrameClock {
    /// A clock with one frame per `period`.
    pub const fn new(period: Duration) -> Self {
        Self {
            period,
            start: None,
            taken: 0,
        }
    }

    /// The deadline of the next frame, once the clock has started.
    pub fn next_due(&self) -> Option<Instant> {
        self.start.map(|s| s + self.period * self.taken)
    }

    /// Takes the next frame if it is due at `now`; starts the clock on the
    /// first call.
    pub fn take(&mut self, now: Instant) -> bool {
        let start = *self.start.get_or_insert(now);
        if now >= start + self.period * self.taken {
            self.taken = self.taken.saturating_add(1);
            true
        } else {
            false
        }
    }

    /// Frames taken so far.
    pub fn frames(&self) -> u32 {
        self.taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_one_frame_per_period_on_a_virtual_clock() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(Duration::from_millis(20));
        assert_eq!(c.next_due(), None);
        assert!(c.take(t0));
        assert!(!c.take(t0 + Duration::from_millis(19)));
        assert_eq!(c.next_due(), Some(t0 + Duration::from_millis(20)));
        assert!(c.take(t0 + Duration::from_millis(20)));
        // a late caller catches up frame by frame
        let late = t0 + Duration::from_millis(100);
        let mut n = 0;
        while c.take(late) {
            n += 1;
        }
        assert_eq!(n, 4);
        assert_eq!(c.frames(), 6);
    }
}
