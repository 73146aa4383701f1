//! The sans-IO ICE agent (RFC 8445 full ICE, one component, UDP).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stun_rs::attributes::ice::{IceControlled, IceControlling, Priority, UseCandidate};
use stun_rs::attributes::stun::{ErrorCode, UnknownAttributes, UserName, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{HMACKey, MessageClass, StunMessage, StunMessageBuilder, TransactionId};

use crate::candidate::{priority, valid_ice_string, Candidate, CandidateKind};
use crate::stun::{self, PacketKind};
use crate::turn::{FromServer, Transport, TurnClient, TurnServer, TurnState};
use crate::{Error, Pii};

/// Remote candidates held at most (signaled plus peer-reflexive).
const MAX_REMOTE: usize = 64;
/// Candidate pairs held at most (RFC 8445 section 6.1.2.5 suggests 100).
const MAX_PAIRS: usize = 100;
/// Outstanding connectivity-check transactions at most.
const MAX_CHECKS: usize = 64;
/// A nomination this long after the controlled agent selected a pair is a
/// renomination (the controlling agent moved), not aggressive nomination.
const RENOMINATION_AFTER: Duration = Duration::from_secs(1);
/// A selected pair with no media from the peer for this long yields to a
/// new nomination of any priority (media flows every 20 ms in a call).
const SELECTED_SILENT: Duration = Duration::from_millis(100);

/// Which side of the ICE session this agent plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The controlling agent nominates (the caller).
    Controlling,
    /// The controlled agent follows nominations (the callee).
    Controlled,
}

/// ICE username fragment and password (RFC 8839 ice-ufrag / ice-pwd).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username fragment, 4..=256 ice-chars.
    pub ufrag: String,
    /// Password, 22..=256 ice-chars.
    pub pwd: String,
}

impl Credentials {
    /// Validated credentials.
    pub fn new(ufrag: impl Into<String>, pwd: impl Into<String>) -> Result<Self, Error> {
        let c = Self {
            ufrag: ufrag.into(),
            pwd: pwd.into(),
        };
        if valid_ice_string(&c.ufrag, 4) && valid_ice_string(&c.pwd, 22) {
            Ok(c)
        } else {
            Err(Error::InvalidCredentials)
        }
    }

    fn random(rng: &mut impl Rng) -> Self {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = |n| -> String {
            (0..n)
                .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
                .collect()
        };
        Self {
            ufrag: s(8),
            pwd: s(24),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ufrag", &self.ufrag)
            .finish_non_exhaustive()
    }
}

/// Timers of the agent. Defaults follow RFC 8445, RFC 8489 and RFC 7675.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Timers {
    /// Pacing of ordinary checks (Ta, RFC 8445 section 14.2): 50 ms.
    pub ta: Duration,
    /// Initial STUN retransmission timeout (RFC 8489 section 6.2.1): 500 ms.
    pub rto: Duration,
    /// Transmissions of one check before it fails (Rc): 7.
    pub max_sends: u32,
    /// Transmissions of one STUN-server binding while gathering: 4.
    pub gather_sends: u32,
    /// How long the controlling agent waits at most, after a pair through
    /// a relay succeeded, for a direct pair (host, server- or
    /// peer-reflexive) of higher priority still being checked before it
    /// nominates the relayed one: 500 ms. A direct pair is nominated as
    /// soon as it is the best that succeeded.
    pub nomination_wait: Duration,
    /// Mean interval of consent checks (RFC 7675: 5 s, randomised by ±20%).
    pub consent_interval: Duration,
    /// Consent expires without a response for this long (RFC 7675): 30 s.
    pub consent_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            ta: Duration::from_millis(50),
            rto: Duration::from_millis(500),
            max_sends: 7,
            gather_sends: 4,
            nomination_wait: Duration::from_millis(500),
            consent_interval: Duration::from_secs(5),
            consent_timeout: Duration::from_secs(30),
        }
    }
}

/// Configuration of an [`Agent`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Controlling (caller) or controlled (callee).
    pub role: Role,
    /// STUN servers for server-reflexive candidates.
    pub stun_servers: Vec<SocketAddr>,
    /// TURN servers for relayed candidates.
    pub turn_servers: Vec<TurnServer>,
    /// Offer and use only relayed candidates (hides the local addresses).
    pub relay_only: bool,
    /// Timers.
    pub timers: Timers,
    /// Local credentials; generated at random when `None`.
    pub local_credentials: Option<Credentials>,
    /// Seed for the agent's RNG (tests); from the OS when `None`.
    pub seed: Option<u64>,
}

impl AgentConfig {
    /// A configuration with no servers and default timers.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            relay_only: false,
            timers: Timers::default(),
            local_credentials: None,
            seed: None,
        }
    }
    /// Adds a STUN server.
    pub fn with_stun_server(mut self, addr: SocketAddr) -> Self {
        self.stun_servers.push(addr);
        self
    }
    /// Adds a TURN server.
    pub fn with_turn_server(mut self, server: TurnServer) -> Self {
        self.turn_servers.push(server);
        self
    }
    /// Sets the relay-only policy.
    pub fn with_relay_only(mut self, relay_only: bool) -> Self {
        self.relay_only = relay_only;
        self
    }
    /// Sets the timers.
    pub fn with_timers(mut self, timers: Timers) -> Self {
        self.timers = timers;
        self
    }
    /// Seeds the RNG (deterministic tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// The kind of path a selected pair uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathKind {
    /// Host candidate to host candidate.
    Host,
    /// Through a NAT mapping learnt from a STUN server.
    ServerReflexive,
    /// Through a NAT mapping learnt from the checks themselves.
    PeerReflexive,
    /// Through a TURN relay (ours or the peer's).
    Relay,
}

/// The pair ICE selected. Its `Debug` hides the addresses unless
/// the crate is built with the `pii` feature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SelectedPair {
    /// What kind of path this is.
    pub kind: PathKind,
    /// Local candidate address (relayed address for a local relay).
    pub local: SocketAddr,
    /// Remote candidate address.
    pub remote: SocketAddr,
}

impl std::fmt::Debug for SelectedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedPair")
            .field("kind", &self.kind)
            .field("local", &Pii(self.local))
            .field("remote", &Pii(self.remote))
            .finish()
    }
}

/// What the agent tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A local candidate to send to the peer (as `candidate.to_sdp_string()`).
    CandidateGathered(Candidate),
    /// All local candidates were gathered: signal end-of-candidates.
    GatheringDone,
    /// A pair was selected (or a better one replaced it).
    Selected(SelectedPair),
    /// Consent expired on the selected pair: the path is lost. Restart ICE
    /// to recover.
    PathLost,
    /// Every pair failed after the peer signalled end-of-candidates.
    Failed,
    /// ICE restarted with these new local credentials; candidates follow
    /// again as `CandidateGathered` events.
    Restarted(Credentials),
}

