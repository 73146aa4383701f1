//! A sans-IO TURN client (RFC 8656) over UDP, TCP or TLS to the server (the
//! relayed transport is UDP in every case): Allocate with the long-term
//! credential mechanism (401 then retry, 438 stale nonce), Refresh before
//! expiry, CreatePermission per peer, ChannelBind and ChannelData, Send and
//! Data indications, and deallocation (Refresh with lifetime 0). Over a
//! stream, requests are not retransmitted (the stream is reliable, RFC 8489
//! section 6.2.2) and ChannelData is padded to 4 bytes (RFC 8656 section
//! 12.5); the driver splits what arrives with [`crate::StreamDecoder`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use rand::Rng;
use stun_rs::attributes::stun::{Nonce, Realm, UserName};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, LifeTime, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, CHANNEL_BIND, CREATE_PERMMISSION, DATA, REFRESH, SEND};
use stun_rs::{Algorithm, AlgorithmId, HMACKey, MessageClass, StunMessageBuilder, TransactionId};

use crate::stun::{self, ChannelData};

const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
const CHANNEL_REFRESH: Duration = Duration::from_secs(540);
const MAX_PEERS: usize = 64;
const MAX_SENDS: u32 = 5;

/// How datagrams travel between the agent and a TURN server (or the peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// One UDP datagram per message.
    Udp,
    /// A TCP connection to the TURN server (`turn:...?transport=tcp`).
    Tcp,
    /// A TLS connection over TCP to the TURN server (`turns:`).
    Tls,
}

