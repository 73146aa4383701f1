//! Whole calls on virtual time: [`CallSession`]s of several users, a fake
//! signaling hub and an in-memory network with seeded loss, delay,
//! reordering, NAT mappings, blocked UDP, blackouts and a DTLS man in the
//! middle. Nothing sleeps and nothing touches a socket: the clock jumps to
//! the next thing due.
//!
//! The DTLS engine here is [`ToyDtls`], a small deterministic handshake
//! behind the same [`Dtls`] trait as the real adapter: it exchanges
//! certificates (random bytes whose SHA-256 is the fingerprint), checks the
//! peer's against the fingerprint received end to end, and derives SRTP keys
//! from both randoms. The real `dtls` crate runs in the process tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cryptic_call::dtls::{Dtls, DtlsOutput};
use cryptic_call::history::Outcome;
use cryptic_call::session::{CallSession, SessionConfig, SessionEvent, SessionReport, SignalOut};
use cryptic_dtls_srtp::handshake::Role as DtlsRole;
use cryptic_dtls_srtp::srtp::Profile;
use cryptic_dtls_srtp::{Error as DtlsError, Fingerprint};
use cryptic_jitter::Playout;
use cryptic_signal::call::CallState;
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::wire::{CallId, ErrorCode, KeysBundle, Message, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

// ----- the toy DTLS -----------------------------------------------------------

const HELLO: u8 = 1;
const REPLY: u8 = 2;

/// A deterministic stand-in for DTLS with the same contract (see the
/// module docs). Records: `22 | kind | certificate (32) | random (32)`.
pub struct ToyDtls {
    cert: [u8; 32],
    random: [u8; 32],
    role: Option<DtlsRole>,
    profile: Profile,
    expected: Option<Fingerprint>,
    out: Vec<DtlsOutput>,
    resend_at: Option<Instant>,
    give_up_at: Option<Instant>,
    done: bool,
}

impl ToyDtls {
    pub fn new(rng: &mut StdRng) -> Self {
        Self {
            cert: rng.random(),
            random: rng.random(),
            role: None,
            profile: Profile::AeadAes128Gcm,
            expected: None,
            out: Vec::new(),
            resend_at: None,
            give_up_at: None,
            done: false,
        }
    }

    fn record(&self, kind: u8) -> Vec<u8> {
        let mut r = vec![22, kind];
        r.extend_from_slice(&self.cert);
        r.extend_from_slice(&self.random);
        r
    }

    fn finish(&mut self, peer_cert: &[u8], client_random: &[u8], server_random: &[u8]) {
        let fp = Fingerprint::of_der(peer_cert);
        if Some(fp) != self.expected {
            self.done = true;
            self.out
                .push(DtlsOutput::Failed(DtlsError::FingerprintMismatch));
            return;
        }
        let need = 2 * (self.profile.master_key_len() + self.profile.master_salt_len());
        let mut material = Vec::new();
        let mut counter = 0u8;
        while material.len() < need {
            let mut h = Sha256::new();
            h.update(client_random);
            h.update(server_random);
            h.update([counter]);
            material.extend_from_slice(&h.finalize());
            counter += 1;
        }
        material.truncate(need);
        self.done = true;
        self.resend_at = None;
        self.give_up_at = None;
        self.out.push(DtlsOutput::Connected {
            exported: zeroize::Zeroizing::new(material),
            peer_fingerprint: fp,
        });
    }
}

impl Dtls for ToyDtls {
    fn local_fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert)
    }

    fn start(&mut self, now: Instant, role: DtlsRole, profile: Profile, expected: Fingerprint) {
        self.role = Some(role);
        self.profile = profile;
        self.expected = Some(expected);
        self.give_up_at = Some(now + Duration::from_secs(10));
        if role == DtlsRole::Client {
            self.out.push(DtlsOutput::Transmit(self.record(HELLO)));
            self.resend_at = Some(now + Duration::from_millis(400));
        }
    }

    fn handle_packet(&mut self, _now: Instant, d: &[u8]) {
        if d.len() != 66 || d[0] != 22 {
            return;
        }
        let (kind, cert, random) = (d[1], &d[2..34], &d[34..66]);
        match (self.role, kind) {
            (Some(DtlsRole::Server), HELLO) => {
                // Answer every hello (the reply may have been lost).
                self.out.push(DtlsOutput::Transmit(self.record(REPLY)));
                if !self.done {
                    let own = self.random;
                    self.finish(cert, random, &own);
                }
            }
            (Some(DtlsRole::Client), REPLY) if !self.done => {
                let own = self.random;
                self.finish(cert, &own, random);
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if self.give_up_at.is_some_and(|t| t <= now) {
            self.done = true;
            self.out
                .push(DtlsOutput::Failed(DtlsError::HandshakeTimeout));
            return;
        }
        if self.resend_at.is_some_and(|t| t <= now) {
            self.out.push(DtlsOutput::Transmit(self.record(HELLO)));
            self.resend_at = Some(now + Duration::from_millis(400));
        }
    }

    fn poll_output(&mut self) -> Option<DtlsOutput> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        [self.resend_at, self.give_up_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn close(&mut self) {
        self.done = true;
        self.resend_at = None;
        self.give_up_at = None;
    }
}

// ----- users and their end-to-end stores ----------------------------------------

/// Users with in-memory Olm stores, sessions started between every pair.
pub struct Users {
    pub names: Vec<UserId>,
    pub stores: Vec<E2eStore>,
}

impl Users {
    /// Users with the given stores; no session is started.
    pub fn with_stores(names: &[&str], stores: Vec<E2eStore>) -> Self {
        let names = names.iter().map(|n| UserId::new(n).unwrap()).collect();
        Self { names, stores }
    }

    pub fn new(names: &[&str]) -> Self {
        let names: Vec<UserId> = names.iter().map(|n| UserId::new(n).unwrap()).collect();
        let mut stores: Vec<E2eStore> = names.iter().map(|_| E2eStore::in_memory()).collect();
        for i in 0..names.len() {
            for j in 0..names.len() {
                if i == j {
                    continue;
                }
                let bundle = bundle_of(&mut stores[j], &names[j]);
                stores[i].start_session(&bundle).unwrap();
            }
        }
        Self { names, stores }
    }
}

/// A key bundle of `store`, presented as `user`'s.
pub fn bundle_of(store: &mut E2eStore, user: &UserId) -> KeysBundle {
    let p = store.keys_to_publish(1).unwrap();
    KeysBundle {
        user: user.clone(),
        identity_key: p.identity_key,
        signing_key: p.signing_key,
        identity_signature: p.identity_signature,
        one_time_key: p.one_time_keys[0].clone(),
        fallback: false,
    }
}

// ----- the network ----------------------------------------------------------------

/// How the in-memory network behaves (all seeded).
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Chance that a datagram is lost.
    pub loss: f64,
    /// One-way delay.
    pub delay: Duration,
    /// Up to this much more delay, uniformly (reorders datagrams).
    pub jitter: Duration,
    /// The jitter starts this long after the call's start (zero: at once).
    pub jitter_from: Duration,
    /// Every UDP datagram is dropped.
    pub udp_blocked: bool,
    /// No UDP datagram passes in these windows (from the call's start).
    pub blackouts: Vec<(Duration, Duration)>,
    /// Nodes behind an address-restricted NAT.
    pub natted: Vec<usize>,
    /// A man in the middle replaces the certificate in every DTLS record.
    pub dtls_mitm: bool,
    /// An attacker on the UDP path only (not on the relay): with every
    /// STUN datagram it forwards, it sends the receiver DTLS records of
    /// its own handshake (a hello and a reply, its own certificate), as if
    /// from the same address.
    pub udp_dtls_attacker: bool,
    /// The server relays media but drops DTLS records.
    pub relay_drops_dtls: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay: Duration::from_millis(20),
            jitter: Duration::ZERO,
            jitter_from: Duration::ZERO,
            udp_blocked: false,
            blackouts: Vec::new(),
            natted: Vec::new(),
            dtls_mitm: false,
            udp_dtls_attacker: false,
            relay_drops_dtls: false,
        }
    }
}

