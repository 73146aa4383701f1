//! Sliding-window quantile and minimum of packet transit times.
//!
//! A packet's *transit* is `arrival - timestamp` (both in microseconds on
//! the receiver's time line): the network delay plus an unknown constant.
//! The lowest transit in the window is the fastest path seen; a high
//! quantile of the window says how much later than that most packets come.
//!
//! The window is a ring of the last `history` transits plus a 1 ms
//! histogram of the same values; a pointer into the histogram tracks the
//! quantile, so adding a sample costs O(1) amortised and no allocation.

/// Width of one histogram bin, in microseconds.
const BIN_US: i64 = 1_000;
/// Rebase the histogram once its lowest sample sits this far above the origin.
const REBASE_ABOVE_US: i64 = 200_000;
/// After a rebase, the origin sits this far below the lowest sample.
const REBASE_SLACK_US: i64 = 20_000;

pub(crate) struct Estimator {
    bins: Box<[u32]>,
    ring: Box<[i64]>,
    len: usize,
    head: usize,
    /// Transit (µs) at the lower edge of bin 0.
    origin: i64,
    /// Lowest occupied bin.
    min_bin: usize,
    /// Quantile bin: the lowest bin with at most `allowed` samples above it.
    q_bin: usize,
    /// Samples in bins above `q_bin`.
    above: u32,
    /// Samples allowed above the quantile, per million.
    miss_ppm: u64,
    /// Whether the quantile is tracked at all (not for a minimum-only window).
    tracks_quantile: bool,
}

impl Estimator {
    pub(crate) fn new(history: usize, range_us: i64, quantile: f64) -> Self {
        let nbins = usize::try_from(range_us / BIN_US).unwrap_or(0).max(64) + 64;
        let miss = ((1.0 - quantile) * 1e6).round();
        Self {
            bins: vec![0; nbins].into_boxed_slice(),
            ring: vec![0; history.max(1)].into_boxed_slice(),
            len: 0,
            head: 0,
            origin: 0,
            min_bin: 0,
            q_bin: 0,
            above: 0,
            miss_ppm: if miss.is_finite() && miss > 0.0 {
                miss as u64
            } else {
                0
            },
            tracks_quantile: true,
        }
    }