/// Overall connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Checks not started or running.
    Checking,
    /// A pair is selected and consent is fresh.
    Connected,
    /// Consent was lost; waiting for a restart.
    Disconnected,
    /// All pairs failed.
    Failed,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Local base address to send from (the socket's address).
    pub source: SocketAddr,
    /// Where to send.
    pub destination: SocketAddr,
    /// The datagram (over a stream: one whole message, already framed).
    pub contents: Vec<u8>,
    /// How to send it: UDP from `source`, or on the TCP or TLS stream to
    /// the TURN server at `destination` (opened on first use).
    pub transport: Transport,
}

/// What an input datagram was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// STUN or TURN control traffic, consumed by the agent.
    Consumed,
    /// Application data (DTLS or SRTP) from the peer, at this range of the
    /// input (ChannelData and Data indications are unwrapped in place).
    Media(Range<usize>),
    /// Invalid, unexpected or unauthenticated: dropped.
    Dropped,
}

/// How the driver sends application data on the selected pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// Straight to the peer.
    Direct {
        /// Peer address.
        peer: SocketAddr,
    },
    /// Through our TURN allocation.
    Relay {
        /// The TURN server.
        server: SocketAddr,
        /// The peer address as the relay sees it.
        peer: SocketAddr,
        /// Bound channel: ChannelData framing; `None`: Send indications.
        channel: Option<u16>,
        /// How the TURN server is reached (over a stream, ChannelData is
        /// padded to 4 bytes).
        transport: Transport,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Frozen,
    Waiting,
    InProgress,
    Succeeded,
    Failed,
}

struct Local {
    cand: Candidate,
    base: SocketAddr,
    turn: Option<usize>,
}

