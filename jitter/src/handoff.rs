//! Lock-free hand-off of decoded PCM to the audio callback.
//!
//! ```text
//!  decode thread: JitterBuffer -> Opus decode -> PcmProducer::push
//!                                                    | ringbuf SPSC
//!  cpal callback:                 speaker <- PcmConsumer::fill
//! ```
//!
//! Both ends are wait-free: the queue is a `ringbuf` single-producer
//! single-consumer ring allocated once, and the counters are atomics
//! shared through one `Arc` made at creation. The callback never locks,
//! allocates or blocks; when the ring runs dry it plays silence for the
//! missing samples and counts an underrun.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::Error;

#[derive(Default)]
struct Counters {
    pushed: AtomicU64,
    overrun_samples: AtomicU64,
    played: AtomicU64,
    underruns: AtomicU64,
    underrun_samples: AtomicU64,
}

/// Counters of a PCM hand-off, readable from either end.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Samples the producer queued.
    pub pushed: u64,
    /// Samples the producer could not queue because the ring was full.
    pub overrun_samples: u64,
    /// Samples the callback took from the ring.
    pub played: u64,
    /// Callbacks that found fewer samples than they needed.
    pub underruns: u64,
    /// Samples of silence played because the ring was dry.
    pub underrun_samples: u64,
}

fn snapshot(c: &Counters) -> HandoffStats {
    HandoffStats {
        pushed: c.pushed.load(Ordering::Relaxed),
        overrun_samples: c.overrun_samples.load(Ordering::Relaxed),
        played: c.played.load(Ordering::Relaxed),
        underruns: c.underruns.load(Ordering::Relaxed),
        underrun_samples: c.underrun_samples.load(Ordering::Relaxed),
    }
}

/// Creates a PCM hand-off holding up to `capacity` samples (mono, 16-bit;
/// for example 4 × 960 = 80 ms at 48 kHz).
pub fn pcm_channel(capacity: usize) -> Result<(PcmProducer, PcmConsumer), Error> {
    if capacity == 0 {
        return Err(Error::ZeroCapacity);
    }
    let (prod, cons) = HeapRb::<i16>::new(capacity).split();
    let counters = Arc::new(Counters::default());
    Ok((
        PcmProducer {
            prod,
            counters: Arc::clone(&counters),
        },
        PcmConsumer { cons, counters },
    ))
}

/// The decode thread's end of the hand-off.
pub struct PcmProducer {
    prod: HeapProd<i16>,
    counters: Arc<Counters>,
}

impl PcmProducer {
    /// Queues as many samples of `pcm` as fit and returns how many; the
    /// rest are dropped and counted. Never blocks.
    pub fn push(&mut self, pcm: &[i16]) -> usize {
        let n = self.prod.push_slice(pcm);
        self.counters.pushed.fetch_add(n as u64, Ordering::Relaxed);
        if n < pcm.len() {
            self.counters
                .overrun_samples
                .fetch_add((pcm.len() - n) as u64, Ordering::Relaxed);
        }
        n
    }

    /// Free room in the ring, in samples: poll the jitter buffer and push a
    /// frame whenever this reaches one frame.
    pub fn vacant(&self) -> usize {
        self.prod.vacant_len()
    }

    /// Samples queued and not yet played.
    pub fn queued(&self) -> usize {
        self.prod.occupied_len()
    }

    /// The shared counters.
    pub fn stats(&self) -> HandoffStats {
        snapshot(&self.counters)
    }
}

/// The audio callback's end of the hand-off.
pub struct PcmConsumer {
    cons: HeapCons<i16>,
    counters: Arc<Counters>,
}

impl PcmConsumer {
    /// Fills `out` from the ring; whatever the ring cannot supply is
    /// silence. Returns how many samples came from the ring. Wait-free.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        let n = self.cons.pop_slice(out);
        if let Some(rest) = out.get_mut(n..) {
            rest.fill(0);
        }
        self.account(n, out.len());
        n
    }

    /// Like [`fill`](Self::fill), converting to `f32` in `[-1, 1)` for
    /// devices that take floats. Wait-free.
    pub fn fill_f32(&mut self, out: &mut [f32]) -> usize {
        let n = {
            let (a, b) = self.cons.as_slices();
            let mut n = 0;
            for (dst, src) in out.iter_mut().zip(a.iter().chain(b.iter())) {
                *dst = f32::from(*src) / 32_768.0;
                n += 1;
            }
            n
        };
        self.cons.skip(n);
        if let Some(rest) = out.get_mut(n..) {
            rest.fill(0.0);
        }
        self.account(n, out.len());
        n
    }

    fn account(&self, got: usize, wanted: usize) {
        self.counters
            .played
            .fetch_add(got as u64, Ordering::Relaxed);
        if got < wanted {
            self.counters.underruns.fetch_add(1, Ordering::Relaxed);
            self.counters
                .underrun_samples
                .fetch_add((wanted - got) as u64, Ordering::Relaxed);
        }
    }

    /// Samples ready to play.
    pub fn available(&self) -> usize {
        self.cons.occupied_len()
    }

    /// The shared counters.
    pub fn stats(&self) -> HandoffStats {
        snapshot(&self.counters)
    }
}

impl core::fmt::Debug for PcmProducer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PcmProducer")
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for PcmConsumer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PcmConsumer")
            .field("available", &self.available())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underrun_plays_silence_and_is_counted() {
        let (mut p, mut c) = pcm_channel(1_920).unwrap();
        assert_eq!(p.push(&[7; 600]), 600);
        let mut out = [1i16; 960];
        assert_eq!(c.fill(&mut out), 600);
        assert!(out[..600].iter().all(|&s| s == 7));
        assert!(out[600..].iter().all(|&s| s == 0));
        let s = c.stats();
        assert_eq!((s.underruns, s.underrun_samples, s.played), (1, 360, 600));
    }

    #[test]
    fn full_ring_drops_the_excess_and_counts_it() {
        let (mut p, c) = pcm_channel(1_000).unwrap();
        assert_eq!(p.push(&[1; 960]), 960);
        assert_eq!(p.push(&[1; 960]), 40);
        assert_eq!(c.stats().overrun_samples, 920);
    }

    #[test]
    fn float_fill_converts_and_pads_with_silence() {
        let (mut p, mut c) = pcm_channel(8).unwrap();
        p.push(&[16_384, -32_768]);
        let mut out = [9.0f32; 4];
        assert_eq!(c.fill_f32(&mut out), 2);
        assert_eq!(out, [0.5, -1.0, 0.0, 0.0]);
        assert_eq!(c.available(), 0);
    }

    #[test]
    fn zero_capacity_is_refused() {
        assert_eq!(pcm_channel(0).err(), Some(Error::ZeroCapacity));
    }
}