impl Transport {
    /// Whether messages travel on a byte stream (TCP or TLS).
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// Local preference of a relayed candidate allocated over this
    /// transport: a relay reached over UDP is preferred to one over TCP,
    /// itself preferred to one over TLS (RFC 8445 section 5.1.2.1).
    pub(crate) fn relay_preference(self) -> u16 {
        match self {
            Self::Udp => 65535,
            Self::Tcp => 32767,
            Self::Tls => 16383,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// A TURN server and the long-term credentials to use on it.
#[derive(Clone)]
#[non_exhaustive]
pub struct TurnServer {
    /// Address of the server.
    pub addr: SocketAddr,
    /// Long-term credential username.
    pub username: String,
    /// Long-term credential password.
    pub password: String,
    /// How the agent reaches the server: UDP (the default), TCP or TLS.
    pub transport: Transport,
    /// The name the server's TLS certificate must carry (TLS only; the
    /// address when `None`).
    pub server_name: Option<String>,
}

impl TurnServer {
    /// A TURN server at `addr` over UDP, with long-term credentials.
    pub fn new(addr: SocketAddr, username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            addr,
            username: username.into(),
            password: password.into(),
            transport: Transport::Udp,
            server_name: None,
        }
    }

    /// Reaches the server over `transport` instead of UDP.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The name the server's TLS certificate is checked against.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("addr", &crate::Pii(self.addr))
            .field("username", &self.username)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnState {
    Idle,
    Allocating,
    Allocated {
        relayed: SocketAddr,
        mapped: Option<SocketAddr>,
    },
    Failed,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allocate,
    Refresh(u32),
    Permission(IpAddr),
    Channel(u16, SocketAddr),
}

struct Txn {
    id: [u8; 12],
    kind: Kind,
    bytes: Vec<u8>,
    next: Instant,
    rto: Duration,
    sends: u32,
    auth_tries: u8,
}

struct Permission {
    ip: IpAddr,
    refresh_at: Instant,
    installed: bool,
}

struct Channel {
    number: u16,
    peer: SocketAddr,
    refresh_at: Instant,
    bound: bool,
}

/// What a datagram from the TURN server turned out to be.
pub(crate) enum FromServer {
    /// Control traffic, consumed.
    Consumed,
    /// Data from `peer`, at `range` of the datagram.
    Data(SocketAddr, Range<usize>),
    /// Not for us, or invalid.
    Dropped,
}

pub(crate) struct TurnClient {
    pub(crate) server: SocketAddr,
    pub(crate) transport: Transport,
    pub(crate) base: SocketAddr,
    username: String,
    password: String,
    realm: Option<Realm>,
    nonce: Option<Nonce>,
    key: Option<HMACKey>,
    pub(crate) state: TurnState,
    txns: Vec<Txn>,
    perms: Vec<Permission>,
    channels: Vec<Channel>,
    refresh_at: Option<Instant>,
    rto: Duration,
    pub(crate) out: VecDeque<Vec<u8>>,
    /// Set when the state changed (allocated or failed) and the agent has not
    /// looked yet.
    pub(crate) changed: bool,
}

impl TurnClient {
    pub(crate) fn new(server: &TurnServer, base: SocketAddr, rto: Duration) -> Self {
        Self {
            server: server.addr,
            transport: server.transport,
            base,
            username: server.username.clone(),
            password: server.password.clone(),
            realm: None,
            nonce: None,
            key: None,
            state: TurnState::Idle,
            txns: Vec::new(),
            perms: Vec::new(),
            channels: Vec::new(),
            refresh_at: None,
            rto,
            out: VecDeque::new(),
            changed: false,
        }
    }

    pub(crate) fn start(&mut self, now: Instant, rng: &mut impl Rng) {
        if self.state == TurnState::Idle {
            self.state = TurnState::Allocating;
            self.request(now, rng, Kind::Allocate, 0);
        }
    }

    /// The stream to the server closed (TCP or TLS): the allocation is
    /// gone with it.
    pub(crate) fn stream_closed(&mut self) {
        if !matches!(self.state, TurnState::Closed | TurnState::Failed) {
            tracing::debug!(transport = self.transport.as_str(), "TURN stream closed");
            self.fail();
        }
    }

    fn fail(&mut self) {
        self.state = TurnState::Failed;
        self.txns.clear();
        self.changed = true;
    }

    fn request(&mut self, now: Instant, rng: &mut impl Rng, kind: Kind, auth_tries: u8) {
        let id: [u8; 12] = rng.random();
        let method = match kind {
            Kind::Allocate => ALLOCATE,
            Kind::Refresh(_) => REFRESH,
            Kind::Permission(_) => CREATE_PERMMISSION,
            Kind::Channel(..) => CHANNEL_BIND,
        };
        let mut b = StunMessageBuilder::new(method, MessageClass::Request)
            .with_transaction_id(TransactionId::from(id));
        match kind {
            Kind::Allocate => b = b.with_attribute(RequestedTrasport::new(stun_rs::protocols::UDP)),
            Kind::Refresh(lifetime) => b = b.with_attribute(LifeTime::new(lifetime)),
            Kind::Permission(ip) => {
                b = b.with_attribute(XorPeerAddress::from(SocketAddr::new(ip, 0)))
            }
            Kind::Channel(n, peer) => {
                b = b
                    .with_attribute(ChannelNumber::new(n))
                    .with_attribute(XorPeerAddress::from(peer))
            }
        }
        if let (Some(realm), Some(nonce), Some(_)) = (&self.realm, &self.nonce, &self.key) {
            let Ok(user) = UserName::new(self.username.as_str()) else {
                self.fail();
                return;
            };
            b = b
                .with_attribute(user)
                .with_attribute(realm.clone())
                .with_attribute(nonce.clone());
        }
        let Some(bytes) = stun::encode(b, self.key.as_ref()) else {
            self.fail();
            return;
        };
        self.out.push_back(bytes.clone());
        // A stream is reliable: no retransmission, one timer as long as the
        // whole UDP schedule (RFC 8489 section 6.2.2).
        let (next, sends) = if self.transport.is_stream() {
            (now + self.rto * ((1 << MAX_SENDS) - 1), MAX_SENDS)
        } else {
            (now + self.rto, 1)
        };
        self.txns.push(Txn {
            id,
            kind,
            bytes,
            next,
            rto: self.rto,
            sends,
            auth_tries,
        });
    }

    /// Makes sure a permission for `peer`'s IP exists (or is being made).
    pub(crate) fn add_permission(&mut self, now: Instant, rng: &mut impl Rng, peer: SocketAddr) {
        if !matches!(self.state, TurnState::Allocated { .. })
            || self.perms.iter().any(|p| p.ip == peer.ip())
            || self.perms.len() >= MAX_PEERS
        {
            return;
        }
        self.perms.push(Permission {
            ip: peer.ip(),
            refresh_at: now + PERMISSION_REFRESH,
            installed: false,
        });
        self.request(now, rng, Kind::Permission(peer.ip()), 0);
    }

    /// Binds a channel to `peer` (after which media uses ChannelData).
    pub(crate) fn bind_channel(&mut self, now: Instant, rng: &mut impl Rng, peer: SocketAddr) {
        if !matches!(self.state, TurnState::Allocated { .. })
            || self.channels.iter().any(|c| c.peer == peer)
            || self.channels.len() >= MAX_PEERS
        {
            return;
        }
        let number = 0x4000 + self.channels.len() as u16;
        self.channels.push(Channel {
            number,
            peer,
            refresh_at: now + CHANNEL_REFRESH,
            bound: false,
        });
        self.request(now, rng, Kind::Channel(number, peer), 0);
    }

    /// The bound channel number for `peer`, if any.
    pub(crate) fn channel_for(&self, peer: SocketAddr) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.bound)
            .map(|c| c.number)
    }

    /// Frames `payload` for `peer`: ChannelData when a channel is bound,
    /// otherwise a Send indication.
    pub(crate) fn wrap(
        &self,
        peer: SocketAddr,
        payload: &[u8],
        rng: &mut impl Rng,
    ) -> Option<Vec<u8>> {
        if let Some(ch) = self.channel_for(peer) {
            let mut out = vec![0; 4 + payload.len().div_ceil(4) * 4];
            let n = if self.transport.is_stream() {
                crate::framing::write_channel_data_padded(ch, payload, &mut out)?
            } else {
                ChannelData::write(ch, payload, &mut out)?
            };
            out.truncate(n);
            return Some(out);
        }
        send_indication(peer, payload, rng.random())
    }

    /// Deallocates (Refresh with lifetime 0); the client is closed after.
    pub(crate) fn close(&mut self, now: Instant, rng: &mut impl Rng) {
        if matches!(self.state, TurnState::Allocated { .. }) {
            self.txns.clear();
            self.request(now, rng, Kind::Refresh(0), 0);
        }
        self.state = TurnState::Closed;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let t = self.txns.iter().map(|t| t.next).min();
        let p = self
            .perms
            .iter()
            .filter(|p| p.installed)
            .map(|p| p.refresh_at)
            .chain(
                self.channels
                    .iter()
                    .filter(|c| c.bound)
                    .map(|c| c.refresh_at),
            )
            .chain(self.refresh_at)
            .min();
        match (t, p) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, rng: &mut impl Rng) {
        let mut failed = Vec::new();
        for t in &mut self.txns {
            if t.next > now {
                continue;
            }
            if t.sends >= MAX_SENDS {
                failed.push(t.id);
            } else {
                t.sends += 1;
                t.rto *= 2;
                t.next = now + t.rto;
                self.out.push_back(t.bytes.clone());
            }
        }
        for id in failed {
            if let Some(i) = self.txns.iter().position(|t| t.id == id) {
                let t = self.txns.swap_remove(i);
                self.on_failure(t.kind);
            }
        }
        if self.state == TurnState::Closed || self.state == TurnState::Failed {
            return;
        }
        if self.refresh_at.is_some_and(|r| r <= now) {
            self.refresh_at = None;
            self.request(now, rng, Kind::Refresh(600), 0);
        }
        let due: Vec<IpAddr> = self
            .perms
            .iter_mut()
            .filter(|p| p.installed && p.refresh_at <= now)
            .map(|p| {
                p.installed = false;
                p.ip
            })
            .collect();
        for ip in due {
            self.request(now, rng, Kind::Permission(ip), 0);
        }
        let due: Vec<(u16, SocketAddr)> = self
            .channels
            .iter_mut()
            .filter(|c| c.bound && c.refresh_at <= now)
            .map(|c| {
                c.refresh_at = now + CHANNEL_REFRESH;
                (c.number, c.peer)
            })
            .collect();
        for (n, peer) in due {
            self.request(now, rng, Kind::Channel(n, peer), 0);
        }
    }

    fn on_failure(&mut self, kind: Kind) {
        match kind {
            Kind::Allocate => self.fail(),
            Kind::Refresh(0) => {}
            Kind::Refresh(_) => self.fail(),
            Kind::Permission(ip) => self.perms.retain(|p| p.ip != ip),
            Kind::Channel(n, _) => self.channels.retain(|c| c.number != n),
        }
    }

    /// Handles a datagram that came from the TURN server.
    pub(crate) fn handle_input(
        &mut self,
        now: Instant,
        rng: &mut impl Rng,
        data: &[u8],
    ) -> FromServer {
        if let Some(cd) = ChannelData::parse(data) {
            return match self
                .channels
                .iter()
                .find(|c| c.number == cd.channel && c.bound)
            {
                Some(c) => FromServer::Data(c.peer, 4..4 + cd.payload.len()),
                None => FromServer::Dropped,
            };
        }
        let Some(h) = stun::header(data) else {
            return FromServer::Dropped;
        };
        if h.class() == 1 {
            // Data indication: XOR-PEER-ADDRESS and DATA; not authenticated.
            if h.method() != DATA.as_u16() {
                return FromServer::Dropped;
            }
            let Some(msg) = stun::decode(data, None) else {
                return FromServer::Dropped;
            };
            let peer = msg
                .get::<XorPeerAddress>()
                .and_then(|a| a.as_xor_peer_address().ok())
                .map(|a| *a.socket_address());
            let range = stun::find_attribute(data, 0x0013);
            return match (peer, range) {
                (Some(peer), Some(range)) if self.perms.iter().any(|p| p.ip == peer.ip()) => {
                    FromServer::Data(peer, range)
                }
                _ => FromServer::Dropped,
            };
        }
        if h.class() < 2 {
            return FromServer::Dropped;
        }
        let Some(i) = self.txns.iter().position(|t| t.id == h.txid) else {
            return FromServer::Dropped;
        };
        // Error responses to unauthenticated requests carry no integrity;
        // success responses must verify when we hold a key.
        let Some(msg) = stun::decode(
            data,
            if h.class() == 2 {
                self.key.as_ref()
            } else {
                None
            },
        ) else {
            return FromServer::Dropped;
        };
        if h.class() == 2 && self.key.is_some() && !stun::has_integrity(&msg) {
            return FromServer::Dropped;
        }
        let t = self.txns.swap_remove(i);
        if h.class() == 3 {
            let code = stun::error_code(&msg).unwrap_or(0);
            match code {
                401 | 438 if t.auth_tries < 2 => {
                    let realm = msg.get::<Realm>().and_then(|r| r.as_realm().ok()).cloned();
                    let nonce = msg.get::<Nonce>().and_then(|n| n.as_nonce().ok()).cloned();
                    if let Some(realm) = realm {
                        self.realm = Some(realm);
                    }
                    let (Some(nonce), Some(realm)) = (nonce, self.realm.clone()) else {
                        self.on_failure(t.kind);
                        return FromServer::Consumed;
                    };
                    self.nonce = Some(nonce);
                    let key = UserName::new(self.username.as_str()).ok().and_then(|u| {
                        HMACKey::new_long_term(
                            &u,
                            &realm,
                            self.password.as_str(),
                            Algorithm::from(AlgorithmId::MD5),
                        )
                        .ok()
                    });
                    if key.is_none() {
                        self.fail();
                        return FromServer::Consumed;
                    }
                    self.key = key;
                    self.request(now, rng, t.kind, t.auth_tries + 1);
                }
                _ => {
                    tracing::debug!(code, kind = ?t.kind, "TURN request failed");
                    self.on_failure(t.kind);
                }
            }
            return FromServer::Consumed;
        }
        match t.kind {
            Kind::Allocate => {
                let relayed = msg
                    .get::<XorRelayedAddress>()
                    .and_then(|a| a.as_xor_relayed_address().ok())
                    .map(|a| *a.socket_address());
                let lifetime = msg
                    .get::<LifeTime>()
                    .and_then(|l| l.as_life_time().ok())
                    .map(|l| l.as_u32())
                    .unwrap_or(600);
                match relayed {
                    Some(relayed) if self.state == TurnState::Allocating => {
                        self.state = TurnState::Allocated {
                            relayed,
                            mapped: stun::xor_mapped(&msg),
                        };
                        self.refresh_at = Some(now + refresh_after(lifetime));
                        self.changed = true;
                    }
                    _ => self.fail(),
                }
            }
            Kind::Refresh(0) => {}
            Kind::Refresh(_) => {
                let lifetime = msg
                    .get::<LifeTime>()
                    .and_then(|l| l.as_life_time().ok())
                    .map(|l| l.as_u32())
                    .unwrap_or(600);
                self.refresh_at = Some(now + refresh_after(lifetime));
            }
            Kind::Permission(ip) => {
                if let Some(p) = self.perms.iter_mut().find(|p| p.ip == ip) {
                    p.installed = true;
                    p.refresh_at = now + PERMISSION_REFRESH;
                }
            }
            Kind::Channel(n, _) => {
                if let Some(c) = self.channels.iter_mut().find(|c| c.number == n) {
                    c.bound = true;
                    c.refresh_at = now + CHANNEL_REFRESH;
                    self.changed = true;
                }
            }
        }
        FromServer::Consumed
    }
}

fn refresh_after(lifetime: u32) -> Duration {
    let l = u64::from(lifetime.max(60));
    Duration::from_secs(if l > 120 { l - 60 } else { l / 2 })
}

/// Builds a Send indication carrying `payload` to `peer`.
pub(crate) fn send_indication(peer: SocketAddr, payload: &[u8], txid: [u8; 12]) -> Option<Vec<u8>> {
    let b = StunMessageBuilder::new(SEND, MessageClass::Indication)
        .with_transaction_id(TransactionId::from(txid))
        .with_attribute(XorPeerAddress::from(peer))
        .with_attribute(Data::new(payload));
    let msg = b.build();
    let mut buf = vec![0u8; payload.len() + 64];
    let n = stun_rs::MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use stun_rs::attributes::stun::{ErrorCode, MessageIntegrity, XorMappedAddress};
    use stun_rs::MessageEncoderBuilder;

    fn decode(b: &[u8]) -> stun_rs::StunMessage {
        stun_rs::MessageDecoderBuilder::default()
            .build()
            .decode(b)
            .unwrap()
            .0
    }

    fn encode(b: StunMessageBuilder) -> Vec<u8> {
        let mut buf = vec![0; 512];
        let n = MessageEncoderBuilder::default()
            .build()
            .encode(&mut buf, &b.build())
            .unwrap();
        buf.truncate(n);
        buf
    }

    fn key() -> HMACKey {
        let (u, r) = (
            UserName::new("alice").unwrap(),
            Realm::new("test.local").unwrap(),
        );
        HMACKey::new_long_term(&u, &r, "secret", Algorithm::from(AlgorithmId::MD5)).unwrap()
    }

    fn reply(
        req: &[u8],
        class: MessageClass,
        f: impl FnOnce(StunMessageBuilder) -> StunMessageBuilder,
    ) -> Vec<u8> {
        let m = decode(req);
        encode(f(
            StunMessageBuilder::new(m.method(), class).with_transaction_id(*m.transaction_id())
        ))
    }

    fn challenge(req: &[u8], code: u16, nonce: &str) -> Vec<u8> {
        reply(req, MessageClass::ErrorResponse, |b| {
            b.with_attribute(ErrorCode::new(stun_rs::ErrorCode::new(code, "x").unwrap()))
                .with_attribute(Realm::new("test.local").unwrap())
                .with_attribute(Nonce::new(nonce).unwrap())
        })
    }

    fn ok(req: &[u8], f: impl FnOnce(StunMessageBuilder) -> StunMessageBuilder) -> Vec<u8> {
        reply(req, MessageClass::SuccessResponse, |b| {
            f(b).with_attribute(MessageIntegrity::new(key()))
        })
    }

    #[test]
    fn allocates_with_long_term_credentials_refreshes_and_deallocates() {
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let server = TurnServer::new("192.0.2.9:3478".parse().unwrap(), "alice", "secret");
        let mut c = TurnClient::new(
            &server,
            "10.0.0.1:5000".parse().unwrap(),
            Duration::from_millis(500),
        );
        c.start(t0, &mut rng);
        let first = c.out.pop_front().unwrap();
        assert!(
            decode(&first).get::<UserName>().is_none(),
            "first Allocate is unauthenticated"
        );
        // 401 with realm and nonce: retried with credentials.
        assert!(matches!(
            c.handle_input(t0, &mut rng, &challenge(&first, 401, "n1")),
            FromServer::Consumed
        ));
        let second = c.out.pop_front().unwrap();
        assert!(decode(&second).get::<UserName>().is_some());
        assert!(decode(&second).get::<MessageIntegrity>().is_some());
        // A success without valid integrity is ignored.
        let forged = reply(&second, MessageClass::SuccessResponse, |b| b);
        assert!(matches!(
            c.handle_input(t0, &mut rng, &forged),
            FromServer::Dropped
        ));
        let relayed: SocketAddr = "192.0.2.9:49999".parse().unwrap();
        let resp = ok(&second, |b| {
            b.with_attribute(XorRelayedAddress::from(relayed))
                .with_attribute(XorMappedAddress::from(
                    "198.51.100.1:6000".parse::<SocketAddr>().unwrap(),
                ))
                .with_attribute(LifeTime::new(600))
        });
        c.handle_input(t0, &mut rng, &resp);
        assert!(matches!(c.state, TurnState::Allocated { relayed: r, .. } if r == relayed));
        // Permission and channel for a peer.
        let peer: SocketAddr = "203.0.113.5:7000".parse().unwrap();
        c.add_permission(t0, &mut rng, peer);
        let perm = c.out.pop_front().unwrap();
        c.handle_input(t0, &mut rng, &ok(&perm, |b| b));
        c.bind_channel(t0, &mut rng, peer);
        let bind = c.out.pop_front().unwrap();
        assert_eq!(c.channel_for(peer), None);
        c.handle_input(t0, &mut rng, &ok(&bind, |b| b));
        assert_eq!(c.channel_for(peer), Some(0x4000));
        let framed = c.wrap(peer, b"media", &mut rng).unwrap();
        assert_eq!(ChannelData::parse(&framed).unwrap().payload, b"media");
        // Inbound ChannelData from the peer is unwrapped in place.
        match c.handle_input(t0, &mut rng, &framed) {
            FromServer::Data(p, r) => assert_eq!((p, &framed[r]), (peer, &b"media"[..])),
            _ => panic!("ChannelData not unwrapped"),
        }
        // Permission refreshed at 240 s; allocation refreshed at 540 s,
        // through a stale nonce (438).
        let at = c.poll_timeout().unwrap();
        assert_eq!(at - t0, Duration::from_secs(240));
        c.handle_timeout(at, &mut rng);
        let refresh_perm = c.out.pop_front().unwrap();
        assert_eq!(decode(&refresh_perm).method(), CREATE_PERMMISSION);
        c.handle_input(at, &mut rng, &ok(&refresh_perm, |b| b));
        // Permissions (every 240 s) and the channel (540 s) are refreshed
        // too; the allocation's Refresh comes at 540 s.
        let (at, refresh) = loop {
            let at = c.poll_timeout().unwrap();
            assert!(at - t0 <= Duration::from_secs(540));
            c.handle_timeout(at, &mut rng);
            let mut found = None;
            while let Some(req) = c.out.pop_front() {
                if decode(&req).method() == REFRESH {
                    found = Some(req);
                } else {
                    c.handle_input(at, &mut rng, &ok(&req, |b| b));
                }
            }
            if let Some(r) = found {
                break (at, r);
            }
        };
        assert_eq!(at - t0, Duration::from_secs(540));
        c.handle_input(at, &mut rng, &challenge(&refresh, 438, "n2"));
        let again = c.out.pop_front().unwrap();
        let m = decode(&again);
        assert_eq!(m.method(), REFRESH);
        assert_eq!(m.get::<Nonce>().unwrap().as_nonce().unwrap().as_str(), "n2");
        c.handle_input(
            at,
            &mut rng,
            &ok(&again, |b| b.with_attribute(LifeTime::new(600))),
        );
        assert!(matches!(c.state, TurnState::Allocated { .. }));
        // Deallocation: Refresh with lifetime 0.
        c.close(at, &mut rng);
        let bye = decode(&c.out.pop_front().unwrap());
        assert_eq!(bye.method(), REFRESH);
        assert_eq!(
            bye.get::<LifeTime>()
                .unwrap()
                .as_life_time()
                .unwrap()
                .as_u32(),
            0
        );
    }

    #[test]
    fn an_allocation_refused_twice_fails_instead_of_looping() {
        let mut rng = StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let server = TurnServer::new("192.0.2.9:3478".parse().unwrap(), "alice", "wrong");
        let mut c = TurnClient::new(
            &server,
            "10.0.0.1:5000".parse().unwrap(),
            Duration::from_millis(500),
        );
        c.start(t0, &mut rng);
        for _ in 0..5 {
            let Some(req) = c.out.pop_front() else { break };
            c.handle_input(t0, &mut rng, &challenge(&req, 401, "n"));
        }
        assert_eq!(c.state, TurnState::Failed);
        assert!(c.out.is_empty());
    }
}