/// The host address of node `i` (private behind a NAT, else public).
pub fn host_of(i: usize, natted: bool) -> SocketAddr {
    if natted {
        SocketAddr::from(([10, 0, 0, 1 + i as u8], 5000))
    } else {
        SocketAddr::from(([198, 51, 100, 1 + i as u8], 5000))
    }
}

fn nat_public(i: usize) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 1 + i as u8], 40000 + i as u16))
}

#[derive(Debug)]
enum Item {
    /// A UDP datagram for node `to`, from `source` to `destination`.
    Datagram {
        to: usize,
        source: SocketAddr,
        destination: SocketAddr,
        data: Vec<u8>,
    },
    /// A signaling message for node `to`.
    Signal { to: usize, msg: Message },
    /// A relay frame for node `to`.
    Relay {
        to: usize,
        call_id: CallId,
        frame: Vec<u8>,
    },
}

/// What a node does, and when.
#[derive(Clone, Debug)]
pub enum Action {
    /// Call another node.
    Call(usize),
    Accept,
    Reject,
    Hangup,
    /// The node's host moves to this address (a phone changing networks):
    /// datagrams to the old one go nowhere, and the session is told.
    Move(SocketAddr),
}

/// When an action happens.
#[derive(Clone, Copy, Debug)]
pub enum When {
    /// This long after the start.
    At(Duration),
    /// This long after the node's call first reaches this state.
    After(CallState, Duration),
}