    /// A window that only tracks its minimum (cheaper per sample).
    pub(crate) fn min_only(history: usize, range_us: i64) -> Self {
        Self {
            tracks_quantile: false,
            ..Self::new(history, range_us, 1.0)
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bins.fill(0);
        self.len = 0;
        self.head = 0;
        self.min_bin = 0;
        self.q_bin = 0;
        self.above = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn bin_of(&self, transit: i64) -> usize {
        let off = transit.saturating_sub(self.origin) / BIN_US;
        usize::try_from(off).unwrap_or(0).min(self.bins.len() - 1)
    }

    /// Records one packet's transit time (µs).
    pub(crate) fn add(&mut self, transit: i64) {
        if self.len == 0 {
            self.origin = transit.saturating_sub(REBASE_SLACK_US);
        } else if transit < self.origin {
            self.rebase(transit.saturating_sub(REBASE_SLACK_US));
        }
        if self.len == self.ring.len() {
            let old = self.ring[self.head];
            self.remove_from_bins(old);
            self.len -= 1;
        }
        self.ring[self.head] = transit;
        self.head += 1;
        if self.head == self.ring.len() {
            self.head = 0;
        }
        self.len += 1;
        let b = self.bin_of(transit);
        self.bins[b] += 1;
        if self.len == 1 {
            self.min_bin = b;
            self.q_bin = b;
            self.above = 0;
        } else {
            self.min_bin = self.min_bin.min(b);
            if b > self.q_bin {
                self.above += 1;
            }
        }
        self.settle();
        if (self.min_bin as i64) * BIN_US > REBASE_ABOVE_US {
            let lowest = self.origin.saturating_add(self.min_bin as i64 * BIN_US);
            self.rebase(lowest.saturating_sub(REBASE_SLACK_US));
        }
    }

    fn remove_from_bins(&mut self, transit: i64) {
        let b = self.bin_of(transit);
        self.bins[b] = self.bins[b].saturating_sub(1);
        if b > self.q_bin {
            self.above = self.above.saturating_sub(1);
        }
        while self.min_bin + 1 < self.bins.len() && self.bins[self.min_bin] == 0 {
            self.min_bin += 1;
        }
    }

    fn settle(&mut self) {
        if !self.tracks_quantile {
            return;
        }
        let allowed = (self.len as u64 * self.miss_ppm / 1_000_000) as u32;
        while self.above > allowed && self.q_bin + 1 < self.bins.len() {
            self.q_bin += 1;
            self.above -= self.bins[self.q_bin].min(self.above);
        }
        while self.q_bin > 0 && self.above + self.bins[self.q_bin] <= allowed {
            self.above += self.bins[self.q_bin];
            self.q_bin -= 1;
        }
    }

    /// Moves the histogram origin and recounts it from the ring (rare:
    /// only when clock drift or a path change moves transits by 20 ms+).
    fn rebase(&mut self, origin: i64) {
        self.origin = origin;
        self.bins.fill(0);
        let n = self.ring.len();
        let mut min_bin = self.bins.len() - 1;
        for i in 0..self.len {
            let t = self.ring[(self.head + n - 1 - i) % n];
            let b = self.bin_of(t);
            self.bins[b] += 1;
            min_bin = min_bin.min(b);
        }
        self.min_bin = min_bin;
        self.q_bin = min_bin;
        self.above = self.len.saturating_sub(self.bins[min_bin] as usize) as u32;
        self.settle();
    }

    /// Lowest transit in the window (µs), if any.
    pub(crate) fn min(&self) -> Option<i64> {
        (self.len > 0).then(|| self.origin.saturating_add(self.min_bin as i64 * BIN_US))
    }

    /// Transit (µs) that all but the configured fraction of the window stay
    /// under (upper edge of the quantile bin), if any.
    pub(crate) fn quantile(&self) -> Option<i64> {
        (self.len > 0 && self.tracks_quantile)
            .then(|| self.origin.saturating_add((self.q_bin as i64 + 1) * BIN_US))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_tracks_the_high_tail_of_the_window() {
        let mut e = Estimator::new(100, 1_000_000, 0.95);
        for i in 0..100 {
            e.add(50_000 + i * 1_000);
        }
        // 100 samples 50..149 ms, 5 allowed above: quantile bin holds 144 ms.
        assert_eq!(e.min(), Some(50_000));
        assert_eq!(e.quantile(), Some(145_000));
        // Slide the window: the old samples leave.
        for _ in 0..100 {
            e.add(10_000);
        }
        assert_eq!(e.quantile(), Some(11_000));
        assert_eq!(e.min(), Some(10_000));
    }

    #[test]
    fn drifting_transits_rebase_without_losing_the_quantile() {
        let mut e = Estimator::new(50, 500_000, 0.99);
        for i in 0..100_000i64 {
            e.add(-i * 4 + (i % 7) * 1_000);
        }
        let min = e.min().unwrap();
        let q = e.quantile().unwrap();
        assert!(q - min <= 8_000, "spread {}", q - min);
        for i in 0..100_000i64 {
            e.add(i * 4 + (i % 7) * 1_000);
        }
        let min = e.min().unwrap();
        let q = e.quantile().unwrap();
        assert!(q - min <= 8_000 && q - min >= 5_000, "spread {}", q - min);
    }

    #[test]
    fn minimum_only_window_forgets_old_minima() {
        let mut e = Estimator::min_only(10, 100_000);
        e.add(5_000);
        for _ in 0..10 {
            e.add(30_000);
        }
        assert_eq!(e.min(), Some(30_000));
        assert_eq!(e.quantile(), None);
    }

    #[test]
    fn outliers_beyond_the_range_clamp_to_the_top_bin() {
        let mut e = Estimator::new(10, 100_000, 0.9);
        e.add(0);
        e.add(i64::MAX / 2);
        e.add(i64::MIN / 2);
        assert!(e.quantile().is_some());
        assert_eq!(e.len(), 3);
    }
}
