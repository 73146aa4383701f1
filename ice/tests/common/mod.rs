//! A deterministic in-memory network for sans-IO agent tests: virtual clock,
//! seeded loss, delay and reordering, optional endpoint-independent NAT.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cryptic_ice::{Agent, AgentConfig, Event, Received, Role, SelectedPair};
use cryptic_tests::link::{Datagram, Link};

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub struct Peer {
    pub agent: Agent,
    pub host: SocketAddr,
    pub events: Vec<(Instant, Event)>,
    pub media: Vec<Vec<u8>>,
}

impl Peer {
    pub fn new(role: Role, host: &str, seed: u64, now: Instant) -> Self {
        Self::with_config(AgentConfig::new(role).with_seed(seed), host, now)
    }
    pub fn with_config(cfg: AgentConfig, host: &str, now: Instant) -> Self {
        let mut agent = Agent::new(cfg, now).unwrap();
        let host = addr(host);
        agent.add_host(host);
        agent.gather(now);
        Self {
            agent,
            host,
            events: Vec::new(),
            media: Vec::new(),
        }
    }
    pub fn selected(&self) -> Option<SelectedPair> {
        self.events.iter().rev().find_map(|(_, e)| match e {
            Event::Selected(p) => Some(*p),
            _ => None,
        })
    }
    pub fn local_candidates(&mut self) -> Vec<String> {
        while let Some(e) = self.agent.poll_event() {
            self.events.push((std::time::Instant::now(), e));
        }
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::CandidateGathered(c) => Some(c.to_sdp_string()),
                _ => None,
            })
            .collect()
    }
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }
}

/// The agents' network: the shared seeded link (loss, delay, reordering,
/// cuts) on a virtual clock, with an optional endpoint-independent NAT.
pub struct Net {
    pub now: Instant,
    pub link: Link,
    /// Private host address -> public mapped address (endpoint independent).
    pub nat: HashMap<SocketAddr, SocketAddr>,
}

impl Net {
    pub fn new(seed: u64, loss: f64, min_ms: u64, max_ms: u64) -> Self {
        let ms = Duration::from_millis;
        Self {
            now: Instant::now(),
            link: Link::new(seed)
                .with_loss(loss)
                .with_delay(ms(min_ms), ms(max_ms)),
            nat: HashMap::new(),
        }
    }

    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let from = self.nat.get(&from).copied().unwrap_or(from);
        self.link.send(self.now, Datagram { from, to, data });
    }

    fn pump_out(&mut self, peers: &mut [&mut Peer]) {
        for p in peers.iter_mut() {
            while let Some(t) = p.agent.poll_transmit() {
                self.send(t.source, t.destination, t.contents);
            }
            while let Some(e) = p.agent.poll_event() {
                p.events.push((self.now, e));
            }
        }
    }

    /// Runs until `until` returns true or `limit` of virtual time passed;
    /// returns whether `until` was met.
    pub fn run(
        &mut self,
        peers: &mut [&mut Peer],
        limit: Duration,
        mut until: impl FnMut(&[&mut Peer]) -> bool,
    ) -> bool {
        let end = self.now + limit;
        for _ in 0..1_000_000 {
            self.pump_out(peers);
            if until(peers) {
                return true;
            }
            let next_pkt = self.link.next_at();
            let next_timer = peers.iter().filter_map(|p| p.agent.poll_timeout()).min();
            let next = match (next_pkt, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => return false,
                },
            };
            if next > end {
                self.now = end;
                return false;
            }
            self.now = self.now.max(next);
            if let Some(f) = self.link.poll(self.now) {
                // Reverse NAT: a packet to a public mapping reaches the host.
                let to = self
                    .nat
                    .iter()
                    .find(|(_, public)| **public == f.to)
                    .map(|(host, _)| *host)
                    .unwrap_or(f.to);
                if let Some(p) = peers.iter_mut().find(|p| p.host == to) {
                    if let Received::Media(r) = p.agent.handle_input(self.now, f.from, to, &f.data)
                    {
                        p.media.push(f.data[r].to_vec());
                    }
                }
                continue;
            }
            for p in peers.iter_mut() {
                if p.agent.poll_timeout().is_some_and(|t| t <= self.now) {
                    p.agent.handle_timeout(self.now);
                }
            }
        }
        panic!("event loop did not settle");
    }
}

/// Exchanges credentials and all candidates gathered so far, plus
/// end-of-candidates.
pub fn signal(now: Instant, a: &mut Peer, b: &mut Peer) {
    let (ca, cb) = (
        a.agent.local_credentials().clone(),
        b.agent.local_credentials().clone(),
    );
    a.agent.set_remote_credentials(now, cb).unwrap();
    b.agent.set_remote_credentials(now, ca).unwrap();
    for c in b.local_candidates() {
        a.agent.add_remote_candidate_str(now, &c).unwrap();
    }
    for c in a.local_candidates() {
        b.agent.add_remote_candidate_str(now, &c).unwrap();
    }
    a.agent.remote_end_of_candidates();
    b.agent.remote_end_of_candidates();
}

pub fn both_selected(p: &[&mut Peer]) -> bool {
    p.iter().all(|p| p.selected().is_some())
}