pub struct Node<'a> {
    pub session: CallSession<&'a mut E2eStore>,
    pub host: SocketAddr,
    pub events: Vec<SessionEvent>,
    reached: HashMap<String, Instant>,
    next_tick: Option<Instant>,
    frame_no: u32,
    /// When each of the peer's frames was played (not concealed).
    pub played: Vec<Instant>,
    /// The number of each frame played (the peer's count, from 1).
    pub played_no: Vec<u32>,
    /// When each of our frames was sent (frame `n` at `sent[n - 1]`).
    pub sent: Vec<Instant>,
    /// When each of [`Node::events`] came.
    pub event_times: Vec<Instant>,
}

impl Node<'_> {
    /// The first frame played at or after `t`, as time after `t`.
    pub fn audio_back_after(&self, t: Instant) -> Option<Duration> {
        self.played.iter().find(|p| **p >= t).map(|p| *p - t)
    }

    /// When the last event `e` came.
    pub fn last_event(&self, e: &SessionEvent) -> Option<Instant> {
        let i = self.events.iter().rposition(|x| x == e)?;
        self.event_times.get(i).copied()
    }

    /// The longest stretch without a played frame between the first frame
    /// played and the last.
    pub fn longest_gap(&self) -> Duration {
        self.played
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }
}

/// Several users' sessions, a hub and a network, on one virtual clock.
pub struct World<'a> {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<Node<'a>>,
    names: Vec<UserId>,
    net: NetConfig,
    rng: StdRng,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    items: BTreeMap<u64, Item>,
    seq: u64,
    calls: HashMap<CallId, (usize, usize)>,
    /// The hub stops at this time (from the start).
    pub hub_dies: Option<Duration>,
    /// The hub is reachable again at this time (from the start), after
    /// `hub_dies`: every node in a call is told `signaling_restored`, as
    /// its driver reconnected (what was sent meanwhile is lost).
    pub hub_back: Option<Duration>,
    hub_dead: bool,
    actions: Vec<(usize, When, Action, bool)>,
    /// The certificate a man in the middle puts in every DTLS record.
    pub mitm_cert: [u8; 32],
    /// A server in the middle: sees every call message the hub routes and
    /// returns what it forwards instead.
    pub intercept: Option<Box<dyn FnMut(Message) -> Message + 'a>>,
    offline: Vec<usize>,
    hub_last: HashMap<usize, Instant>,
    /// (NAT'd node, address it sent to): who may answer through its NAT.
    permissions: Vec<(usize, SocketAddr)>,
    /// Counts of what happened, for the test's output.
    pub datagrams: u64,
    pub relayed: u64,
}

