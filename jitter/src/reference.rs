//! The fixed-delay jitter buffer we measure ourselves against.
//!
//! The classic design: play-out starts a fixed delay after the first packet
//! arrives and then takes one frame per poll, whatever the network does.
//! Same inputs and outputs as [`JitterBuffer`](crate::JitterBuffer), same
//! preallocated slots, so simulations and benchmarks compare like with like.

use core::time::Duration;
use std::time::Instant;

use crate::seq::{extend_ts, TS_BASE};
use crate::{Arrival, Conceal, Config, Error, Frame, Packet, Playout, Silence, Stats, Stretch};

#[derive(Clone, Copy, Default)]
struct Slot {
    ts: u64,
    seq: u16,
    len: u32,
    used: bool,
}

/// A fixed-delay jitter buffer (the reference, not for production use).
pub struct FixedDelay {
    delay: Duration,
    frame_ts: u64,
    max_payload: usize,
    mask: u64,
    slots: Box<[Slot]>,
    data: Box<[u8]>,
    active: bool,
    playing: bool,
    ssrc: u32,
    ts_hi: u64,
    start_at: Option<Instant>,
    next_ts: u64,
    stats: Stats,
}

impl FixedDelay {
    /// A buffer that plays everything `delay` after the first packet
    /// arrived; frame size, clock rate and slot size come from `config`.
    pub fn new(config: &Config, delay: Duration) -> Result<Self, Error> {
        config.validate()?;
        let frames = delay.as_micros() as u64 * u64::from(config.clock_rate)
            / 1_000_000
            / u64::from(config.frame_samples);
        let capacity = (frames as usize * 4 + 16).next_power_of_two();
        Ok(Self {
            delay,
            frame_ts: u64::from(config.frame_samples),
            max_payload: config.max_payload,
            mask: capacity as u64 - 1,
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
            data: vec![0; capacity * config.max_payload].into_boxed_slice(),
            active: false,
            playing: false,
            ssrc: 0,
            ts_hi: TS_BASE,
            start_at: None,
            next_ts: TS_BASE,
            stats: Stats::default(),
        })
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.target_delay = self.delay;
        s
    }

    fn index(&self, ts: u64) -> usize {
        ((ts / self.frame_ts) & self.mask) as usize
    }

    /// Hands one received packet to the buffer (`now` = arrival time).
    pub fn handle_packet(&mut self, now: Instant, packet: Packet<'_>) -> Result<Arrival, Error> {
        if packet.payload.len() > self.max_payload {
            return Err(Error::PayloadTooLarge {
                len: packet.payload.len(),
                max: self.max_payload,
            });
        }
        self.stats.received += 1;
        let mut arrival = Arrival::Buffered;
        if !self.active || packet.ssrc != self.ssrc {
            if self.active {
                self.stats.resyncs += 1;
                arrival = Arrival::Resynced;
            }
            for s in self.slots.iter_mut() {
                s.used = false;
            }
            self.active = true;
            self.playing = false;
            self.ssrc = packet.ssrc;
            // Align the frame grid on the first packet.
            self.ts_hi = TS_BASE + u64::from(packet.timestamp);
            self.next_ts = self.ts_hi;
            self.start_at = now.checked_add(self.delay);
        }
        let ts = extend_ts(self.ts_hi, packet.timestamp);
        if ts < self.next_ts {
            self.stats.late += 1;
            return Ok(Arrival::Late);
        }
        if ts >= self.next_ts + (self.mask + 1) * self.frame_ts {
            self.stats.discarded += 1;
            return Ok(Arrival::Discarded);
        }
        let i = self.index(ts);
        if self.slots[i].used && self.slots[i].ts == ts {
            self.stats.duplicates += 1;
            return Ok(Arrival::Duplicate);
        }
        let at = i * self.max_payload;
        self.data[at..at + packet.payload.len()].copy_from_slice(packet.payload);
        self.slots[i] = Slot {
            ts,
            seq: packet.seq,
            len: packet.payload.len() as u32,
            used: true,
        };
        self.ts_hi = self.ts_hi.max(ts);
        Ok(arrival)
    }

    /// Says what to play for the next frame period.
    pub fn poll(&mut self, now: Instant) -> Playout<'_> {
        if !self.playing {
            match self.start_at {
                Some(t) if self.active && now >= t => self.playing = true,
                _ => {
                    return Playout::Silence(Silence {
                        timestamp: 0,
                        dtx: false,
                    })
                }
            }
        }
        let ts = self.next_ts;
        self.next_ts += self.frame_ts;
        let i = self.index(ts);
        let slot = self.slots[i];
        if slot.used && slot.ts == ts {
            self.slots[i].used = false;
            self.stats.played += 1;
            let at = i * self.max_payload;
            return Playout::Frame(Frame {
                seq: slot.seq,
                timestamp: ts as u32,
                payload: &self.data[at..at + slot.len as usize],
                stretch: Stretch::None,
                stretch_by: core::time::Duration::ZERO,
            });
        }
        if slot.used && slot.ts < ts {
            self.slots[i].used = false;
        }
        self.stats.concealed += 1;
        let n = self.index(ts + self.frame_ts);
        let next = self.slots[n];
        let fec = (next.used && next.ts == ts + self.frame_ts).then(|| {
            let at = n * self.max_payload;
            &self.data[at..at + next.len as usize]
        });
        if fec.is_some() {
            self.stats.fec_available += 1;
        }
        Playout::Conceal(Conceal {
            timestamp: ts as u32,
            fec,
            inserted: false,
        })
    }
}

impl core::fmt::Debug for FixedDelay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FixedDelay")
            .field("delay", &self.delay)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
