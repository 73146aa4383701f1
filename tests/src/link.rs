//! The in-memory network: a seeded, sans-IO datagram link with loss, delay
//! (and so reordering) and cuts, on the caller's clock.
//!
//! Tests drive it as they drive our protocol cores: [`Link::send`] with
//! `now`, then [`Link::poll`] at the time [`Link::next_at`] names. The same
//! seed gives the same losses and delays; losses come from their own random
//! stream, so changing the loss rate does not move the delays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One datagram in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Source address (as the receiver sees it).
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A seeded datagram link.
#[derive(Debug)]
pub struct Link {
    delay_rng: StdRng,
    loss_rng: StdRng,
    loss: f64,
    delay: (Duration, Duration),
    /// Drops everything sent while set (a cut path).
    pub cut: bool,
    queue: BTreeMap<(Instant, u64), Datagram>,
    seq: u64,
    /// Datagrams sent, lost (or cut) and delivered so far.
    pub sent: u64,
    /// See [`Link::sent`].
    pub lost: u64,
    /// See [`Link::sent`].
    pub delivered: u64,
}

impl Link {
    /// A perfect link (no loss, no delay) seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            delay_rng: StdRng::seed_from_u64(seed),
            loss_rng: StdRng::seed_from_u64(seed ^ 0x5eed_1055),
            loss: 0.0,
            delay: (Duration::ZERO, Duration::ZERO),
            cut: false,
            queue: BTreeMap::new(),
            seq: 0,
            sent: 0,
            lost: 0,
            delivered: 0,
        }
    }

    /// Loses each datagram with probability `p`.
    #[must_use]
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = p.clamp(0.0, 1.0);
        self
    }

    /// Delays each datagram uniformly between `min` and `max` (datagrams
    /// overtake each other when the range is wider than their spacing).
    #[must_use]
    pub fn with_delay(mut self, min: Duration, max: Duration) -> Self {
        self.delay = (min, max.max(min));
        self
    }

    /// Sends a datagram at `now`; whether it will arrive.
    pub fn send(&mut self, now: Instant, datagram: Datagram) -> bool {
        self.sent += 1;
        if self.cut || self.loss_rng.random_bool(self.loss) {
            self.lost += 1;
            return false;
        }
        let d = self.delay_rng.random_range(self.delay.0..=self.delay.1);
        self.seq += 1;
        self.queue.insert((now + d, self.seq), datagram);
        true
    }

    /// When the next datagram arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The next datagram that has arrived by `now`, earliest first.
    pub fn poll(&mut self, now: Instant) -> Option<Datagram> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        self.delivered += 1;
        Some(entry.remove())
    }

    /// Datagrams still in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