impl<'a> World<'a> {
    /// A world for the users in `users` (one node each), with `config`
    /// giving each node's session settings.
    pub fn new(
        users: &'a mut Users,
        net: NetConfig,
        seed: u64,
        config: impl Fn(usize, SessionConfig) -> SessionConfig,
    ) -> Self {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(seed);
        let names = users.names.clone();
        let mut nodes = Vec::new();
        for (i, store) in users.stores.iter_mut().enumerate() {
            let host = host_of(i, net.natted.contains(&i));
            let mut c = SessionConfig::new(names[i].clone(), vec![host]);
            c.seed = rng.random();
            c.unix_time = Duration::from_secs(1_800_000_000);
            let c = config(i, c);
            let dtls = ToyDtls::new(&mut rng);
            nodes.push(Node {
                session: CallSession::new(c, store, Box::new(dtls), start),
                host,
                events: Vec::new(),
                reached: HashMap::new(),
                next_tick: None,
                frame_no: 0,
                played: Vec::new(),
                played_no: Vec::new(),
                sent: Vec::new(),
                event_times: Vec::new(),
            });
        }
        Self {
            start,
            now: start,
            nodes,
            names,
            net,
            mitm_cert: rng.random(),
            permissions: Vec::new(),
            offline: Vec::new(),
            hub_last: HashMap::new(),
            intercept: None,
            rng,
            queue: BinaryHeap::new(),
            items: BTreeMap::new(),
            seq: 0,
            calls: HashMap::new(),
            hub_dies: None,
            hub_back: None,
            hub_dead: false,
            actions: Vec::new(),
            datagrams: 0,
            relayed: 0,
        }
    }

    /// Forgets every planned action.
    pub fn clear_actions(&mut self) {
        self.actions.clear();
    }

    /// Node `i` is not connected to the hub: calls to it fail as offline.
    pub fn offline(&mut self, i: usize) {
        self.offline.push(i);
    }

    /// Node `node` does `action` at `when`.
    pub fn at(&mut self, node: usize, when: When, action: Action) {
        self.actions.push((node, when, action, false));
    }