struct Pair {
    local: usize,
    remote: usize,
    prio: u64,
    state: PairState,
    /// Kind of the local candidate the peer saw (from XOR-MAPPED-ADDRESS).
    mapped: CandidateKind,
    nominated: bool,
    /// Controlled side: the peer sent USE-CANDIDATE on this pair.
    use_candidate: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CheckKind {
    Ordinary,
    Nominate,
    Consent,
}

struct Check {
    id: [u8; 12],
    pair: usize,
    kind: CheckKind,
    bytes: Vec<u8>,
    next: Instant,
    rto: Duration,
    sends: u32,
    /// Replaced by a triggered check: not retransmitted, and ending
    /// without failing the pair, but its answer still counts (RFC 8445
    /// section 7.3.1.4).
    cancelled: bool,
    /// The role the request claimed (a 487 answer switches from it only).
    controlling: bool,
    /// Sent because the peer's request showed the path open: a further
    /// request does not replace it while it is unanswered (no ping-pong of
    /// cancellations between two agents far apart).
    triggered: bool,
}

struct Gather {
    id: [u8; 12],
    server: SocketAddr,
    base: SocketAddr,
    bytes: Vec<u8>,
    next: Instant,
    rto: Duration,
    sends: u32,
}

/// A sans-IO ICE agent: RFC 8445 full ICE for one UDP component, with STUN
/// server-reflexive and TURN relayed candidates, trickle, regular nomination
/// (and acceptance of aggressive nomination), consent freshness (RFC 7675)
/// and ICE restart.
///
/// # How to drive it
///
/// The agent does no I/O and never reads the clock. Its owner:
/// 1. adds host candidates ([`add_host`](Self::add_host)) and calls
///    [`gather`](Self::gather);
/// 2. feeds every datagram that arrives with
///    [`handle_input`](Self::handle_input), every whole message read from
///    the TCP or TLS stream to a TURN server with
///    [`handle_stream_input`](Self::handle_stream_input) (split by a
///    [`StreamDecoder`](crate::StreamDecoder)) and such a stream's end with
///    [`stream_closed`](Self::stream_closed), and remote credentials and
///    candidates from signaling as they come;
/// 3. after each call, drains [`poll_transmit`](Self::poll_transmit) (send
///    each datagram over UDP, or write it on the stream to its destination
///    when its [`transport`](Transmit::transport) is TCP or TLS, opening
///    that stream on first use) and [`poll_event`](Self::poll_event) until
///    both return `None`;
/// 4. calls [`handle_timeout`](Self::handle_timeout) when the instant from
///    [`poll_timeout`](Self::poll_timeout) has come, then drains again.
///
/// Application data goes out on [`route`](Self::route).
pub struct Agent {
    timers: Timers,
    relay_only: bool,
    rng: StdRng,
    controlling: bool,
    tie_breaker: u64,
    local_creds: Credentials,
    local_key: HMACKey,
    remote_creds: Option<(Credentials, HMACKey)>,
    stun_servers: Vec<SocketAddr>,
    turn_servers: Vec<TurnServer>,
    locals: Vec<Local>,
    remotes: Vec<Candidate>,
    remote_done: bool,
    pairs: Vec<Pair>,
    triggered: VecDeque<usize>,
    checks: Vec<Check>,
    gathers: Vec<Gather>,
    turns: Vec<TurnClient>,
    gathering: Option<bool>,
    next_pace: Option<Instant>,
    last_check: Option<Instant>,
    first_valid: Option<Instant>,
    selected: Option<usize>,
    selected_at: Instant,
    /// When the peer's media last came on the selected pair.
    selected_heard: Instant,
    consent_ok: Instant,
    consent_next: Instant,
    state: ConnectionState,
    failed_reported: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Agent {
    /// A new agent. Fails only on invalid configured credentials.
    pub fn new(config: AgentConfig, now: Instant) -> Result<Self, Error> {
        let mut rng = match config.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let local_creds = match config.local_credentials {
            Some(c) => Credentials::new(c.ufrag, c.pwd)?,
            None => Credentials::random(&mut rng),
        };
        let local_key = HMACKey::new_short_term(local_creds.pwd.as_str())
            .map_err(|_| Error::InvalidCredentials)?;
        if config.timers.ta.is_zero() || config.timers.rto.is_zero() {
            return Err(Error::InvalidConfig("zero timer"));
        }
        Ok(Self {
            tie_breaker: rng.random(),
            timers: config.timers,
            relay_only: config.relay_only,
            rng,
            controlling: config.role == Role::Controlling,
            local_creds,
            local_key,
            remote_creds: None,
            stun_servers: config.stun_servers,
            turn_servers: config.turn_servers,
            locals: Vec::new(),
            remotes: Vec::new(),
            remote_done: false,
            pairs: Vec::new(),
            triggered: VecDeque::new(),
            checks: Vec::new(),
            gathers: Vec::new(),
            turns: Vec::new(),
            gathering: None,
            next_pace: None,
            last_check: None,
            first_valid: None,
            selected: None,
            selected_at: now,
            selected_heard: now,
            consent_ok: now,
            consent_next: now,
            state: ConnectionState::Checking,
            failed_reported: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// The local ICE credentials to send to the peer.
    pub fn local_credentials(&self) -> &Credentials {
        &self.local_creds
    }

    /// The current role.
    pub fn role(&self) -> Role {
        if self.controlling {
            Role::Controlling
        } else {
            Role::Controlled
        }
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The selected pair, if any.
    pub fn selected(&self) -> Option<SelectedPair> {
        self.selected.map(|p| self.describe(p))
    }

    /// Adds a host candidate: a local address the socket receives on.
    /// Call before [`gather`](Self::gather).
    pub fn add_host(&mut self, addr: SocketAddr) {
        if self.locals.iter().any(|l| l.base == addr) || addr.ip().is_unspecified() {
            return;
        }
        let hosts = self
            .locals
            .iter()
            .filter(|l| l.cand.kind() == CandidateKind::Host)
            .count() as u16;
        let pref = if addr.is_ipv6() { 65535 } else { 65279 } - hosts;
        let cand = Candidate::new(
            CandidateKind::Host,
            addr,
            None,
            pref,
            &addr.ip().to_string(),
        );
        self.push_local(cand, addr, None);
    }

    /// Starts gathering: host candidates are announced, STUN bindings and
    /// TURN allocations start. Call once.
    pub fn gather(&mut self, now: Instant) {
        if self.gathering.is_some() {
            return;
        }
        self.gathering = Some(false);
        if !self.relay_only {
            for l in &self.locals {
                self.events
                    .push_back(Event::CandidateGathered(l.cand.clone()));
            }
        }
        let bases: Vec<SocketAddr> = self.locals.iter().map(|l| l.base).collect();
        let servers = std::mem::take(&mut self.stun_servers);
        for server in &servers {
            if self.relay_only {
                break;
            }
            for base in bases.iter().filter(|b| b.is_ipv4() == server.is_ipv4()) {
                let id: [u8; 12] = self.rng.random();
                let b = StunMessageBuilder::new(BINDING, MessageClass::Request)
                    .with_transaction_id(TransactionId::from(id));
                if let Some(bytes) = stun::encode(b, None) {
                    self.transmits.push_back(Transmit {
                        source: *base,
                        destination: *server,
                        contents: bytes.clone(),
                        transport: Transport::Udp,
                    });
                    self.gathers.push(Gather {
                        id,
                        server: *server,
                        base: *base,
                        bytes,
                        next: now + self.timers.rto,
                        rto: self.timers.rto,
                        sends: 1,
                    });
                }
            }
        }
        self.stun_servers = servers;
        for server in &self.turn_servers {
            if let Some(base) = bases.iter().find(|b| b.is_ipv4() == server.addr.is_ipv4()) {
                let mut t = TurnClient::new(server, *base, self.timers.rto);
                t.start(now, &mut self.rng);
                self.turns.push(t);
            }
        }
        self.drain_turn(now);
        self.check_gathering_done();
    }

    /// Sets (or, after a restart of the peer, replaces) the peer's
    /// credentials. New credentials mean an ICE restart of the peer: remote
    /// candidates and pairs are dropped.
    pub fn set_remote_credentials(
        &mut self,
        now: Instant,
        creds: Credentials,
    ) -> Result<(), Error> {
        let creds = Credentials::new(creds.ufrag, creds.pwd)?;
        if self.remote_creds.as_ref().is_some_and(|(c, _)| *c == creds) {
            return Ok(());
        }
        let key =
            HMACKey::new_short_term(creds.pwd.as_str()).map_err(|_| Error::InvalidCredentials)?;
        if self.remote_creds.is_some() {
            self.clear_remote();
        }
        self.remote_creds = Some((creds, key));
        self.start_pacing(now);
        Ok(())
    }

    /// Adds a remote candidate from a `candidate:` attribute string.
    pub fn add_remote_candidate_str(&mut self, now: Instant, s: &str) -> Result<(), Error> {
        self.add_remote_candidate(now, Candidate::parse(s)?)
    }

    /// Adds a remote candidate (trickle: at any time).
    pub fn add_remote_candidate(&mut self, now: Instant, cand: Candidate) -> Result<(), Error> {
        if let Some(i) = self.remotes.iter().position(|r| r.addr() == cand.addr()) {
            // A signaled candidate replaces a peer-reflexive one we learnt.
            if self.remotes[i].kind() == CandidateKind::PeerReflexive {
                self.remotes[i] = cand;
            }
            return Ok(());
        }
        if self.remotes.len() >= MAX_REMOTE {
            return Err(Error::TooManyCandidates);
        }
        self.remotes.push(cand);
        let r = self.remotes.len() - 1;
        for l in 0..self.locals.len() {
            self.make_pair(now, l, r);
        }
        self.start_pacing(now);
        Ok(())
    }

    /// The peer signalled end-of-candidates.
    pub fn remote_end_of_candidates(&mut self) {
        self.remote_done = true;
    }

    /// Restarts ICE (RFC 8445 section 2.4): new local credentials, remote
    /// state dropped, local candidates announced again. TURN allocations are
    /// kept. Send the new credentials and candidates to the peer, and set
    /// its new credentials when they come.
    pub fn restart(&mut self, now: Instant) {
        self.local_creds = Credentials::random(&mut self.rng);
        if let Ok(k) = HMACKey::new_short_term(self.local_creds.pwd.as_str()) {
            self.local_key = k;
        }
        self.clear_remote();
        self.remote_creds = None;
        self.state = ConnectionState::Checking;
        self.locals
            .retain(|l| l.cand.kind() != CandidateKind::PeerReflexive);
        self.events
            .push_back(Event::Restarted(self.local_creds.clone()));
        if !self.relay_only {
            for l in &self.locals {
                self.events
                    .push_back(Event::CandidateGathered(l.cand.clone()));
            }
        } else {
            for l in self
                .locals
                .iter()
                .filter(|l| l.cand.kind() == CandidateKind::Relayed)
            {
                self.events
                    .push_back(Event::CandidateGathered(l.cand.clone()));
            }
        }
        if self.gathering == Some(true) {
            self.events.push_back(Event::GatheringDone);
        }
        let _ = now;
    }

    /// Moves the agent to a new set of local addresses (the host's network
    /// changed) without an ICE restart: the credentials and the peer's
    /// candidates are kept, TURN allocations and server-reflexive candidates
    /// of the old addresses are dropped, the new host candidates are
    /// announced again (`CandidateGathered`, then `GatheringDone`), STUN and
    /// TURN gathering starts over, and every new local pairs with every
    /// remote candidate for fresh checks. The selected pair is dropped (its
    /// local address may be gone): a new one is selected as checks succeed,
    /// so the peer hears us again without any signaling when we control the
    /// nomination. Restart afterwards if the peer must learn new
    /// credentials.
    pub fn rebind(&mut self, now: Instant, hosts: &[SocketAddr]) {
        for t in &mut self.turns {
            t.close(now, &mut self.rng);
        }
        self.drain_turn(now);
        let remotes = std::mem::take(&mut self.remotes);
        let remote_done = self.remote_done;
        self.clear_remote();
        self.remote_done = remote_done;
        self.locals.clear();
        self.turns.clear();
        self.gathers.clear();
        self.gathering = None;
        self.last_check = None;
        self.state = ConnectionState::Checking;
        for h in hosts {
            self.add_host(*h);
        }
        self.gather(now);
        self.remotes = remotes;
        for r in 0..self.remotes.len() {
            for l in 0..self.locals.len() {
                self.make_pair(now, l, r);
            }
        }
        self.start_pacing(now);
    }

    /// When the selected pair last proved it works both ways (an
    /// authenticated answer to one of our checks on it); `None` without a
    /// selected pair.
    pub fn consent_fresh_since(&self) -> Option<Instant> {
        self.selected.map(|_| self.consent_ok)
    }

    /// Sends a consent check on the selected pair now, besides the regular
    /// ones (to learn soon whether a silent path works again). Nothing
    /// without a selected pair.
    pub fn probe_consent(&mut self, now: Instant) {
        if let Some(p) = self.selected {
            self.checks
                .retain(|c| c.pair != p || c.kind != CheckKind::Consent);
            self.send_check(now, p, CheckKind::Consent);
        }
    }

    /// Closes the agent: TURN allocations are deleted.
    pub fn close(&mut self, now: Instant) {
        for t in &mut self.turns {
            t.close(now, &mut self.rng);
        }
        self.drain_turn(now);
        self.clear_remote();
    }

    fn clear_remote(&mut self) {
        self.remotes.clear();
        self.pairs.clear();
        self.triggered.clear();
        self.checks.clear();
        self.selected = None;
        self.first_valid = None;
        self.remote_done = false;
        self.failed_reported = false;
        self.next_pace = None;
    }

    /// How application data is sent on the selected pair.
    pub fn route(&self) -> Option<Route> {
        let p = &self.pairs[self.selected?];
        let l = &self.locals[p.local];
        let peer = self.remotes[p.remote].addr();
        Some(match l.turn {
            Some(t) => Route::Relay {
                server: self.turns[t].server,
                peer,
                channel: self.turns[t].channel_for(peer),
                transport: self.turns[t].transport,
            },
            None => Route::Direct { peer },
        })
    }

    /// Wraps one application datagram (DTLS, SRTP) for the selected pair:
    /// straight to the peer, or through our TURN allocation as ChannelData
    /// (a Send indication until the channel is bound). `None` when no pair
    /// is selected or the datagram is too large to relay.
    pub fn transmit_app(&mut self, datagram: &[u8]) -> Option<Transmit> {
        let p = &self.pairs[self.selected?];
        let l = &self.locals[p.local];
        let peer = self.remotes[p.remote].addr();
        match l.turn {
            None => Some(Transmit {
                source: l.base,
                destination: peer,
                contents: datagram.to_vec(),
                transport: Transport::Udp,
            }),
            Some(t) => {
                let tc = &self.turns[t];
                let contents = tc.wrap(peer, datagram, &mut self.rng)?;
                Some(Transmit {
                    source: tc.base,
                    destination: tc.server,
                    contents,
                    transport: tc.transport,
                })
            }
        }
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        for c in &self.checks {
            min(c.next);
        }
        for g in &self.gathers {
            min(g.next);
        }
        for tc in &self.turns {
            if let Some(x) = tc.poll_timeout() {
                min(x);
            }
        }
        if let Some(p) = self.next_pace {
            if self.has_work() {
                min(p);
            }
        }
        if self.controlling
            && self.selected.is_none()
            && !self.nominating()
            && self.pairs.iter().any(|p| p.state == PairState::Succeeded)
        {
            if let Some(f) = self.first_valid {
                min(f + self.timers.nomination_wait);
            }
        }
        if self.selected.is_some() {
            min(self.consent_next);
            min(self.consent_ok + self.timers.consent_timeout);
        }
        t
    }

    /// Handles timers: retransmissions, pacing, nomination, consent.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Connectivity check retransmissions (RFC 8489 section 6.2.1).
        let mut failed = Vec::new();
        let mut resend = Vec::new();
        let mut expired = Vec::new();
        for c in &mut self.checks {
            if c.next > now {
                continue;
            }
            if c.cancelled {
                expired.push(c.id);
                continue;
            }
            if c.kind == CheckKind::Consent || c.sends >= self.timers.max_sends {
                failed.push(c.id);
                continue;
            }
            c.sends += 1;
            c.rto *= 2;
            c.next = now + c.rto;
            resend.push((c.pair, c.bytes.clone()));
        }
        for (pair, bytes) in resend {
            let (l, dst) = (
                self.pairs[pair].local,
                self.remotes[self.pairs[pair].remote].addr(),
            );
            self.send_from(now, l, dst, bytes);
        }
        self.checks.retain(|c| !expired.contains(&c.id));
        for id in failed {
            if let Some(i) = self.checks.iter().position(|c| c.id == id) {
                let c = self.checks.swap_remove(i);
                if c.kind != CheckKind::Consent {
                    self.pairs[c.pair].state = PairState::Failed;
                }
            }
        }
        // Gathering retransmissions.
        let mut done = Vec::new();
        for g in &mut self.gathers {
            if g.next > now {
                continue;
            }
            if g.sends >= self.timers.gather_sends {
                done.push(g.id);
                continue;
            }
            g.sends += 1;
            g.rto *= 2;
            g.next = now + g.rto;
            self.transmits.push_back(Transmit {
                source: g.base,
                destination: g.server,
                contents: g.bytes.clone(),
                transport: Transport::Udp,
            });
        }
        self.gathers.retain(|g| !done.contains(&g.id));
        for t in &mut self.turns {
            t.handle_timeout(now, &mut self.rng);
        }
        self.drain_turn(now);
        self.check_gathering_done();
        // Pacing: one check per Ta.
        if self.next_pace.is_some_and(|p| p <= now) {
            // Idle when nothing was sent: new work restarts pacing at once.
            self.next_pace = if self.start_next_check(now) {
                self.last_check = Some(now);
                Some(now + self.timers.ta)
            } else {
                None
            };
        }
        self.maybe_nominate(now);
        self.consent(now);
        self.check_failed();
    }

    /// Handles a datagram that arrived from `source` on the local address
    /// `destination` (the host candidate address the socket is bound to).
    pub fn handle_input(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Received {
        if PacketKind::of(data) == PacketKind::Stun {
            let txid = stun::header(data).map(|h| h.txid);
            if let Some(i) = self
                .gathers
                .iter()
                .position(|g| g.server == source && Some(g.id) == txid)
            {
                self.handle_gather_response(i, data);
                return Received::Consumed;
            }
        }
        if let Some(t) = self
            .turns
            .iter()
            .position(|t| t.server == source && t.transport == Transport::Udp)
        {
            return self.handle_from_turn(now, t, data);
        }
        let local = self
            .locals
            .iter()
            .position(|l| l.base == destination && l.turn.is_none())
            .or_else(|| {
                self.locals.iter().position(|l| {
                    l.cand.kind() == CandidateKind::Host && l.base.is_ipv4() == source.is_ipv4()
                })
            });
        match local {
            Some(l) if !self.relay_only => self.handle_from_peer(now, source, l, data),
            _ => Received::Dropped,
        }
    }

    /// Handles one whole message that arrived on the TCP or TLS stream to
    /// the TURN server `server` (split from the stream by a
    /// [`StreamDecoder`](crate::StreamDecoder)).
    pub fn handle_stream_input(
        &mut self,
        now: Instant,
        server: SocketAddr,
        transport: Transport,
        message: &[u8],
    ) -> Received {
        match self
            .turns
            .iter()
            .position(|t| t.server == server && t.transport == transport)
        {
            Some(t) => self.handle_from_turn(now, t, message),
            None => Received::Dropped,
        }
    }

    /// The TCP or TLS stream to the TURN server `server` closed (or could
    /// not be opened): its allocation is gone, every pair through it fails,
    /// and a selected pair through it is lost at once
    /// ([`Event::PathLost`]).
    pub fn stream_closed(&mut self, now: Instant, server: SocketAddr, transport: Transport) {
        let Some(t) = self
            .turns
            .iter()
            .position(|t| t.server == server && t.transport == transport)
        else {
            return;
        };
        self.turns[t].stream_closed();
        self.turns[t].changed = false;
        let mut lost = false;
        for p in 0..self.pairs.len() {
            if self.locals[self.pairs[p].local].turn == Some(t) {
                self.pairs[p].state = PairState::Failed;
                lost |= self.selected == Some(p);
                self.checks.retain(|c| c.pair != p);
            }
        }
        if lost {
            tracing::info!("TURN stream closed under the selected pair: path lost");
            self.selected = None;
            self.state = ConnectionState::Disconnected;
            self.events.push_back(Event::PathLost);
        }
        self.check_gathering_done();
        self.check_failed();
        let _ = now;
    }

    fn handle_from_turn(&mut self, now: Instant, t: usize, data: &[u8]) -> Received {
        let r = self.turns[t].handle_input(now, &mut self.rng, data);
        self.drain_turn(now);
        self.check_gathering_done();
        match r {
            FromServer::Consumed => Received::Consumed,
            FromServer::Dropped => Received::Dropped,
            FromServer::Data(peer, range) => {
                let Some(local) = self.locals.iter().position(|l| l.turn == Some(t)) else {
                    return Received::Dropped;
                };
                match self.handle_from_peer(now, peer, local, &data[range.clone()]) {
                    Received::Media(r) => {
                        Received::Media(range.start + r.start..range.start + r.end)
                    }
                    other => other,
                }
            }
        }
    }

    fn handle_from_peer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: usize,
        data: &[u8],
    ) -> Received {
        let kind = PacketKind::of(data);
        if kind.is_media() {
            // Only from a peer we hold a working pair with.
            let ok = self.pairs.iter().any(|p| {
                self.same_path(p.local, local)
                    && p.state == PairState::Succeeded
                    && self.remotes[p.remote].addr() == from
            });
            if ok
                && self
                    .selected
                    .is_some_and(|s| self.remotes[self.pairs[s].remote].addr() == from)
            {
                self.selected_heard = now;
            }
            return if ok {
                Received::Media(0..data.len())
            } else {
                Received::Dropped
            };
        }
        if kind != PacketKind::Stun {
            return Received::Dropped;
        }
        let Some(h) = stun::header(data) else {
            return Received::Dropped;
        };
        if h.method() != BINDING.as_u16() {
            return Received::Dropped;
        }
        match h.class() {
            0 => self.handle_request(now, from, local, h.txid, data),
            2 | 3 => self.handle_response(now, from, local, h.txid, h.class() == 2, data),
            _ => Received::Consumed, // binding indications: keepalives
        }
    }

    /// Answers the request `txid` from `to` on `local`. An error to a
    /// request that did not authenticate (`with_mi` false) is sent only
    /// when it is no larger than the request (`request_len`): a forged
    /// source gains nothing by reflection.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        (local, to): (usize, SocketAddr),
        txid: [u8; 12],
        error: Option<(u16, &str)>,
        unknown: &[u16],
        with_mi: bool,
        request_len: usize,
    ) {
        let class = if error.is_some() {
            MessageClass::ErrorResponse
        } else {
            MessageClass::SuccessResponse
        };
        let mut b =
            StunMessageBuilder::new(BINDING, class).with_transaction_id(TransactionId::from(txid));
        match error {
            Some((code, reason)) => {
                if let Ok(e) = stun_rs::ErrorCode::new(code, reason) {
                    b = b.with_attribute(ErrorCode::new(e));
                }
                if !unknown.is_empty() {
                    b = b.with_attribute(UnknownAttributes::from(unknown));
                }
            }
            None => b = b.with_attribute(XorMappedAddress::from(to)),
        }
        let key = with_mi.then(|| self.local_key.clone());
        let Some(bytes) = stun::encode(b, key.as_ref()) else {
            return;
        };
        if !with_mi && bytes.len() > request_len {
            tracing::trace!("unauthenticated request: error response larger than it, not sent");
            return;
        }
        self.send_from(now, local, to, bytes);
    }

    fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: usize,
        txid: [u8; 12],
        data: &[u8],
    ) -> Received {
        let to = (local, from);
        let Some(msg) = stun::decode(data, None) else {
            return Received::Dropped;
        };
        let Some(msg) = self.authenticate_request(now, to, txid, data, &msg) else {
            return Received::Consumed;
        };
        let Some(prio) = msg
            .get::<Priority>()
            .and_then(|p| p.as_priority().ok())
            .map(|p| p.as_u32())
        else {
            let error = Some((400, "Bad Request"));
            self.respond(now, to, txid, error, &[], true, data.len());
            return Received::Consumed;
        };
        if self.role_conflict(now, to, txid, &msg) {
            return Received::Consumed;
        }
        let use_candidate = msg.get::<UseCandidate>().is_some();
        self.respond(now, to, txid, None, &[], true, data.len());
        self.learn_from_request(now, from, local, prio, use_candidate);
        Received::Consumed
    }

    /// Checks a decoded Binding request's USERNAME and MESSAGE-INTEGRITY
    /// against our credentials; answers 420, 400 or 401 (within the
    /// request's size) and returns `None` when it fails.
    fn authenticate_request(
        &mut self,
        now: Instant,
        to: (usize, SocketAddr),
        txid: [u8; 12],
        data: &[u8],
        msg: &StunMessage,
    ) -> Option<StunMessage> {
        let len = data.len();
        let unknown = stun::unknown_required(msg);
        if !unknown.is_empty() {
            let error = Some((420, "Unknown Attribute"));
            self.respond(now, to, txid, error, &unknown, false, len);
            return None;
        }
        let username = msg
            .get::<UserName>()
            .and_then(|u| u.as_user_name().ok())
            .map(|u| u.as_str().to_owned());
        let (Some(username), true) = (username, stun::has_integrity(msg)) else {
            self.respond(now, to, txid, Some((400, "Bad Request")), &[], false, len);
            return None;
        };
        let ours = username
            .split_once(':')
            .is_some_and(|(l, _)| l == self.local_creds.ufrag);
        let key = self.local_key.clone();
        let msg = ours.then(|| stun::decode(data, Some(&key))).flatten();
        if msg.is_none() {
            self.respond(now, to, txid, Some((401, "Unauthorized")), &[], false, len);
        }
        msg
    }

    /// Resolves a role conflict (RFC 8445 section 7.3.1.1): switches role,
    /// or answers 487 and returns `true` (the request goes no further).
    fn role_conflict(
        &mut self,
        now: Instant,
        to: (usize, SocketAddr),
        txid: [u8; 12],
        msg: &StunMessage,
    ) -> bool {
        let theirs_controlling = msg
            .get::<IceControlling>()
            .and_then(|a| a.as_ice_controlling().ok())
            .map(|a| a.as_u64());
        let theirs_controlled = msg
            .get::<IceControlled>()
            .and_then(|a| a.as_ice_controlled().ok())
            .map(|a| a.as_u64());
        let conflict = if self.controlling {
            theirs_controlling.map(|tb| self.tie_breaker >= tb)
        } else {
            theirs_controlled.map(|tb| self.tie_breaker < tb)
        };
        match conflict {
            // We keep our role: the peer must switch.
            Some(true) => {
                self.respond(now, to, txid, Some((487, "Role Conflict")), &[], true, 0);
                true
            }
            Some(false) => {
                self.switch_role();
                false
            }
            None => false,
        }
    }

    /// After an authenticated request: learns a peer-reflexive remote
    /// candidate (RFC 8445 section 7.3.1.3), schedules a triggered check
    /// (section 7.3.1.4) and follows a nomination.
    fn learn_from_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: usize,
        prio: u32,
        use_candidate: bool,
    ) {
        let r = match self.remotes.iter().position(|r| r.addr() == from) {
            Some(r) => r,
            None => {
                if self.remotes.len() >= MAX_REMOTE {
                    return;
                }
                tracing::debug!(remote = %Pii(from), "peer-reflexive remote candidate");
                self.remotes.push(Candidate::peer_reflexive(from, prio));
                self.remotes.len() - 1
            }
        };
        let Some(p) = self.make_pair(now, local, r) else {
            return;
        };
        // Triggered check (RFC 8445 section 7.3.1.4): unless the pair
        // already succeeded, check it now, cancelling a check in progress
        // (whose answer still counts). Its first datagram may have been
        // dropped by the peer's NAT before the peer's own check opened the
        // way (the peer's request says it is open now), or it may sit in
        // retransmission backoff after a blackout: waiting for its next
        // retransmission would cost 500 ms or more. A triggered check still
        // on its first transmission is left to its answer.
        let fresh_trigger = self.checks.iter().any(|c| {
            c.pair == p
                && c.kind != CheckKind::Consent
                && !c.cancelled
                && c.sends == 1
                && c.triggered
        });
        if self.pairs[p].state != PairState::Succeeded
            && !(self.pairs[p].state == PairState::InProgress && fresh_trigger)
        {
            self.pairs[p].state = PairState::Waiting;
            if !self.triggered.contains(&p) {
                self.triggered.push_back(p);
            }
            self.start_pacing(now);
        }
        if use_candidate && !self.controlling {
            self.pairs[p].use_candidate = true;
            if self.pairs[p].state == PairState::Succeeded {
                self.nominate(now, p);
            }
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: usize,
        txid: [u8; 12],
        success: bool,
        data: &[u8],
    ) -> Received {
        let Some(i) = self.checks.iter().position(|c| c.id == txid) else {
            return Received::Dropped;
        };
        let Some((_, key)) = &self.remote_creds else {
            return Received::Dropped;
        };
        let key = key.clone();
        let Some(msg) = stun::decode(data, Some(&key)) else {
            return Received::Dropped;
        };
        if !stun::has_integrity(&msg) {
            return Received::Dropped;
        }
        let c = self.checks.swap_remove(i);
        let p = c.pair;
        // Non-symmetric addresses fail the check (RFC 8445 section 7.2.5.2.1).
        if self.remotes[self.pairs[p].remote].addr() != from
            || !self.same_path(self.pairs[p].local, local)
        {
            self.pairs[p].state = PairState::Failed;
            return Received::Consumed;
        }
        if !success {
            if stun::error_code(&msg) == Some(487) && c.kind != CheckKind::Consent {
                // Several checks of the pair may be answered 487 (a
                // cancelled one and its replacement): switch once.
                if c.controlling == self.controlling {
                    self.switch_role();
                }
                self.pairs[p].state = PairState::Waiting;
                self.triggered.push_back(p);
                self.start_pacing(now);
            } else if c.kind != CheckKind::Consent {
                self.pairs[p].state = PairState::Failed;
            }
            return Received::Consumed;
        }
        self.on_success(now, p, c.kind, &msg);
        Received::Consumed
    }

    fn on_success(&mut self, now: Instant, p: usize, kind: CheckKind, msg: &StunMessage) {
        if self.selected == Some(p) {
            self.consent_ok = now;
        }
        if kind == CheckKind::Consent {
            return;
        }
        let mapped_kind = match stun::xor_mapped(msg) {
            Some(m) => match self.locals.iter().find(|l| l.cand.addr() == m) {
                Some(l) => l.cand.kind(),
                None if self.locals.len() >= MAX_REMOTE => CandidateKind::PeerReflexive,
                None => {
                    // A new local peer-reflexive candidate (not signalled).
                    let base = self.locals[self.pairs[p].local].base;
                    let cand = Candidate::new(
                        CandidateKind::PeerReflexive,
                        m,
                        Some(base),
                        65535,
                        &base.ip().to_string(),
                    );
                    self.locals.push(Local {
                        cand,
                        base,
                        turn: None,
                    });
                    CandidateKind::PeerReflexive
                }
            },
            None => self.locals[self.pairs[p].local].cand.kind(),
        };
        let pair = &mut self.pairs[p];
        pair.state = PairState::Succeeded;
        pair.mapped = mapped_kind;
        self.first_valid.get_or_insert(now);
        // Unfreeze pairs with the same foundation (RFC 8445 section 7.2.5.3.3).
        let (f0, f1) = self.pair_foundation(p);
        let f = (f0.to_owned(), f1.to_owned());
        for q in 0..self.pairs.len() {
            if self.pairs[q].state == PairState::Frozen
                && self.pair_foundation(q) == (f.0.as_str(), f.1.as_str())
            {
                self.pairs[q].state = PairState::Waiting;
            }
        }
        self.start_pacing(now);
        let l = self.pairs[p].local;
        if let Some(t) = self.locals[l].turn {
            let peer = self.remotes[self.pairs[p].remote].addr();
            self.turns[t].bind_channel(now, &mut self.rng, peer);
            self.drain_turn(now);
        }
        if kind == CheckKind::Nominate || (!self.controlling && self.pairs[p].use_candidate) {
            self.nominate(now, p);
        }
        self.maybe_nominate(now);
    }

    fn nominate(&mut self, now: Instant, p: usize) {
        self.pairs[p].nominated = true;
        // The controlled agent takes a nominated pair of higher priority
        // (aggressive nomination nominates several at once), and follows a
        // nomination whatever its priority when it comes well after its
        // selection or while the selected pair is silent: the controlling
        // agent moved (its network changed).
        let better = match self.selected {
            None => true,
            Some(s) => {
                s != p
                    && (self.controlling
                        || self.pairs[p].prio > self.pairs[s].prio
                        || now >= self.selected_at + RENOMINATION_AFTER
                        || now >= self.selected_heard + SELECTED_SILENT)
            }
        };
        if better || self.state == ConnectionState::Disconnected {
            self.selected = Some(p);
            self.selected_at = now;
            self.selected_heard = now;
            self.state = ConnectionState::Connected;
            self.consent_ok = now;
            self.consent_next = now + self.consent_delay();
            let sp = self.describe(p);
            tracing::info!(kind = ?sp.kind, "ICE selected a pair");
            self.events.push_back(Event::Selected(sp));
        }
    }

    fn nominating(&self) -> bool {
        self.checks.iter().any(|c| c.kind == CheckKind::Nominate)
    }

    fn maybe_nominate(&mut self, now: Instant) {
        if !self.controlling || self.selected.is_some() || self.nominating() {
            return;
        }
        let Some(best) = (0..self.pairs.len())
            .filter(|&p| self.pairs[p].state == PairState::Succeeded)
            .max_by_key(|&p| self.pairs[p].prio)
        else {
            return;
        };
        // A direct pair is good enough at once (regular nomination still:
        // USE-CANDIDATE on a pair that succeeded); a relayed one waits for
        // better pairs still being checked, `nomination_wait` at most.
        let direct = self.describe(best).kind != PathKind::Relay;
        let pending_better = self.pairs.iter().any(|q| {
            q.prio > self.pairs[best].prio
                && matches!(
                    q.state,
                    PairState::Frozen | PairState::Waiting | PairState::InProgress
                )
        });
        let waited = self
            .first_valid
            .is_some_and(|f| now >= f + self.timers.nomination_wait);
        if direct || !pending_better || waited {
            self.send_check(now, best, CheckKind::Nominate);
        }
    }

    fn consent(&mut self, now: Instant) {
        let Some(p) = self.selected else { return };
        if now >= self.consent_ok + self.timers.consent_timeout {
            tracing::info!("ICE consent expired: path lost");
            self.pairs[p].state = PairState::Failed;
            self.selected = None;
            self.state = ConnectionState::Disconnected;
            self.checks.retain(|c| c.pair != p);
            self.events.push_back(Event::PathLost);
            return;
        }
        if now >= self.consent_next {
            self.consent_next = now + self.consent_delay();
            self.send_check(now, p, CheckKind::Consent);
        }
    }

    fn consent_delay(&mut self) -> Duration {
        let f = self.rng.random_range(0.8..1.2);
        self.timers.consent_interval.mul_f64(f)
    }

    fn check_failed(&mut self) {
        if self.failed_reported
            || self.selected.is_some()
            || !self.remote_done
            || self.state == ConnectionState::Disconnected
        {
            return;
        }
        if self.gathering != Some(true) || self.pairs.is_empty() {
            return;
        }
        if self.pairs.iter().all(|p| p.state == PairState::Failed) {
            self.failed_reported = true;
            self.state = ConnectionState::Failed;
            self.events.push_back(Event::Failed);
        }
    }

    fn switch_role(&mut self) {
        self.controlling = !self.controlling;
        tracing::debug!(controlling = self.controlling, "ICE role switched");
        for i in 0..self.pairs.len() {
            let (l, r) = (self.pairs[i].local, self.pairs[i].remote);
            self.pairs[i].prio = self.pair_priority(l, r);
        }
    }

    fn pair_priority(&self, l: usize, r: usize) -> u64 {
        let lp = u64::from(self.locals[l].cand.priority());
        let rp = u64::from(self.remotes[r].priority());
        let (g, d) = if self.controlling { (lp, rp) } else { (rp, lp) };
        (1 << 32) * g.min(d) + 2 * g.max(d) + u64::from(g > d)
    }

    fn pair_foundation(&self, p: usize) -> (&str, &str) {
        (
            self.locals[self.pairs[p].local].cand.foundation(),
            self.remotes[self.pairs[p].remote].foundation(),
        )
    }

    /// Forms the pair (local, remote) if usable; returns its index.
    fn make_pair(&mut self, now: Instant, l: usize, r: usize) -> Option<usize> {
        let local = &self.locals[l];
        // Server- and peer-reflexive locals are replaced by their base
        // (RFC 8445 section 6.1.2.4): only host and relayed locals pair.
        if !matches!(
            local.cand.kind(),
            CandidateKind::Host | CandidateKind::Relayed
        ) || (self.relay_only && local.turn.is_none())
            || local.cand.addr().is_ipv4() != self.remotes[r].addr().is_ipv4()
        {
            return None;
        }
        // A relay whose allocation is gone (its stream closed) pairs no more.
        if local
            .turn
            .is_some_and(|t| !matches!(self.turns[t].state, TurnState::Allocated { .. }))
        {
            return None;
        }
        if let Some(p) = self
            .pairs
            .iter()
            .position(|p| p.local == l && self.remotes[p.remote].addr() == self.remotes[r].addr())
        {
            return Some(p);
        }
        if self.pairs.len() >= MAX_PAIRS {
            return None;
        }
        let prio = self.pair_priority(l, r);
        let f = (
            self.locals[l].cand.foundation().to_owned(),
            self.remotes[r].foundation().to_owned(),
        );
        let same_foundation = (0..self.pairs.len()).any(|q| {
            let (a, b) = self.pair_foundation(q);
            a == f.0 && b == f.1
        });
        self.pairs.push(Pair {
            local: l,
            remote: r,
            prio,
            state: if same_foundation {
                PairState::Frozen
            } else {
                PairState::Waiting
            },
            mapped: self.locals[l].cand.kind(),
            nominated: false,
            use_candidate: false,
        });
        if let Some(t) = self.locals[l].turn {
            let peer = self.remotes[r].addr();
            self.turns[t].add_permission(now, &mut self.rng, peer);
            self.drain_turn(now);
        }
        Some(self.pairs.len() - 1)
    }

    fn has_work(&self) -> bool {
        self.remote_creds.is_some()
            && (!self.triggered.is_empty()
                || (self.selected.is_none()
                    && self
                        .pairs
                        .iter()
                        .any(|p| matches!(p.state, PairState::Waiting | PairState::Frozen))))
    }

    fn start_pacing(&mut self, now: Instant) {
        if self.next_pace.is_none() {
            let earliest = self
                .last_check
                .map_or(now, |t| (t + self.timers.ta).max(now));
            self.next_pace = Some(earliest);
        }
    }

    /// Starts one check: triggered first, then the best waiting pair, then
    /// a frozen one. Returns whether a check was sent.
    fn start_next_check(&mut self, now: Instant) -> bool {
        if self.remote_creds.is_none() || self.checks.len() >= MAX_CHECKS {
            return false;
        }
        while let Some(p) = self.triggered.pop_front() {
            if p < self.pairs.len() && self.pairs[p].state != PairState::Succeeded {
                // Cancel the check in progress but keep listening for its
                // answer (until its retransmission timer ends).
                for c in &mut self.checks {
                    if c.pair == p && c.kind == CheckKind::Ordinary {
                        c.cancelled = true;
                    }
                }
                let before = self.checks.len();
                self.send_check(now, p, CheckKind::Ordinary);
                if self.checks.len() > before {
                    if let Some(c) = self.checks.last_mut() {
                        c.triggered = true;
                    }
                }
                return true;
            }
        }
        if self.selected.is_some() {
            return false;
        }
        let pick = |state| {
            (0..self.pairs.len())
                .filter(|&p| self.pairs[p].state == state)
                .max_by_key(|&p| self.pairs[p].prio)
        };
        if let Some(p) = pick(PairState::Waiting).or_else(|| pick(PairState::Frozen)) {
            self.send_check(now, p, CheckKind::Ordinary);
            return true;
        }
        false
    }

    fn send_check(&mut self, now: Instant, p: usize, kind: CheckKind) {
        let Some((remote, key)) = &self.remote_creds else {
            return;
        };
        let username = format!("{}:{}", remote.ufrag, self.local_creds.ufrag);
        let key = key.clone();
        let Ok(user) = UserName::new(username) else {
            return;
        };
        let id: [u8; 12] = self.rng.random();
        let l = self.pairs[p].local;
        let prflx_prio = priority(
            CandidateKind::PeerReflexive,
            (self.locals[l].cand.priority() >> 8) as u16,
        );
        let mut b = StunMessageBuilder::new(BINDING, MessageClass::Request)
            .with_transaction_id(TransactionId::from(id))
            .with_attribute(user)
            .with_attribute(Priority::new(prflx_prio));
        b = if self.controlling {
            b.with_attribute(IceControlling::new(self.tie_breaker))
        } else {
            b.with_attribute(IceControlled::new(self.tie_breaker))
        };
        if kind == CheckKind::Nominate {
            b = b.with_attribute(UseCandidate::default());
        }
        let Some(bytes) = stun::encode(b, Some(&key)) else {
            return;
        };
        if kind != CheckKind::Consent {
            self.pairs[p].state = PairState::InProgress;
        }
        let dst = self.remotes[self.pairs[p].remote].addr();
        self.send_from(now, l, dst, bytes.clone());
        self.checks.push(Check {
            id,
            pair: p,
            kind,
            bytes,
            next: now + self.timers.rto,
            rto: self.timers.rto,
            sends: 1,
            cancelled: false,
            controlling: self.controlling,
            triggered: false,
        });
    }

    fn send_from(&mut self, _now: Instant, local: usize, dst: SocketAddr, bytes: Vec<u8>) {
        let l = &self.locals[local];
        match l.turn {
            None => self.transmits.push_back(Transmit {
                source: l.base,
                destination: dst,
                contents: bytes,
                transport: Transport::Udp,
            }),
            Some(t) => {
                let tc = &self.turns[t];
                if !matches!(tc.state, TurnState::Allocated { .. }) {
                    return;
                }
                if let Some(contents) = tc.wrap(dst, &bytes, &mut self.rng) {
                    self.transmits.push_back(Transmit {
                        source: tc.base,
                        destination: tc.server,
                        contents,
                        transport: tc.transport,
                    });
                }
            }
        }
    }

    fn push_local(&mut self, cand: Candidate, base: SocketAddr, turn: Option<usize>) {
        self.locals.push(Local { cand, base, turn });
    }

    fn handle_gather_response(&mut self, i: usize, data: &[u8]) {
        let Some(msg) = stun::decode(data, None) else {
            return;
        };
        let g = self.gathers.swap_remove(i);
        if msg.class() != MessageClass::SuccessResponse {
            self.check_gathering_done();
            return;
        }
        if let Some(mapped) = stun::xor_mapped(&msg) {
            self.add_srflx(mapped, g.base, g.server);
        }
        self.check_gathering_done();
    }

    fn add_srflx(&mut self, mapped: SocketAddr, base: SocketAddr, server: SocketAddr) {
        if self.relay_only || self.locals.iter().any(|l| l.cand.addr() == mapped) {
            return; // redundant (RFC 8445 section 5.1.3)
        }
        let seed = format!("{}{}", base.ip(), server.ip());
        let cand = Candidate::new(
            CandidateKind::ServerReflexive,
            mapped,
            Some(base),
            65535,
            &seed,
        );
        self.events
            .push_back(Event::CandidateGathered(cand.clone()));
        self.push_local(cand, base, None);
    }

    /// Moves TURN client output to transmits and picks up allocations.
    fn drain_turn(&mut self, now: Instant) {
        for t in 0..self.turns.len() {
            while let Some(bytes) = self.turns[t].out.pop_front() {
                self.transmits.push_back(Transmit {
                    source: self.turns[t].base,
                    destination: self.turns[t].server,
                    contents: bytes,
                    transport: self.turns[t].transport,
                });
            }
            if !std::mem::take(&mut self.turns[t].changed) {
                continue;
            }
            if let TurnState::Allocated { relayed, mapped } = self.turns[t].state {
                if self.locals.iter().any(|l| l.turn == Some(t)) {
                    continue; // channel bound: nothing new to announce
                }
                let base = self.turns[t].base;
                let server = self.turns[t].server;
                if let Some(m) = mapped {
                    self.add_srflx(m, base, server);
                }
                let transport = self.turns[t].transport;
                // Relays reached over TCP or TLS: another foundation and a
                // lower local preference than over UDP.
                let seed = format!("{}{}{}", base.ip(), server.ip(), transport.as_str());
                let cand = Candidate::new(
                    CandidateKind::Relayed,
                    relayed,
                    mapped.or(Some(base)),
                    transport.relay_preference(),
                    &seed,
                );
                tracing::debug!(relayed = %Pii(relayed), "TURN allocation");
                self.events
                    .push_back(Event::CandidateGathered(cand.clone()));
                self.push_local(cand, relayed, Some(t));
                let l = self.locals.len() - 1;
                for r in 0..self.remotes.len() {
                    self.make_pair(now, l, r);
                }
                self.start_pacing(now);
            }
        }
    }

    fn check_gathering_done(&mut self) {
        if self.gathering == Some(false)
            && self.gathers.is_empty()
            && self
                .turns
                .iter()
                .all(|t| !matches!(t.state, TurnState::Idle | TurnState::Allocating))
        {
            self.gathering = Some(true);
            self.events.push_back(Event::GatheringDone);
        }
    }

    fn describe(&self, p: usize) -> SelectedPair {
        let pair = &self.pairs[p];
        let l = &self.locals[pair.local];
        let r = &self.remotes[pair.remote];
        let kinds = [pair.mapped, r.kind(), l.cand.kind()];
        let kind = if kinds.contains(&CandidateKind::Relayed) {
            PathKind::Relay
        } else if kinds.contains(&CandidateKind::PeerReflexive) {
            PathKind::PeerReflexive
        } else if kinds.contains(&CandidateKind::ServerReflexive) {
            PathKind::ServerReflexive
        } else {
            PathKind::Host
        };
        SelectedPair {
            kind,
            local: l.cand.addr(),
            remote: r.addr(),
        }
    }

    /// Whether datagrams for local candidate `a` may arrive as for `b`: the
    /// same candidate, or two host candidates on the one socket (a socket
    /// bound to the unspecified address cannot tell them apart).
    fn same_path(&self, a: usize, b: usize) -> bool {
        a == b || (self.locals[a].turn.is_none() && self.locals[b].turn.is_none())
    }

    /// Number of candidate pairs held (tests and figures).
    #[doc(hidden)]
    pub fn pair_count(&self) -> usize {
        self.pairs.len()
    }
}
