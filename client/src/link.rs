//! The signaling connection of a call, kept up: when it is lost (closed,
//! or silent past `dead_after`), it is made again with backoff, trying the
//! profile's server addresses in turn, while the call goes on.
//!
//! ```text
//!   Servers (profile.json's "server", config.toml's `servers`)
//!      │ config_for(address)
//!      ▼
//!   Link: up ──lost──> down ──Redial says when, which address──> dialing ──ok──> up
//!                        ▲                                          │
//!                        └───────────────failed─────────────────────┘
//! ```
//!
//! [`Redial`] is the schedule, sans-IO (0.5 s, 1 s, 2 s, 4 s, then every
//! 5 s, the next address each time); [`Link`] is the small driver piece
//! that the call's loop awaits in one `select!` arm ([`Link::next`] is
//! cancel-safe: the connection attempt runs in its own task).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cryptic_signal::client::{connect, ClientConfig, Connection, Incoming, Receiver, Sender};
use cryptic_signal::profile::Profile;
use cryptic_signal::wire::{ErrorCode, Message};

use crate::config::Config;

/// The first delay after a loss.
const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest delay between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Call messages held while the connection is down (a hang-up, an ICE
/// restart); more are dropped.
const HELD_MESSAGES: usize = 32;

/// The signaling server's addresses (one or more: nodes of a cluster)
/// and how to authenticate to them.
#[derive(Clone, Debug)]
pub struct Servers {
    base: ClientConfig,
    addrs: Vec<String>,
}

/// Splits a list of `host:port` addresses given as one string
/// (`a:1,b:2`, commas or white space).
pub fn split_addresses(list: &str) -> Vec<String> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

impl Servers {
    /// The profile's addresses (`server` in profile.json may list several,
    /// comma-separated), or config.toml's `servers` when it names any.
    pub fn from_profile(profile: &Profile, config: &Config) -> Result<Self, String> {
        let base = profile.client_config().map_err(|e| e.to_string())?;
        let addrs = if config.servers.is_empty() {
            split_addresses(&profile.server)
        } else {
            config.servers.clone()
        };
        Self::new(base, addrs)
    }

    /// `base` with each of `addrs` in turn.
    pub fn new(base: ClientConfig, addrs: Vec<String>) -> Result<Self, String> {
        if addrs.is_empty() {
            return Err("the profile names no server address".into());
        }
        Ok(Servers { base, addrs })
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Always false: there is at least one address.
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// The settings for the address number `i` (modulo their number).
    pub fn config_for(&self, i: usize) -> ClientConfig {
        let mut c = self.base.clone();
        c.server = self.addrs[i % self.addrs.len()].clone();
        c
    }

    /// Connects to the first address that answers, in order; the error of
    /// the last one otherwise.
    pub async fn connect_first(&self) -> Result<Connection, cryptic_signal::Error> {
        let mut last = None;
        for i in 0..self.addrs.len() {
            match connect(&self.config_for(i)).await {
                Ok(c) => {
                    if i > 0 {
                        tracing::info!(address = i, "reached the server at a later address");
                    }
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(address = i, "server address failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(cryptic_signal::Error::Closed))
    }
}

/// When to try to connect again, and to which address (sans-IO).
#[derive(Debug, Clone)]
pub struct Redial {
    addresses: usize,
    next_addr: usize,
    failures: u32,
    next_at: Option<Instant>,
}

impl Redial {
    /// A schedule over `addresses` addresses, idle.
    pub fn new(addresses: usize) -> Self {
        Redial {
            addresses: addresses.max(1),
            next_addr: 0,
            failures: 0,
            next_at: None,
        }
    }

    /// The connection was lost at `now`: the first attempt comes soon,
    /// at the same address.
    pub fn lost(&mut self, now: Instant) {
        self.failures = 0;
        self.next_at = Some(now + FIRST_DELAY);
    }

    /// When the next attempt is due (`None`: connected, or attempting).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// Starts the attempt that is due: the address to try.
    pub fn start(&mut self) -> usize {
        self.next_at = None;
        self.next_addr
    }

    /// The attempt failed at `now`: the next address, after a longer wait.
    pub fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.next_addr = (self.next_addr + 1) % self.addresses;
        let delay = FIRST_DELAY
            .saturating_mul(1u32 << self.failures.min(8))
            .min(MAX_DELAY);
        self.next_at = Some(now + delay);
    }

    /// The attempt succeeded: idle until the next loss (which starts at
    /// the address that worked).
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_at = None;
    }
}

/// What the signaling connection brought.
#[derive(Debug)]
// As `Incoming` itself: boxing would cost an allocation per relay frame.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LinkEvent {
    /// A message or relay frame from the server.
    Incoming(Incoming),
    /// The server sent something we could not read (skipped).
    Skipped(String),
    /// The connection was lost (why: [`Link::why`]).
    Lost,
    /// Connected again.
    Back,
}

/// A call's signaling connection, re-made when lost (when it has
/// [`Servers`] to dial).
pub(crate) struct Link<'a> {
    sender: &'a mut Sender,
    receiver: &'a mut Receiver,
    servers: Option<&'a Servers>,
    up: bool,
    redial: Redial,
    dialing: Option<tokio::task::JoinHandle<Result<Connection, cryptic_signal::Error>>>,
    /// Call messages to send once connected again.
    held: VecDeque<Message>,
    /// Why it was last lost.
    why: String,
    /// The server signed us out (a newer login of this user replaced this
    /// connection, or the certificate was revoked): never dial again, or
    /// this client would replace that newer login in turn.
    signed_out: bool,
}

impl<'a> Link<'a> {
    pub(crate) fn new(
        sender: &'a mut Sender,
        receiver: &'a mut Receiver,
        servers: Option<&'a Servers>,
    ) -> Self {
        let redial = Redial::new(servers.map_or(1, Servers::len));
        Link {
            sender,
            receiver,
            servers,
            up: true,
            redial,
            dialing: None,
            held: VecDeque::new(),
            why: String::new(),
            signed_out: false,
        }
    }

    /// Whether a lost connection is made again.
    fn redials(&self) -> bool {
        self.servers.is_some() && !self.signed_out
    }

    /// Whether it is down and being made again.
    pub(crate) fn reconnecting(&self) -> bool {
        !self.up && self.redials()
    }

    /// Why it was last lost.
    pub(crate) fn why(&self) -> &str {
        &self.why
    }

    /// Takes the connection as lost (a send failed, or the receiver did).
    pub(crate) fn lose(&mut self, why: String) {
        if !self.up {
            return;
        }
        tracing::info!("signaling connection lost: {why}");
        self.up = false;
        self.why = why;
        if self.redials() {
            self.redial.lost(Instant::now());
        }
    }

    /// Sends a call message, or holds it while the connection is down
    /// (the oldest are dropped past [`HELD_MESSAGES`]). `false` when the
    /// send failed just now: the connection is lost.
    pub(crate) async fn send(&mut self, m: &Message) -> bool {
        if !self.up {
            if self.redials() {
                if self.held.len() >= HELD_MESSAGES {
                    self.held.pop_front();
                }
                self.held.push_back(m.clone());
            }
            return true;
        }
        match self.sender.send(m).await {
            Ok(()) => true,
            Err(e) => {
                self.lose(e.to_string());
                false
            }
        }
    }

    /// Sends a relay frame if connected (dropped otherwise, as a datagram
    /// would be). `false` when the send failed just now.
    pub(crate) fn send_relay(
        &mut self,
        call_id: cryptic_signal::wire::CallId,
        seq: u64,
        frame: &[u8],
    ) -> bool {
        if !self.up {
            return true;
        }
        match self.sender.try_send_relay(call_id, seq, frame) {
            Ok(_) => true,
            Err(e) => {
                self.lose(e.to_string());
                false
            }
        }
    }

    /// The next thing that happens to the connection. Cancel-safe.
    pub(crate) async fn next(&mut self) -> LinkEvent {
        loop {
            if self.up {
                return match self.receiver.recv().await {
                    Ok(m) => {
                        if let Incoming::Message(Message::Error(e)) = &m {
                            self.signed_out |= e.call_id.is_none()
                                && matches!(
                                    e.code,
                                    ErrorCode::SessionReplaced | ErrorCode::CertificateRevoked
                                );
                        }
                        LinkEvent::Incoming(m)
                    }
                    Err(cryptic_signal::Error::Protocol(e)) => LinkEvent::Skipped(e),
                    Err(e) => {
                        self.lose(e.to_string());
                        LinkEvent::Lost
                    }
                };
            }
            let Some(servers) = self.servers.filter(|_| !self.signed_out) else {
                return std::future::pending().await;
            };
            if let Some(dial) = self.dialing.as_mut() {
                let r = dial.await;
                self.dialing = None;
                match r {
                    Ok(Ok(conn)) => {
                        let (s, r) = conn.split();
                        *self.sender = s;
                        *self.receiver = r;
                        self.up = true;
                        self.redial.succeeded();
                        self.flush_held().await;
                        return LinkEvent::Back;
                    }
                    Ok(Err(e)) => tracing::debug!("reconnection failed: {e}"),
                    Err(e) => tracing::debug!("reconnection task failed: {e}"),
                }
                self.redial.failed(Instant::now());
                continue;
            }
            let at = self.redial.poll_timeout().unwrap_or_else(Instant::now);
            tokio::time::sleep_until(at.into()).await;
            let config = servers.config_for(self.redial.start());
            self.dialing = Some(tokio::spawn(async move { connect(&config).await }));
        }
    }

    /// Sends what was held while down, in order.
    async fn flush_held(&mut self) {
        while let Some(m) = self.held.pop_front() {
            if self.sender.send(&m).await.is_err() {
                break;
            }
        }
    }

    /// For the end of a call: when messages (a hang-up) wait and the
    /// connection is down, tries to connect again for up to `within` to
    /// deliver them.
    pub(crate) async fn deliver_held(&mut self, within: Duration) {
        if self.up || self.held.is_empty() || !self.redials() {
            return;
        }
        let _ = tokio::time::timeout(within, async {
            loop {
                if let LinkEvent::Back = self.next().await {
                    return;
                }
            }
        })
        .await;
    }
}

impl Drop for Link<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.dialing.take() {
            d.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redials_back_off_to_five_seconds_and_go_round_the_addresses() {
        let t0 = Instant::now();
        let mut r = Redial::new(2);
        assert_eq!(r.poll_timeout(), None);
        r.lost(t0);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        let mut waits = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..6 {
            addrs.push(r.start());
            assert_eq!(r.poll_timeout(), None, "no second attempt while one runs");
            r.failed(t0);
            waits.push(r.poll_timeout().unwrap() - t0);
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(addrs, [0, 1, 0, 1, 0, 1]);
        // Connected at address 0; the next loss starts there, soon.
        r.start();
        r.succeeded();
        assert_eq!(r.poll_timeout(), None);
        r.lost(t0);
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn address_lists_split_on_commas_and_spaces() {
        assert_eq!(
            split_addresses("a:1, b:2,,c:3"),
            ["a:1", "b:2", "c:3"].map(String::from)
        );
        assert_eq!(split_addresses("127.0.0.1:7443"), ["127.0.0.1:7443"]);
        assert!(split_addresses(" , ").is_empty());
    }
}