    fn push(&mut self, at: Instant, item: Item) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.items.insert(self.seq, item);
    }

    fn node_of(&self, user: &UserId) -> Option<usize> {
        self.names.iter().position(|u| u == user)
    }

    fn signal_delay(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(5..40))
    }

    /// Runs until every node with a call has ended it, or `limit` of
    /// virtual time passed. Returns the virtual time it took.
    pub fn run(&mut self, limit: Duration) -> Duration {
        let end = self.start + limit;
        loop {
            for i in 0..self.nodes.len() {
                self.flush(i);
            }
            if self.all_done() || self.now >= end {
                break;
            }
            let next = self.next_due().unwrap_or(end).min(end).max(self.now);
            self.now = next;
            self.step();
        }
        self.now - self.start
    }

    fn all_done(&self) -> bool {
        let pending = self
            .actions
            .iter()
            .any(|a| !a.3 && matches!(a.2, Action::Call(_)));
        !pending
            && self
                .nodes
                .iter()
                .all(|n| n.session.is_ended() || n.session.state() == CallState::Idle)
            && self.nodes.iter().any(|n| n.session.is_ended())
    }

    fn next_due(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        if let Some(Reverse((at, _))) = self.queue.peek() {
            t.push(*at);
        }
        for n in &self.nodes {
            t.extend(n.session.poll_timeout());
            t.extend(n.next_tick);
        }
        for (i, when, _, done) in &self.actions {
            if !done {
                t.extend(self.action_time(*i, *when));
            }
        }
        if let (Some(d), false) = (self.hub_dies, self.hub_dead) {
            t.push(self.start + d);
        }
        if let (Some(d), true) = (self.hub_back, self.hub_dead) {
            t.push(self.start + d);
        }
        t.into_iter().min()
    }

    fn action_time(&self, node: usize, when: When) -> Option<Instant> {
        match when {
            When::At(d) => Some(self.start + d),
            When::After(state, d) => self.nodes[node]
                .reached
                .get(&format!("{state:?}"))
                .map(|t| *t + d),
        }
    }

    fn step(&mut self) {
        let now = self.now;
        if let (Some(d), false) = (self.hub_dies, self.hub_dead) {
            if self.start + d <= now {
                self.hub_dead = true;
                // Once: a hub that comes back stays.
                self.hub_dies = None;
                for n in &mut self.nodes {
                    if n.session.state() != CallState::Idle {
                        n.session.signaling_lost(now);
                    }
                }
            }
        }
        if let (Some(d), true) = (self.hub_back, self.hub_dead) {
            if self.start + d <= now {
                self.hub_dead = false;
                self.hub_back = None;
                for n in &mut self.nodes {
                    n.session.signaling_restored(now);
                }
            }
        }
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            if let Some(item) = self.items.remove(&id) {
                self.deliver(item);
            }
        }
        for i in 0..self.actions.len() {
            let (node, when, ref action, done) = self.actions[i];
            if done || self.action_time(node, when).is_none_or(|t| t > now) {
                continue;
            }
            let action = action.clone();
            self.actions[i].3 = true;
            let s = &mut self.nodes[node].session;
            match action {
                Action::Call(peer) => {
                    let peer = self.names[peer].clone();
                    s.place_call(now, peer).expect("place call");
                }
                Action::Accept => s.accept(now),
                Action::Reject => s.reject(now),
                Action::Hangup => s.hangup(now),
                Action::Move(to) => {
                    self.nodes[node].host = to;
                    self.nodes[node].session.network_changed(now, vec![to]);
                }
            }
        }
        for n in &mut self.nodes {
            if n.session.poll_timeout().is_some_and(|t| t <= now) {
                n.session.handle_timeout(now);
            }
            audio_tick(n, now);
        }
    }

    fn deliver(&mut self, item: Item) {
        let now = self.now;
        match item {
            Item::Datagram {
                to,
                source,
                destination,
                data,
            } => {
                self.datagrams += 1;
                self.nodes[to]
                    .session
                    .handle_datagram(now, source, destination, &data)
            }
            Item::Signal { to, msg } => {
                if !self.hub_dead {
                    self.nodes[to].session.handle_signal(now, msg)
                }
            }
            Item::Relay { to, call_id, frame } => {
                if !self.hub_dead {
                    self.relayed += 1;
                    self.nodes[to].session.handle_relay(now, call_id, &frame)
                }
            }
        }
    }

    /// Moves node `i`'s outputs into the network and the hub, and notes its
    /// events and states.
    fn flush(&mut self, i: usize) {
        let now = self.now;
        let state = format!("{:?}", self.nodes[i].session.state());
        self.nodes[i].reached.entry(state).or_insert(now);
        while let Some(e) = self.nodes[i].session.poll_event() {
            self.nodes[i].events.push(e);
            self.nodes[i].event_times.push(now);
        }
        while let Some(t) = self.nodes[i].session.poll_transmit() {
            self.send_udp(i, t.source, t.destination, t.contents);
        }
        while let Some(out) = self.nodes[i].session.poll_signal() {
            if self.hub_dead {
                continue;
            }
            self.hub(i, out);
        }
    }

    /// When a message the hub sends now reaches `to`: after a random
    /// delay, but never before what it sent `to` earlier (one ordered
    /// connection per user, as a WebSocket is).
    fn hub_time(&mut self, to: usize) -> Instant {
        let at = self.now + self.signal_delay();
        let last = self.hub_last.entry(to).or_insert(at);
        *last = (*last).max(at);
        *last
    }

    fn hub(&mut self, from: usize, out: SignalOut) {
        match out {
            SignalOut::Message(msg) => {
                let msg = match self.intercept.as_mut() {
                    Some(f) => f(*msg),
                    None => *msg,
                };
                let Some((_, to)) = msg.route() else { return };
                let call_id = msg.call_id();
                match self.node_of(to).filter(|t| !self.offline.contains(t)) {
                    Some(to) => {
                        if let (Message::CallInvite(_), Some(id)) = (&msg, call_id) {
                            self.calls.insert(id, (from, to));
                        }
                        let at = self.hub_time(to);
                        self.push(at, Item::Signal { to, msg });
                    }
                    None => {
                        let err = Message::error(ErrorCode::UserOffline, "offline", call_id);
                        let at = self.hub_time(from);
                        self.push(at, Item::Signal { to: from, msg: err });
                    }
                }
            }
            SignalOut::Relay {
                call_id, mut frame, ..
            } => {
                let Some(&(a, b)) = self.calls.get(&call_id) else {
                    return;
                };
                if self.net.relay_drops_dtls && frame.first().is_some_and(|b| (20..=63).contains(b))
                {
                    return;
                }
                // The man in the middle sits on every path DTLS may take.
                self.mitm(&mut frame);
                let to = if from == a { b } else { a };
                let at = self.hub_time(to);
                self.push(at, Item::Relay { to, call_id, frame });
            }
            other => panic!("the hub does not know {other:?}"),
        }
    }

    fn blacked_out(&self) -> bool {
        let t = self.now - self.start;
        self.net.blackouts.iter().any(|(a, b)| *a <= t && t < *b)
    }

    fn send_udp(&mut self, from: usize, _source: SocketAddr, dest: SocketAddr, mut data: Vec<u8>) {
        if self.net.natted.contains(&from) && !self.sent_to(from, dest) {
            self.permissions.push((from, dest));
        }
        if self.net.udp_blocked || self.blacked_out() || self.rng.random_bool(self.net.loss) {
            return;
        }
        // A node left with loopback only (between networks) reaches nobody.
        if self.nodes[from].host.ip().is_loopback() || dest.ip().is_loopback() {
            return;
        }
        // Out through our NAT: the source becomes the mapping, and the
        // destination's address may answer.
        let source = if self.net.natted.contains(&from) {
            nat_public(from)
        } else {
            self.nodes[from].host
        };
        // In through the destination's NAT, if any.
        let to = self.nodes.iter().position(|n| n.host == dest);
        let (to, destination) = match to {
            Some(to) if !self.net.natted.contains(&to) => (to, dest),
            // A private address is not reachable from outside.
            Some(_) => return,
            None => match (0..self.nodes.len()).find(|&j| nat_public(j) == dest) {
                // Address-restricted: only from an address the node sent to.
                Some(j) if self.sent_to(j, source) => (j, self.nodes[j].host),
                _ => return,
            },
        };
        self.mitm(&mut data);
        let stun = data.first().is_some_and(|b| *b < 4);
        let extra = if self.net.jitter.is_zero() || self.now - self.start < self.net.jitter_from {
            Duration::ZERO
        } else {
            self.net.jitter.mul_f64(self.rng.random_range(0.0..1.0))
        };
        let at = self.now + self.net.delay + extra;
        let mut datagrams = vec![data];
        if stun && self.net.udp_dtls_attacker {
            for kind in [HELLO, REPLY] {
                let mut record = vec![22, kind];
                record.extend_from_slice(&self.mitm_cert);
                record.extend_from_slice(&self.mitm_cert);
                datagrams.push(record);
            }
        }
        for data in datagrams {
            self.push(
                at,
                Item::Datagram {
                    to,
                    source,
                    destination,
                    data,
                },
            );
        }
    }

    /// A man in the middle replaces the certificate in a DTLS record.
    fn mitm(&self, data: &mut [u8]) {
        if self.net.dtls_mitm && data.len() == 66 && data[0] == 22 {
            data[2..34].copy_from_slice(&self.mitm_cert);
        }
    }

    fn sent_to(&self, node: usize, peer: SocketAddr) -> bool {
        self.permissions
            .iter()
            .any(|(n, d)| *n == node && d.ip() == peer.ip())
    }

    pub fn report(&self, i: usize) -> SessionReport {
        self.nodes[i].session.report()
    }
}

/// Every 20 ms of secured media: one numbered frame out, one play-out.
fn audio_tick(n: &mut Node<'_>, now: Instant) {
    if !n.session.media_ready() {
        n.next_tick = None;
        return;
    }
    let due = *n.next_tick.get_or_insert(now);
    if due > now {
        return;
    }
    n.frame_no += 1;
    let mut payload = [0u8; 60];
    payload[..4].copy_from_slice(&n.frame_no.to_be_bytes());
    n.session.send_audio(now, &payload, false);
    n.sent.push(now);
    if let Some(Playout::Frame(f)) = n.session.poll_playout(now) {
        let no = f
            .payload
            .get(..4)
            .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap_or_default()));
        n.played.push(now);
        n.played_no.push(no);
    }
    n.next_tick = Some(due + Duration::from_millis(20));
}

/// The outcome and, for completed calls, the SAS of a node.
pub fn outcome(w: &World<'_>, i: usize) -> (Outcome, Option<String>) {
    let r = w.report(i);
    (r.outcome, r.sas)
}
