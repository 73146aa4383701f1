//! Packet index estimation (RFC 3711 section 3.3.1 and appendix A) and the
//! sliding replay window (RFC 3711 section 3.3.2).

use crate::error::Error;

/// Largest replay window this crate supports, in packets.
pub const MAX_WINDOW: usize = 1024;
const WORDS: usize = MAX_WINDOW / 64;

/// Estimates the 48-bit SRTP packet index of sequence number `seq` given the
/// highest index seen so far on the stream (`None` before the first packet).
///
/// Follows RFC 3711 appendix A: the rollover counter is guessed as one of
/// ROC - 1, ROC and ROC + 1, whichever puts the index nearest the highest
/// one. Returns `None` when the only candidate would need a rollover
/// counter below zero (a packet from before the stream started).
#[inline]
pub fn estimate_index(highest: Option<u64>, seq: u16) -> Option<u64> {
    let Some(highest) = highest else {
        return Some(u64::from(seq));
    };
    let roc = highest >> 16;
    let s_l = highest as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    Some((v << 16) | u64::from(seq))
}

/// A sliding window over the most recent packet indices, remembering which
/// were received.
///
/// The bitmap is circular: bit `index % 1024` stands for `index` while it is
/// within the window, so advancing costs one bit clear per new index and no
/// shifting.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    size: u64,
    top: Option<u64>,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// A window remembering the last `size` indices (64 to [`MAX_WINDOW`]).
    pub fn new(size: usize) -> Result<Self, Error> {
        if !(64..=MAX_WINDOW).contains(&size) {
            return Err(Error::BadConfig("replay window must be 64 to 1024 packets"));
        }
        Ok(ReplayWindow {
            size: size as u64,
            top: None,
            bits: [0; WORDS],
        })
    }

    /// The highest index accepted so far.
    pub fn top(&self) -> Option<u64> {
        self.top
    }

    #[inline]
    fn bit(index: u64) -> (usize, u64) {
        let b = (index % MAX_WINDOW as u64) as usize;
        (b / 64, 1u64 << (b % 64))
    }

    /// Checks `index` without recording it: `Ok` when it is new, an error
    /// when it is a replay or too old to tell.
    #[inline]
    pub fn check(&self, index: u64) -> Result<(), Error> {
        let Some(top) = self.top else { return Ok(()) };
        if index > top {
            return Ok(());
        }
        if top - index >= self.size {
            return Err(Error::TooOld { index });
        }
        let (w, m) = Self::bit(index);
        if self.bits[w] & m != 0 {
            Err(Error::Replayed { index })
        } else {
            Ok(())
        }
    }

    /// Records `index` as received. Call only after [`ReplayWindow::check`]
    /// passed and the packet authenticated.
    #[inline]
    pub fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => {}
            Some(top) => {
                let advance = index - top;
                if advance >= MAX_WINDOW as u64 {
                    self.bits = [0; WORDS];
                } else {
                    for i in top + 1..index {
                        let (w, m) = Self::bit(i);
                        self.bits[w] &= !m;
                    }
                    let (w, m) = Self::bit(index);
                    self.bits[w] &= !m;
                }
                self.top = Some(index);
            }
            None => self.top = Some(index),
        }
        let (w, m) = Self::bit(index);
        self.bits[w] |= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_rollover_forward_across_the_wrap() {
        let highest = Some(65_530);
        assert_eq!(estimate_index(highest, 3), Some(65_536 + 3));
        assert_eq!(estimate_index(highest, 65_535), Some(65_535));
        assert_eq!(estimate_index(highest, 65_000), Some(65_000));
    }

    #[test]
    fn estimates_rollover_backward_for_a_late_packet() {
        let highest = Some((5 << 16) | 10);
        assert_eq!(estimate_index(highest, 65_530), Some((4 << 16) | 65_530));
        assert_eq!(estimate_index(highest, 20), Some((5 << 16) | 20));
    }

    #[test]
    fn refuses_a_rollover_counter_below_zero() {
        assert_eq!(estimate_index(Some(10), 65_530), None);
    }

    #[test]
    fn rejects_duplicates_and_packets_older_than_the_window() {
        let mut w = ReplayWindow::new(128).unwrap();
        for i in 1000..1200 {
            w.check(i).unwrap();
            w.accept(i);
        }
        assert_eq!(w.check(1199), Err(Error::Replayed { index: 1199 }));
        assert_eq!(w.check(1072), Err(Error::Replayed { index: 1072 }));
        assert_eq!(w.check(1071), Err(Error::TooOld { index: 1071 }));
        assert!(w.check(1200).is_ok());
    }

    #[test]
    fn accepts_reordered_packets_inside_the_window_once() {
        let mut w = ReplayWindow::new(64).unwrap();
        w.accept(100);
        w.accept(90);
        assert!(w.check(95).is_ok());
        w.accept(95);
        assert!(w.check(95).is_err());
        // A jump far ahead forgets everything behind the new window.
        w.accept(100 + 5000);
        assert_eq!(w.check(5099), Ok(()));
        assert_eq!(w.check(5030), Err(Error::TooOld { index: 5030 }));
    }

    #[test]
    fn circular_bitmap_clears_bits_that_come_round_again() {
        let mut w = ReplayWindow::new(1024).unwrap();
        w.accept(5);
        for i in 6..6 + 1024 {
            assert!(w.check(i).is_ok(), "index {i}");
            w.accept(i);
        }
    }
}
