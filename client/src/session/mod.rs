//! One call, sans-IO: every decision of a call lives here.
//!
//! ```text
//!   signaling messages ──handle_signal──┐         ┌──poll_signal──> call messages, relay frames
//!   relay frames ───────handle_relay────┤         │
//!   UDP datagrams ──────handle_datagram─┤ Call-   ├──poll_transmit─> UDP datagrams
//!   user: accept/reject/hangup/mute ────┤ Session ├──poll_event────> incoming, secured, path, ended
//!   host addresses ─────network_changed─┤         │
//!   encoded audio ──────send_audio──────┤         ├──poll_playout──> frame / conceal / silence
//!   the clock ──────────handle_timeout──┘         └──poll_timeout──> when to call handle_timeout
//!
//!   inside: CallMachine (signal) · ice::Agent · Dtls · MediaSession (SRTP, jitter)
//!           · the path choice (ICE pair or server relay) · the call key and SAS
//! ```
//!
//! # How to drive it
//!
//! A [`CallSession`] does no I/O, never reads the clock and draws its
//! randomness from a seeded generator. Its driver (see [`crate::call`]):
//!
//! 1. makes one with the host addresses of its UDP socket, the end-to-end
//!    store ([`Sealer`]) and a [`Dtls`] engine, then either
//!    [`place_call`](CallSession::place_call)s or waits for an invite;
//! 2. feeds what arrives: call messages to
//!    [`handle_signal`](CallSession::handle_signal), relay frames to
//!    [`handle_relay`](CallSession::handle_relay), datagrams to
//!    [`handle_datagram`](CallSession::handle_datagram), the user's
//!    commands to [`accept`](CallSession::accept),
//!    [`reject`](CallSession::reject), [`hangup`](CallSession::hangup),
//!    [`set_muted`](CallSession::set_muted), and the host's addresses when
//!    they change to [`network_changed`](CallSession::network_changed);
//! 3. after every input drains [`poll_transmit`](CallSession::poll_transmit)
//!    (send on the socket), [`poll_signal`](CallSession::poll_signal) (send on
//!    the signaling connection) and [`poll_event`](CallSession::poll_event)
//!    (tell the user), then sleeps until
//!    [`poll_timeout`](CallSession::poll_timeout) and calls
//!    [`handle_timeout`](CallSession::handle_timeout) (also when the DTLS
//!    engine wakes it);
//! 4. once [`media_ready`](CallSession::media_ready), every 20 ms hands one
//!    encoded frame to [`send_audio`](CallSession::send_audio) and plays
//!    what [`poll_playout`](CallSession::poll_playout) says;
//! 5. stops at [`SessionEvent::Ended`] and reads
//!    [`report`](CallSession::report).
//!
//! # Rules it keeps
//!
//! - The call key is version 2 ([`cryptic_signal::callkey`], see [`keys`]):
//!   the invite carries a commitment to the caller's ephemeral key, nonce
//!   and DTLS fingerprint; the callee answers with its own; the caller
//!   reveals in a sealed `call_ice_candidate`; the callee aborts
//!   (`security_abort`) when the reveal does not match. K_call comes from a
//!   fresh X25519 exchange salted with the transcript, the SAS from K_call,
//!   and the SRTP keys are the DTLS exporter output bound to K_call. DTLS
//!   starts only once both sides hold K_call.
//! - Every sealed payload names its type, call, sender, recipient and a
//!   counter, checked against the message that carried it; an invite older
//!   or newer than two minutes, or already seen, never rings.
//! - The caller is the ICE controlling agent and the DTLS server; the callee
//!   is controlled and the DTLS client.
//! - The callee opens no socket path before its user accepts: it gathers
//!   no candidates and answers no connectivity check while ringing, so an
//!   unanswered call learns nothing of its address.
//! - Glare: when both users call each other, the call machine keeps the
//!   call with the smaller id; the side whose call lost answers the other at
//!   once (its user asked to talk to that peer).
//! - Media starts on the server relay as soon as the call is answered
//!   ([`SessionConfig::relay_first`]): DTLS and the first words do not wait
//!   for ICE. It takes the ICE pair once one is selected; the user hears of
//!   the relay only when no pair came within
//!   [`SessionConfig::relay_after`]. It goes back to the relay when the
//!   peer's authenticated media arrives that way, or while the direct path
//!   is lost ([`SessionConfig::force_relay`] keeps it there).
//! - The direct path lost (silent for 1 s, consent expired, our addresses
//!   changed, the peer restarted) is found again without the users: the
//!   server relay carries the audio meanwhile, a silent pair is probed with
//!   consent checks, the agent rebinds to new addresses, ICE restarts
//!   through a sealed `restart` of a numbered generation, and the DTLS
//!   association and SRTP contexts stay (see `session/reach.rs` and
//!   docs/PROTOCOL.md section 4.1).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cryptic_dtls_srtp::handshake::{Role as DtlsRole, SrtpKeys};
use cryptic_dtls_srtp::srtp::Profile;
use cryptic_dtls_srtp::stats::NtpClock;
use cryptic_dtls_srtp::{Error as DtlsError, Fingerprint};
use cryptic_ice::{
    Agent, AgentConfig, Credentials, Event as IceEvent, PathKind, Received, Role as IceRole,
    Timers, Transmit, Transport, TurnServer,
};
use cryptic_jitter::Playout;
use cryptic_signal::call::{CallConfig, CallEvent, CallMachine, CallState, Reason, Role};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::payload::{AudioCodec, SrtpProfile};
use cryptic_signal::wire::{CallId, ErrorCode, Message, RejectReason, Sealed, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zeroize::Zeroizing;

/// DTLS records kept while our side cannot start DTLS yet.
const EARLY_DTLS_RECORDS: usize = 8;

mod keys;
mod reach;

use keys::{KeySchedule, Offer};
use reach::{Loss, Reach};

use crate::dtls::{Dtls, DtlsOutput};
use crate::history::Outcome;
use crate::media::{
    Incoming as MediaIncoming, MediaConfig, MediaSession, MediaStats, MAX_DATAGRAM,
};

/// The codec we offer (the only one: Opus, 48 kHz, RFC 7587).
pub const CODEC: AudioCodec = AudioCodec::Opus;
/// The SRTP profiles we accept, preferred first, with the engine's name.
pub const SRTP_PROFILES: [(SrtpProfile, Profile); 2] = [
    (SrtpProfile::AeadAes128Gcm, Profile::AeadAes128Gcm),
    (
        SrtpProfile::CrypticChaCha20Poly1305,
        Profile::CrypticChaCha20Poly1305,
    ),
];

/// Seals and opens end-to-end payloads, and knows the identity keys (the
/// Olm store).
pub trait Sealer {
    /// Seals `plaintext` for `peer`.
    fn seal(&mut self, peer: &UserId, plaintext: &[u8]) -> Result<Sealed, cryptic_signal::Error>;
    /// Opens a payload `peer` sealed.
    fn unseal(&mut self, peer: &UserId, sealed: &Sealed) -> Result<Vec<u8>, cryptic_signal::Error>;
    /// Our long-term Curve25519 identity key.
    fn identity_key(&self) -> [u8; 32];
    /// The pinned identity key of `peer`.
    fn peer_identity_key(&self, peer: &UserId) -> Option<[u8; 32]>;
    /// Whether the user verified `peer`'s key (compared the safety number).
    fn is_verified(&self, peer: &UserId) -> bool;
    /// Lets an invite ring unless it is stale or a replay (remembered
    /// across restarts).
    fn admit_invite(
        &mut self,
        call_id: &CallId,
        sent_at: i64,
        now_unix: i64,
    ) -> Result<(), cryptic_signal::Error>;
}

impl Sealer for E2eStore {
    fn seal(&mut self, peer: &UserId, plaintext: &[u8]) -> Result<Sealed, cryptic_signal::Error> {
        E2eStore::seal(self, peer, plaintext)
    }

    fn unseal(&mut self, peer: &UserId, sealed: &Sealed) -> Result<Vec<u8>, cryptic_signal::Error> {
        E2eStore::unseal(self, peer, sealed)
    }

    fn identity_key(&self) -> [u8; 32] {
        E2eStore::identity_key(self).0
    }

    fn peer_identity_key(&self, peer: &UserId) -> Option<[u8; 32]> {
        self.pinned_key(peer).map(|k| k.identity_key.0)
    }

    fn is_verified(&self, peer: &UserId) -> bool {
        E2eStore::is_verified(self, peer)
    }

    fn admit_invite(
        &mut self,
        call_id: &CallId,
        sent_at: i64,
        now_unix: i64,
    ) -> Result<(), cryptic_signal::Error> {
        E2eStore::admit_invite(self, call_id, sent_at, now_unix)
    }
}

impl<T: Sealer + ?Sized> Sealer for &mut T {
    fn seal(&mut self, peer: &UserId, plaintext: &[u8]) -> Result<Sealed, cryptic_signal::Error> {
        (**self).seal(peer, plaintext)
    }

    fn unseal(&mut self, peer: &UserId, sealed: &Sealed) -> Result<Vec<u8>, cryptic_signal::Error> {
        (**self).unseal(peer, sealed)
    }

    fn identity_key(&self) -> [u8; 32] {
        (**self).identity_key()
    }

    fn peer_identity_key(&self, peer: &UserId) -> Option<[u8; 32]> {
        (**self).peer_identity_key(peer)
    }

    fn is_verified(&self, peer: &UserId) -> bool {
        (**self).is_verified(peer)
    }

    fn admit_invite(
        &mut self,
        call_id: &CallId,
        sent_at: i64,
        now_unix: i64,
    ) -> Result<(), cryptic_signal::Error> {
        (**self).admit_invite(call_id, sent_at, now_unix)
    }
}

/// Settings of one call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Our user.
    pub me: UserId,
    /// The addresses our UDP socket receives on (host candidates).
    pub hosts: Vec<SocketAddr>,
    /// STUN servers for server-reflexive candidates.
    pub stun_servers: Vec<SocketAddr>,
    /// TURN servers for relayed candidates.
    pub turn_servers: Vec<TurnServer>,
    /// ICE timers (`None`: RFC defaults).
    pub ice_timers: Option<Timers>,
    /// How long an invite rings before it ends unanswered.
    pub ring_timeout: Duration,
    /// How long an answered call may take to reach secured media.
    pub connect_timeout: Duration,
    /// Move media to the server relay when no ICE pair is selected this
    /// long after the answer.
    pub relay_after: Duration,
    /// Send media through the server relay from the start.
    pub force_relay: bool,
    /// Start on the server relay as soon as the call is answered, while
    /// ICE checks run (DTLS and the first words do not wait for a pair),
    /// and move to the pair once one is selected. The user hears of the
    /// relay only if no pair comes within [`relay_after`](Self::relay_after).
    /// Off: the relay is only the fallback after `relay_after`.
    pub relay_first: bool,
    /// Offer the ChaCha20-Poly1305 profile first (used when both do).
    pub prefer_chacha: bool,
    /// Hang up after this long with secured media.
    pub duration: Option<Duration>,
    /// Accept a ringing call by ourselves after this long.
    pub auto_accept: Option<Duration>,
    /// Decline every incoming call.
    pub auto_reject: bool,
    /// Cancel our unanswered call after this long.
    pub cancel_after: Option<Duration>,
    /// Wall-clock time (since the Unix epoch) at the `now` the session is
    /// created with: RTCP sender reports carry NTP time.
    pub unix_time: Duration,
    /// The audio side honours the jitter buffer's requests to play a frame
    /// shorter or longer: it drops a whole frame only when that frame is
    /// quiet and lengthens one by a pitch period, so the buffer shrinks in
    /// pauses instead of dropping whichever frame is next. The buffer then
    /// asks to shrink only a whole frame too deep, as without stretch.
    pub time_stretch: bool,
    /// With `time_stretch`, on a steady path: pauses are stretched by just
    /// the buffer's excess, not by whole frames, so the delay stays a few
    /// ms above the target (10 ms frames to a speaker: a microphone's, or
    /// `--low-latency`; costs some quality, see `media::STEADY_JITTER`).
    pub fine_stretch: bool,
    /// Seed of every random choice (call id, nonces, SSRC, ICE).
    pub seed: u64,
}

impl SessionConfig {
    /// Defaults for `me` receiving on `hosts`.
    pub fn new(me: UserId, hosts: Vec<SocketAddr>) -> Self {
        Self {
            me,
            hosts,
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            ice_timers: None,
            ring_timeout: Duration::from_secs(45),
            connect_timeout: Duration::from_secs(10),
            relay_after: Duration::from_secs(3),
            force_relay: false,
            relay_first: true,
            prefer_chacha: false,
            duration: None,
            auto_accept: None,
            auto_reject: false,
            cancel_after: None,
            unix_time: Duration::ZERO,
            time_stretch: false,
            fine_stretch: false,
            seed: 0,
        }
    }
}

/// A local fault that keeps a call from starting.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionError {
    /// The end-to-end store could not seal for the peer (no session yet,
    /// or the peer's key changed).
    Seal(cryptic_signal::Error),
    /// The call machine refused (already in a call, not ringing...).
    State(cryptic_signal::Error),
    /// The ICE agent could not be made (bad configuration).
    Ice(cryptic_ice::Error),
    /// The peer is ourselves.
    CallingYourself,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Seal(e) => write!(f, "cannot seal for the peer: {e}"),
            SessionError::State(e) => write!(f, "{e}"),
            SessionError::Ice(e) => write!(f, "ICE: {e}"),
            SessionError::CallingYourself => f.write_str("you cannot call yourself"),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Seal(e) | SessionError::State(e) => Some(e),
            SessionError::Ice(e) => Some(e),
            SessionError::CallingYourself => None,
        }
    }
}

/// Something to send on the signaling connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SignalOut {
    /// A call message.
    Message(Box<Message>),
    /// A datagram for the peer through the server relay.
    Relay {
        /// The call.
        call_id: CallId,
        /// Our frame counter.
        seq: u64,
        /// The datagram (DTLS, SRTP or SRTCP).
        frame: Vec<u8>,
    },
}

/// What the session tells the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A call is ringing for us.
    Incoming {
        /// The caller.
        from: UserId,
    },
    /// An invite was dropped without ringing (stale, replayed, or not
    /// openable).
    InviteRefused {
        /// Who it claims to come from.
        from: UserId,
        /// Why, in words.
        reason: String,
    },
    /// Someone called while we were in a call and was told we are busy.
    MissedWhileBusy {
        /// The caller.
        from: UserId,
    },
    /// DTLS completed with the peer's end-to-end fingerprint: compare the
    /// short authentication string.
    Secured {
        /// The six digits both users should see.
        sas: String,
        /// Whether the user verified the peer's key (safety number).
        verified: bool,
    },
    /// Media now travels this way (`direct`, `turn-relay`, `server-relay`).
    PathChanged(&'static str),
    /// The direct path went away (consent lost, our network changed, or
    /// the peer restarted ICE): ICE restarts while media goes through the
    /// server relay. The words say what happened ("path lost, trying
    /// relay").
    DirectLost(&'static str),
    /// After [`DirectLost`](Self::DirectLost), ICE selected a pair again:
    /// media is back on the direct path.
    DirectBack,
    /// The signaling server went away; the call goes on peer to peer (or
    /// on the server relay, which comes back with the server).
    SignalingLost,
    /// The driver connected to the signaling server again during the call.
    SignalingBack,
    /// The call ended; read [`CallSession::report`].
    Ended,
}

/// How the call went.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionReport {
    /// The call.
    pub call_id: Option<CallId>,
    /// The other user.
    pub peer: Option<UserId>,
    /// Our side.
    pub role: Role,
    /// How it ended (`Failed` until it ends).
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// The media path.
    pub path: Option<&'static str>,
    /// The short authentication string.
    pub sas: Option<String>,
    /// Whether the peer's key was verified (safety number) when the call
    /// was secured.
    pub verified: bool,
    /// The SRTP cipher.
    pub cipher: &'static str,
    /// Media figures.
    pub stats: MediaStats,
    /// When the call started (invite sent or received).
    pub started: Option<Instant>,
    /// When it was answered.
    pub answered: Option<Instant>,
    /// When the first of the peer's frames was played.
    pub first_played: Option<Instant>,
    /// When our first frame was sent.
    pub first_sent: Option<Instant>,
    /// When it ended.
    pub ended: Option<Instant>,
    /// Audio frames sent.
    pub frames_sent: u64,
    /// Frames of the peer's audio played (not concealed).
    pub frames_played: u64,
    /// Frames of the peer's audio that never came in time to be played,
    /// after the first one: gaps closed by a later frame, and a gap still
    /// open of a second or more (a path that went silent).
    pub frames_missing: u64,
    /// Playout ticks without a frame since the last frame played.
    gap: u64,
    /// ICE restarts in the call (ours and the peer's).
    pub ice_restarts: u32,
}

/// How long a call on the server relay alone waits for the signaling
/// server to come back (the server keeps the call as long by default).
pub const SIGNALING_GRACE: Duration = Duration::from_secs(20);

/// An open gap in the peer's audio counts as lost from this many frames
/// on (1 s); shorter ones at the end of a call are the hang-up.
const OPEN_GAP_LOST: u64 = 50;

impl SessionReport {
    /// Frames missing, with an open gap of a second or more.
    fn missing_now(&self) -> u64 {
        self.frames_missing
            + if self.gap >= OPEN_GAP_LOST {
                self.gap
            } else {
                0
            }
    }
}

/// The media path in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    None,
    Ice(PathKind),
    Relay,
}

impl Path {
    fn name(self) -> Option<&'static str> {
        match self {
            Path::None => None,
            Path::Ice(PathKind::Relay) => Some("turn-relay"),
            Path::Ice(_) => Some("direct"),
            Path::Relay => Some("server-relay"),
        }
    }

    /// Which way datagrams on this path go.
    fn via(self) -> Option<Via> {
        match self {
            Path::None => None,
            Path::Ice(_) => Some(Via::Direct),
            Path::Relay => Some(Via::Relay),
        }
    }
}

/// One call of one user, sans-IO. See the module docs for how to drive it.
pub struct CallSession<S: Sealer> {
    config: SessionConfig,
    rng: StdRng,
    machine: CallMachine,
    sealer: S,
    dtls: Box<dyn Dtls>,
    ice: Option<Agent>,
    /// What we offered (ICE, codecs, profiles).
    ours: Option<Offer>,
    /// What the peer offered.
    theirs: Option<Offer>,
    /// The version-2 key schedule of the call.
    keys: KeySchedule,
    /// ICE restarts and the direct path lost and found.
    reach: Reach,
    created: Instant,
    /// Our candidates not yet sent (before the offer, or while ringing).
    local_pending: Vec<String>,
    local_done: bool,
    /// The peer's trickled candidates that came before our agent existed.
    remote_pending: Vec<String>,
    remote_done: bool,
    path: Path,
    /// On the server relay since the answer while ICE checks run, and
    /// the user not told (see [`SessionConfig::relay_first`]).
    relay_unsaid: bool,
    /// When the peer's authenticated media last came on the ICE pair.
    direct_heard: Option<Instant>,
    relay_seq: u64,
    glare_peer: Option<UserId>,
    dtls_started: bool,
    /// DTLS records that came before our side could start DTLS (the peer's
    /// ICE selected the pair first): handed to the engine at its start,
    /// so the peer's first flight is not lost to its retransmission timer.
    early_dtls: VecDeque<(Via, Vec<u8>)>,
    /// The path the DTLS handshake runs on: the DTLS client's path at its
    /// start, the path of the first record the DTLS server took. Records
    /// on the other path are dropped and ours go only here, so an
    /// attacker on one path cannot mix its handshake into the honest one
    /// on the other (it is caught by the fingerprint if it is first, and
    /// ignored if not). A handshake that heard nothing on its path for
    /// [`DTLS_PATH_STALE`] moves to the other (a relay that carries no
    /// DTLS, a server that drops it); once secured it stays.
    dtls_via: Option<Via>,
    /// When `dtls_via` was chosen or last carried a record of the peer's.
    dtls_heard: Option<Instant>,
    media: Option<MediaSession>,
    clock: NtpClock,
    signaling_up: bool,
    /// The call, on the server relay alone, ends if the signaling server
    /// is not back by then.
    signaling_deadline: Option<Instant>,
    muted: bool,
    relay_at: Option<Instant>,
    accept_at: Option<Instant>,
    cancel_at: Option<Instant>,
    hangup_at: Option<Instant>,
    forced: Option<Outcome>,
    /// How long the server said to wait (a refused invite, `rate_limited`).
    retry_after: Option<u32>,
    report: SessionReport,
    ended: bool,
    transmits: VecDeque<Transmit>,
    signals: VecDeque<SignalOut>,
    events: VecDeque<SessionEvent>,
    scratch: Box<[u8; MAX_DATAGRAM]>,
}

impl<S: Sealer> std::fmt::Debug for CallSession<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSession")
            .field("me", &self.config.me)
            .field("state", &self.machine.state())
            .field("path", &self.path)
            .field("reach", &self.reach)
            .field("call_key", &self.keys.has_call_key())
            .field("dtls_started", &self.dtls_started)
            .field("secured", &self.media.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Sealer> CallSession<S> {
    /// A session for one call, created at `now`.
    pub fn new(config: SessionConfig, sealer: S, dtls: Box<dyn Dtls>, now: Instant) -> Self {
        let mut call_config = CallConfig::default();
        call_config.ring_timeout = config.ring_timeout;
        call_config.connect_timeout = config.connect_timeout;
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            machine: CallMachine::new(config.me.clone(), call_config),
            clock: NtpClock::from_system_time(now, config.unix_time),
            sealer,
            dtls,
            ice: None,
            ours: None,
            theirs: None,
            keys: KeySchedule::default(),
            reach: Reach::default(),
            created: now,
            local_pending: Vec::new(),
            local_done: false,
            remote_pending: Vec::new(),
            remote_done: false,
            path: Path::None,
            relay_unsaid: false,
            direct_heard: None,
            relay_seq: 0,
            glare_peer: None,
            dtls_started: false,
            early_dtls: VecDeque::new(),
            dtls_via: None,
            dtls_heard: None,
            media: None,
            signaling_up: true,
            signaling_deadline: None,
            muted: false,
            relay_at: None,
            accept_at: None,
            cancel_at: None,
            hangup_at: None,
            forced: None,
            retry_after: None,
            report: SessionReport {
                call_id: None,
                peer: None,
                role: Role::Callee,
                outcome: Outcome::Failed,
                reason: String::new(),
                path: None,
                sas: None,
                verified: false,
                cipher: "AES-128-GCM",
                stats: MediaStats::default(),
                started: None,
                answered: None,
                first_played: None,
                first_sent: None,
                ended: None,
                frames_sent: 0,
                frames_played: 0,
                frames_missing: 0,
                gap: 0,
                ice_restarts: 0,
            },
            ended: false,
            transmits: VecDeque::new(),
            signals: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Box::new([0u8; MAX_DATAGRAM]),
            config,
        }
    }

    // ----- inputs: the user -------------------------------------------------

    /// Places a call to `peer` (the end-to-end session with it must exist).
    pub fn place_call(&mut self, now: Instant, peer: UserId) -> Result<(), SessionError> {
        if peer == self.config.me {
            return Err(SessionError::CallingYourself);
        }
        if self.machine.state() != CallState::Idle {
            return Err(SessionError::State(cryptic_signal::Error::InvalidState(
                "already in a call",
            )));
        }
        self.start_ice(now, IceRole::Controlling)?;
        let call_id = CallId::random(&mut self.rng);
        self.report.call_id = Some(call_id);
        self.report.peer = Some(peer.clone());
        self.report.role = Role::Caller;
        self.report.started = Some(now);
        let offer = self.make_offer();
        let sealed = self
            .seal_invite(now, &peer, &offer)
            .map_err(SessionError::Seal)?;
        self.machine
            .place_call(now, call_id, peer, sealed)
            .map_err(SessionError::State)?;
        self.ours = Some(offer);
        self.cancel_at = self.config.cancel_after.map(|d| now + d);
        self.process(now);
        Ok(())
    }

    /// Accepts the ringing call.
    pub fn accept(&mut self, now: Instant) {
        self.accept_at = None;
        if self.machine.state() != CallState::Ringing || self.ours.is_some() {
            return;
        }
        let Some(peer) = self.report.peer.clone() else {
            return;
        };
        if let Err(e) = self.start_ice(now, IceRole::Controlled) {
            self.fail(now, Outcome::Failed, format!("ICE: {e}"));
            return;
        }
        let offer = self.make_offer();
        let sealed = match self.seal_answer(now, &peer, &offer) {
            Ok(s) => s,
            Err(e) => {
                self.fail(now, Outcome::Failed, format!("cannot seal the answer: {e}"));
                return;
            }
        };
        if self.machine.accept(now, sealed).is_err() {
            return;
        }
        self.ours = Some(offer);
        self.on_answered(now);
        self.process(now);
    }

    /// Declines the ringing call.
    pub fn reject(&mut self, now: Instant) {
        if self.machine.state() == CallState::Ringing {
            // Only fails when not ringing, checked above.
            let _ = self.machine.reject(now, RejectReason::Declined);
            self.process(now);
        }
    }

    /// Hangs up (cancels before the answer, declines while ringing).
    pub fn hangup(&mut self, now: Instant) {
        if self.report.reason.is_empty() {
            self.report.reason = "hung up".into();
        }
        // Fails only when there is no call, which is fine.
        let _ = self.machine.hangup(now);
        self.process(now);
    }

    /// Ends the call because something on our side failed (a device, a
    /// file): the peer is told the media failed.
    pub fn fail(&mut self, now: Instant, outcome: Outcome, reason: String) {
        self.forced = Some(outcome);
        self.report.reason = reason;
        match self.machine.state() {
            CallState::Connecting | CallState::Active => self.machine.media_failed(now),
            _ => {
                let _ = self.machine.hangup(now);
            }
        }
        self.process(now);
    }

    /// Replaces our audio with silence (the driver reads
    /// [`muted`](Self::muted) and encodes silence); the packet flow goes on.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Whether the microphone is muted.
    pub fn muted(&self) -> bool {
        self.muted
    }

    // ----- inputs: the network --------------------------------------------

    /// A message from the signaling server.
    pub fn handle_signal(&mut self, now: Instant, msg: Message) {
        if let Message::Error(e) = &msg {
            if e.code == ErrorCode::RateLimited
                && e.call_id.is_some()
                && e.call_id == self.report.call_id
            {
                self.retry_after = e.retry_after;
            }
        }
        if let Message::CallInvite(invite) = &msg {
            // An invite that would ring is opened and checked first: a
            // stale, replayed or unreadable one never reaches the machine.
            if self.would_ring(invite) {
                if let Err(reason) = self.admit(now, invite) {
                    self.events.push_back(SessionEvent::InviteRefused {
                        from: invite.from_user.clone(),
                        reason,
                    });
                    return;
                }
            }
        }
        self.machine.handle_message(now, msg);
        self.process(now);
    }

    /// A relay frame from the signaling server.
    pub fn handle_relay(&mut self, now: Instant, call_id: CallId, frame: &[u8]) {
        if self.ended || self.report.call_id != Some(call_id) || self.report.answered.is_none() {
            return;
        }
        // Only the peer's authenticated media (or, while no path exists, a
        // DTLS record: the handshake authenticates itself) moves the call to
        // the relay: the server cannot steer the media path by itself.
        // Media follows the peer's: authenticated media by the relay moves
        // us there, unless the peer's media came on the direct path (or a
        // pair was selected) just before.
        let switch = match self.demux(now, frame, Via::Relay) {
            Arrived::Media => self
                .direct_heard
                .is_none_or(|t| now >= t + DIRECT_HEARD_FRESH),
            Arrived::Dtls => self.path == Path::None,
            Arrived::Nothing => false,
        };
        if switch {
            if self.media.is_some() && matches!(self.path, Path::Ice(_)) {
                // The peer left the pair we hear nothing on: so do we, and
                // watch the pair as it does.
                self.enter_silent(now);
            }
            self.set_path(Path::Relay);
        }
        self.process(now);
    }

    /// A datagram that arrived from `source` on the local address
    /// `destination`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        // An ended call answers nothing, consent checks included.
        let Some(agent) = self.ice.as_mut().filter(|_| !self.ended) else {
            return;
        };
        let received = agent.handle_input(now, source, destination, data);
        self.after_ice_input(now, received, data);
    }

    /// One whole message read from the TCP or TLS stream to the TURN
    /// server `server` (see [`cryptic_ice::TurnStreams`]).
    pub fn handle_stream_input(
        &mut self,
        now: Instant,
        server: SocketAddr,
        transport: Transport,
        message: &[u8],
    ) {
        let Some(agent) = self.ice.as_mut().filter(|_| !self.ended) else {
            return;
        };
        let received = agent.handle_stream_input(now, server, transport, message);
        self.after_ice_input(now, received, message);
    }

    /// The TCP or TLS stream to the TURN server `server` closed: the relay
    /// candidate through it is gone (a pair on it is lost at once).
    pub fn stream_closed(&mut self, now: Instant, server: SocketAddr, transport: Transport) {
        if let Some(agent) = self.ice.as_mut() {
            agent.stream_closed(now, server, transport);
        }
        self.process(now);
    }

    fn after_ice_input(&mut self, now: Instant, received: Received, data: &[u8]) {
        if received == Received::Consumed {
            // Maybe a consent answer on a pair that fell silent.
            self.direct_revived(now);
        }
        let Some(agent) = self.ice.as_mut() else {
            return;
        };
        if let Received::Media(range) = received {
            let selected = agent.selected().map(|p| p.kind);
            if let Some(d) = data.get(range) {
                if let (Arrived::Media, Some(kind)) = (self.demux(now, d, Via::Direct), selected) {
                    // The peer's authenticated media came on the pair: the
                    // direct path works, take it back from the relay.
                    self.direct_heard = Some(now);
                    if self.path == Path::Relay && !self.config.force_relay {
                        self.direct_found(kind);
                    }
                }
            }
        }
        self.process(now);
    }

    /// The signaling connection is gone (the driver tries to connect
    /// again and says [`signaling_restored`](Self::signaling_restored)
    /// when it did). A call with secured media goes on: on an ICE pair
    /// (or on the relay while a selected pair fell silent: it goes back to
    /// the pair) for as long as it lasts; on the server relay alone (no
    /// pair) for [`SIGNALING_GRACE`], the server's own grace for a user
    /// that lost its connection, and then it ends. Any other call ends.
    /// Messages the session wants sent meanwhile are the driver's to hold
    /// (see [`poll_signal`](Self::poll_signal)); relay frames are not sent.
    pub fn signaling_lost(&mut self, now: Instant) {
        if !self.signaling_up {
            return;
        }
        self.signaling_up = false;
        // On the relay because the pair fell silent, with the pair still
        // selected: back to it, the only way left (its consent decides).
        let pair = self.ice.as_ref().and_then(Agent::selected);
        let relay_chosen = self.config.force_relay;
        if let (Some(p), Some(_), Path::Relay, false) = (pair, &self.media, self.path, relay_chosen)
        {
            self.reach.lost = None;
            self.reach.probe_at = None;
            self.set_path(Path::Ice(p.kind));
        }
        if self.media.is_some() && !self.ended {
            if !matches!(self.path, Path::Ice(_)) {
                self.signaling_deadline = Some(now + SIGNALING_GRACE);
            }
            self.events.push_back(SessionEvent::SignalingLost);
        } else if !self.ended {
            // A reason given before the connection closed (the server
            // revoked us) is the one to tell.
            if self.forced.is_none() {
                self.forced = Some(Outcome::Failed);
                self.report.reason = "the signaling server went away".into();
            }
            self.end(now, Reason::MediaFailed);
        }
    }

    /// The driver connected to the signaling server again after
    /// [`signaling_lost`](Self::signaling_lost): the peer's messages and
    /// relay frames reach us again, and ours reach the peer.
    pub fn signaling_restored(&mut self, now: Instant) {
        if self.signaling_up || self.ended {
            return;
        }
        self.signaling_up = true;
        self.signaling_deadline = None;
        self.events.push_back(SessionEvent::SignalingBack);
        // A direct path lost while we were away waits for an ICE restart,
        // which needs the server: start it now, the relay carries on.
        if self.reach.lost.is_some() && self.reach.restart_at.is_none() {
            if matches!(self.path, Path::Ice(_)) {
                self.set_path(Path::Relay);
            }
            self.restart_ice(now);
        }
        self.process(now);
    }

    /// Whether the signaling connection is up, as last told.
    pub fn signaling_up(&self) -> bool {
        self.signaling_up
    }

    /// Timers: call `now` when [`poll_timeout`](Self::poll_timeout) has
    /// come, or when the DTLS engine woke the driver.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        self.machine.handle_timeout(now);
        if let Some(agent) = self.ice.as_mut() {
            if agent.poll_timeout().is_some_and(|t| t <= now) {
                agent.handle_timeout(now);
            }
        }
        if self.dtls_started {
            self.dtls.handle_timeout(now);
        }
        if due(self.accept_at, now) {
            self.accept(now);
        }
        if due(self.cancel_at, now) {
            self.cancel_at = None;
            if self.report.answered.is_none() {
                // Fails only when the call already ended.
                let _ = self.machine.hangup(now);
            }
        }
        if due(self.hangup_at, now) {
            self.hangup_at = None;
            self.hangup(now);
        }
        if due(self.signaling_deadline, now) {
            self.signaling_deadline = None;
            if !self.signaling_up && !matches!(self.path, Path::Ice(_)) {
                self.forced = Some(Outcome::Failed);
                self.report.reason = "the signaling server went away".into();
                self.end(now, Reason::MediaFailed);
            }
        }
        self.reach_timeout(now);
        self.check_direct_silence(now);
        if due(self.relay_at, now) {
            self.relay_at = None;
            if self.relay_unsaid && self.path == Path::Relay {
                // Started on the relay and no pair came: now it is news.
                self.relay_unsaid = false;
                self.events
                    .push_back(SessionEvent::PathChanged("server-relay"));
            } else if self.media.is_none() && (self.config.force_relay || self.path == Path::None) {
                self.set_path(Path::Relay);
            }
        }
        self.send_rtcp(now);
        self.process(now);
    }

    // ----- inputs and outputs: audio ----------------------------------------

    /// Whether secured media is up: audio can flow.
    pub fn media_ready(&self) -> bool {
        self.media.is_some() && !self.ended
    }

    /// The datagrams handed in so far waited to be read (the audio devices
    /// were opening): their delays say nothing about the network, and the
    /// jitter buffer forgets them (it keeps the frames).
    pub fn forget_receive_delays(&mut self) {
        if let Some(media) = self.media.as_mut() {
            media.forget_receive_delays();
        }
    }

    /// Sends frames of `samples` at 48 kHz (480: 10 ms; 960: 20 ms, the
    /// default) from now on.
    pub fn set_frame_samples(&mut self, samples: u32) {
        if let Some(media) = self.media.as_mut() {
            media.set_frame_samples(samples);
        }
    }

    /// Samples per frame of what the peer sends (what each
    /// [`poll_playout`](Self::poll_playout) plays), once media flows.
    pub fn playout_frame_samples(&self) -> Option<u32> {
        self.media.as_ref().map(|m| m.playout_frame_samples())
    }

    /// Sends one encoded audio frame (`marker` on the first after silence).
    pub fn send_audio(&mut self, now: Instant, payload: &[u8], marker: bool) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let first = self.report.first_sent.is_none();
        match media.send_frame(now, payload, marker || first, &mut self.scratch[..]) {
            Ok(n) => {
                if first {
                    self.report.first_sent = Some(now);
                }
                self.report.frames_sent += 1;
                let datagram = self.scratch[..n].to_vec();
                self.send_app(now, &datagram);
            }
            Err(e) => tracing::debug!("frame not sent: {e}"),
        }
    }

    /// Sends copies of the `copies` frames before each frame (redundant
    /// audio, RFC 2198) when the peer offered it; 0 turns them off.
    pub fn set_redundancy(&mut self, copies: usize) {
        if let Some(media) = self.media.as_mut() {
            media.set_redundancy(copies);
        }
    }

    /// Whether the peer offered redundant audio (copies of earlier frames
    /// in each packet), once media flows.
    pub fn peer_takes_copies(&self) -> bool {
        self.media.as_ref().is_some_and(|m| m.peer_takes_red())
    }

    /// What to play for the next 20 ms (`None` before media is up).
    pub fn poll_playout(&mut self, now: Instant) -> Option<Playout<'_>> {
        let p = self.media.as_mut()?.poll_playout(now);
        match &p {
            Playout::Frame(_) => {
                self.report.frames_played += 1;
                self.report.first_played.get_or_insert(now);
                self.report.frames_missing += std::mem::take(&mut self.report.gap);
            }
            // Concealment the buffer inserts to grow its delay, and the
            // silence of a sender's pause (DTX), stand for no frame of the
            // peer's: not a loss.
            Playout::Conceal(c) if c.inserted => {}
            Playout::Silence(s) if s.dtx => {}
            _ if self.report.first_played.is_some() => self.report.gap += 1,
            _ => {}
        }
        Some(p)
    }

    /// Tells the encoder how much loss the peer reports (percent).
    pub fn loss_reported_by_peer(&self) -> f64 {
        self.media
            .as_ref()
            .map_or(0.0, |m| m.stats().loss_reported_by_peer)
    }

    /// The media figures so far (loss both ways, RTT, jitter), once media
    /// runs.
    pub fn media_stats(&self) -> Option<crate::media::MediaStats> {
        self.media.as_ref().map(|m| m.stats())
    }

    // ----- outputs ----------------------------------------------------------

    /// The next UDP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing to send on the signaling connection.
    pub fn poll_signal(&mut self) -> Option<SignalOut> {
        self.signals.pop_front()
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        [
            self.machine.poll_timeout(),
            self.ice.as_ref().and_then(Agent::poll_timeout),
            self.dtls_started
                .then(|| self.dtls.poll_timeout())
                .flatten(),
            self.media.as_ref().map(MediaSession::poll_timeout),
            self.relay_at,
            self.reach.restart_at,
            self.direct_silent_at(),
            self.reach.probe_at,
            self.accept_at,
            self.cancel_at,
            self.hangup_at,
            self.signaling_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The end-to-end store (for the driver to persist it).
    pub fn sealer_mut(&mut self) -> &mut S {
        &mut self.sealer
    }

    /// Our user.
    pub fn me(&self) -> &UserId {
        &self.config.me
    }

    /// Whether the call ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The state of the call machine.
    pub fn state(&self) -> CallState {
        self.machine.state()
    }

    /// How the call went (so far).
    pub fn report(&self) -> SessionReport {
        let mut r = self.report.clone();
        if let Some(m) = &self.media {
            r.stats = m.stats();
        }
        // Loss counts the frames that never came, not only the sequence
        // numbers skipped: a path silent to the end of the call sends no
        // higher number to count from.
        let missing = r.missing_now();
        r.frames_missing = missing;
        r.gap = 0;
        let due = r.frames_played + missing;
        if due > 0 {
            let by_time = missing as f64 / due as f64;
            r.stats.loss_received = r.stats.loss_received.max(by_time);
        }
        r.path = self.report.path.or(self.path.name());
        r.ice_restarts = self.reach.restarts;
        r
    }

    // ----- inside -----------------------------------------------------------

    fn start_ice(&mut self, now: Instant, role: IceRole) -> Result<(), SessionError> {
        let mut config = AgentConfig::new(role).with_seed(self.rng.random());
        for s in &self.config.stun_servers {
            config = config.with_stun_server(*s);
        }
        for t in &self.config.turn_servers {
            config = config.with_turn_server(t.clone());
        }
        if let Some(t) = self.config.ice_timers.clone() {
            config = config.with_timers(t);
        }
        let mut agent = Agent::new(config, now).map_err(SessionError::Ice)?;
        for h in &self.config.hosts {
            agent.add_host(*h);
        }
        agent.gather(now);
        self.ice = Some(agent);
        self.local_pending.clear();
        self.local_done = false;
        self.drain_ice(now);
        Ok(())
    }

    fn make_offer(&mut self) -> Offer {
        // The agent exists: every caller of this started it first.
        let (ufrag, pwd) = self
            .ice
            .as_ref()
            .map(|a| a.local_credentials().clone())
            .map(|c| (c.ufrag, c.pwd))
            .unwrap_or_default();
        let mut profiles: Vec<SrtpProfile> = SRTP_PROFILES.iter().map(|p| p.0).collect();
        if self.config.prefer_chacha {
            profiles.reverse();
        }
        Offer {
            ice: cryptic_signal::payload::IceParams::new(
                ufrag,
                pwd,
                std::mem::take(&mut self.local_pending),
                self.local_done,
            ),
            codecs: vec![CODEC, AudioCodec::Red],
            profiles,
        }
    }

    /// Both offers are known: apply the peer's ICE description and start
    /// the clock of the relay fallback.
    fn on_answered(&mut self, now: Instant) {
        self.report.answered = Some(now);
        let Some(ice) = self.theirs.as_ref().map(|o| o.ice.clone()) else {
            return;
        };
        if let Some(agent) = self.ice.as_mut() {
            if let Ok(creds) = Credentials::new(ice.ice_ufrag.clone(), ice.ice_pwd.clone()) {
                if let Err(e) = agent.set_remote_credentials(now, creds) {
                    tracing::debug!("peer's ICE credentials refused: {e}");
                }
            }
        }
        let mut remote = ice.candidates;
        remote.append(&mut self.remote_pending);
        self.add_remote(now, &remote, ice.end_of_candidates || self.remote_done);
        self.relay_at = Some(if self.config.force_relay {
            now
        } else {
            now + self.config.relay_after
        });
        if self.config.relay_first && !self.config.force_relay && self.path == Path::None {
            // The relay carries DTLS and the first frames while ICE
            // checks run; a selected pair takes over.
            self.path = Path::Relay;
            self.relay_unsaid = true;
        }
        // Candidates gathered while the call rang.
        self.send_local_candidates(now);
    }

    fn add_remote(&mut self, now: Instant, candidates: &[String], done: bool) {
        let Some(agent) = self.ice.as_mut() else {
            self.remote_pending.extend_from_slice(candidates);
            self.remote_done |= done;
            return;
        };
        for c in candidates {
            if c == cryptic_ice::END_OF_CANDIDATES {
                continue;
            }
            if let Err(e) = agent.add_remote_candidate_str(now, c) {
                tracing::debug!("peer's candidate refused: {e}");
            }
        }
        if done {
            agent.remote_end_of_candidates();
        }
    }

    fn send_local_candidates(&mut self, now: Instant) {
        if self.ours.is_none() || !self.can_trickle() {
            return;
        }
        if self.local_pending.is_empty() && !self.local_done && self.reach.announce.is_none() {
            return;
        }
        let body = self.candidates_body();
        match self.seal_candidates(now, body) {
            Ok(sealed) => {
                if let Err(e) = self.machine.send_candidate(sealed) {
                    tracing::debug!("candidate not sent: {e}");
                }
            }
            Err(e) => tracing::debug!("candidate not sealed: {e}"),
        }
    }

    fn can_trickle(&self) -> bool {
        match self.machine.state() {
            CallState::Inviting => self.report.role == Role::Caller,
            CallState::Connecting | CallState::Active => true,
            _ => false,
        }
    }

    /// Runs everything the last input set off, until nothing moves.
    fn process(&mut self, now: Instant) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(e) = self.machine.poll_event() {
                moved = true;
                self.on_call_event(now, e);
            }
            while let Some(m) = self.machine.poll_transmit() {
                moved = true;
                self.signals.push_back(SignalOut::Message(Box::new(m)));
            }
            moved |= self.drain_ice(now);
            moved |= self.maybe_start_dtls(now);
            moved |= self.drain_dtls(now);
            if !moved {
                break;
            }
        }
    }

    fn on_call_event(&mut self, now: Instant, event: CallEvent) {
        match event {
            CallEvent::Incoming { call_id, from, .. } => self.on_incoming(now, call_id, from),
            CallEvent::Answer { payload, .. } => self.on_answer(now, payload),
            CallEvent::Candidate { payload, .. } => self.on_candidate(now, payload),
            CallEvent::RejectedBusy { from, .. } => self
                .events
                .push_back(SessionEvent::MissedWhileBusy { from }),
            CallEvent::State {
                to: CallState::Ended,
                reason: Reason::GlareLost,
                peer,
                ..
            } => self.on_glare_lost(peer),
            CallEvent::State {
                to: CallState::Ended,
                reason,
                ..
            } => self.end(now, reason),
            _ => {}
        }
    }

    fn on_glare_lost(&mut self, peer: UserId) {
        // The peer's call rings next (its Incoming event follows): answer
        // it as ours, from scratch.
        self.glare_peer = Some(peer);
        self.ice = None;
        self.ours = None;
        self.theirs = None;
        self.keys.reset();
        self.local_pending.clear();
        self.remote_pending.clear();
        self.remote_done = false;
        self.cancel_at = None;
        self.reach = Reach::default();
        self.early_dtls.clear();
        self.dtls_via = None;
        self.dtls_heard = None;
    }

    fn drain_ice(&mut self, now: Instant) -> bool {
        let Some(agent) = self.ice.as_mut() else {
            return false;
        };
        let mut moved = false;
        while let Some(t) = agent.poll_transmit() {
            moved = true;
            self.transmits.push_back(t);
        }
        let mut events = Vec::new();
        while let Some(e) = agent.poll_event() {
            events.push(e);
        }
        let mut trickle = false;
        for e in events {
            moved = true;
            trickle |= self.on_ice_event(now, e);
        }
        if trickle {
            // One sealed message for everything the agent said at once.
            self.send_local_candidates(now);
        }
        moved
    }

    /// Handles one event of the agent; `true` when there are candidates
    /// (or a restart) to send.
    fn on_ice_event(&mut self, now: Instant, event: IceEvent) -> bool {
        match event {
            IceEvent::CandidateGathered(c) => {
                self.local_pending.push(c.to_sdp_string());
                return true;
            }
            IceEvent::GatheringDone => {
                self.local_done = true;
                return true;
            }
            IceEvent::Restarted(creds) => {
                // Our new description goes out as one sealed `restart`.
                self.local_pending.clear();
                self.local_done = false;
                self.reach.announce = Some(creds);
                return true;
            }
            IceEvent::Selected(pair) => {
                self.direct_heard = Some(now);
                self.direct_found(pair.kind);
            }
            IceEvent::PathLost
                if matches!(self.path, Path::Ice(_)) || self.reach.lost == Some(Loss::Silent) =>
            {
                if self.signaling_up {
                    // Consent lost on the pair: the server relay carries on
                    // while ICE restarts.
                    self.direct_lost(Loss::Consent);
                    self.restart_ice(now);
                } else {
                    self.report.reason = "the media path was lost (consent expired)".into();
                    self.forced = Some(Outcome::Failed);
                    self.machine.media_failed(now);
                }
            }
            // Without a pair the relay fallback timer decides.
            _ => {}
        }
        false
    }

    fn set_path(&mut self, path: Path) {
        if self.path == path {
            return;
        }
        self.relay_unsaid = false;
        self.path = path;
        if let Some(name) = path.name() {
            self.events.push_back(SessionEvent::PathChanged(name));
        }
    }

    fn maybe_start_dtls(&mut self, now: Instant) -> bool {
        if self.dtls_started || self.ended || self.report.answered.is_none() {
            return false;
        }
        // Both sides hold K_call (the callee learnt the caller's
        // fingerprint from the reveal) and a path exists.
        if self.path == Path::None || !self.keys.has_call_key() {
            return false;
        }
        let Some(expected) = self.keys.peer_fingerprint() else {
            return false;
        };
        let profile = self.profile();
        if profile == Profile::CrypticChaCha20Poly1305 {
            self.report.cipher = "ChaCha20-Poly1305";
        }
        let role = match self.report.role {
            Role::Caller => DtlsRole::Server,
            Role::Callee => DtlsRole::Client,
        };
        self.dtls_started = true;
        self.dtls_via = if role == DtlsRole::Server {
            // The server answers on the path of the first record it took.
            self.early_dtls.front().map(|(via, _)| *via)
        } else {
            // The client speaks first, on its path.
            self.path.via()
        };
        self.dtls_heard = self.dtls_via.map(|_| now);
        self.dtls
            .start(now, role, profile, Fingerprint::from_bytes(expected.0));
        for (via, record) in std::mem::take(&mut self.early_dtls) {
            if Some(via) == self.dtls_via {
                self.dtls.handle_packet(now, &record);
            }
        }
        true
    }

    /// ChaCha20-Poly1305 only when both users put it first.
    fn profile(&self) -> Profile {
        let first = |o: &Option<Offer>| o.as_ref().and_then(|o| o.profiles.first().copied());
        match (first(&self.ours), first(&self.theirs)) {
            (Some(a), Some(b)) if a == b && a == SRTP_PROFILES[1].0 => SRTP_PROFILES[1].1,
            _ => SRTP_PROFILES[0].1,
        }
    }

    fn drain_dtls(&mut self, now: Instant) -> bool {
        if !self.dtls_started {
            return false;
        }
        let mut moved = false;
        while let Some(out) = self.dtls.poll_output() {
            moved = true;
            match out {
                DtlsOutput::Transmit(d) => self.send_dtls(now, &d),
                DtlsOutput::Connected { exported, .. } => self.on_secured(now, exported),
                DtlsOutput::Failed(DtlsError::FingerprintMismatch) => {
                    self.forced = Some(Outcome::SecurityAbort);
                    self.report.reason = "the peer's DTLS certificate does not match the \
                        fingerprint received end to end: someone is in the middle; call aborted"
                        .into();
                    self.machine.security_abort(now);
                }
                DtlsOutput::Failed(e) => {
                    self.report.reason = format!("DTLS: {e}");
                    self.forced = Some(Outcome::Failed);
                    self.machine.media_failed(now);
                }
            }
        }
        moved
    }

    fn on_secured(&mut self, now: Instant, exported: Zeroizing<Vec<u8>>) {
        if self.ended || self.media.is_some() {
            return;
        }
        let profile = self.profile();
        let role = match self.report.role {
            Role::Caller => DtlsRole::Server,
            Role::Callee => DtlsRole::Client,
        };
        let wire_profile = SRTP_PROFILES
            .iter()
            .find(|(_, p)| *p == profile)
            .map_or(SrtpProfile::AeadAes128Gcm, |(w, _)| *w);
        // The SRTP keys are the exporter output bound to K_call.
        let keys = self
            .keys
            .bind_srtp(&exported, wire_profile)
            .ok_or_else(|| "no call key".to_string())
            .and_then(|m| SrtpKeys::from_exported(profile, role, &m).map_err(|e| e.to_string()));
        let keys = match keys {
            Ok(k) => k,
            Err(e) => {
                self.fail(now, Outcome::Failed, format!("SRTP keys: {e}"));
                return;
            }
        };
        let ssrc: u32 = self.rng.random();
        let cname = self.config.me.to_string();
        let mut config = MediaConfig::new(ssrc, cname, self.rng.random());
        config.jitter.time_stretch = self.config.time_stretch;
        if self.config.fine_stretch {
            config.jitter.steady_jitter = crate::media::STEADY_JITTER;
        }
        crate::media::tune_for_stretch(&mut config.jitter);
        config.peer_takes_red = self
            .theirs
            .as_ref()
            .is_some_and(|o| o.codecs.contains(&AudioCodec::Red));
        match MediaSession::new(&keys, config, self.clock, now) {
            Ok(m) => self.media = Some(m),
            Err(e) => {
                self.fail(now, Outcome::Failed, format!("media: {e}"));
                return;
            }
        }
        if let Some(sas) = self.keys.sas() {
            let verified = self
                .report
                .peer
                .as_ref()
                .is_some_and(|p| self.sealer.is_verified(p));
            self.report.sas = Some(sas.clone());
            self.report.verified = verified;
            self.events
                .push_back(SessionEvent::Secured { sas, verified });
        }
        self.machine.media_connected(now);
        self.direct_heard = Some(now);
        self.hangup_at = self.config.duration.map(|d| now + d);
    }

    /// Unix seconds at `now`.
    fn unix_now(&self, now: Instant) -> i64 {
        (self.config.unix_time + now.saturating_duration_since(self.created)).as_secs() as i64
    }

    /// Hands an application datagram to the DTLS engine or the media
    /// session by its first byte (RFC 7983).
    fn demux(&mut self, now: Instant, datagram: &[u8], via: Via) -> Arrived {
        match datagram.first() {
            Some(20..=63) if self.dtls_via.is_some_and(|v| v != via) && !self.dtls_stale(now) => {
                tracing::debug!(
                    "a DTLS record on the {via:?} path was dropped: the handshake runs on the other"
                );
                Arrived::Nothing
            }
            Some(20..=63) if self.dtls_started => {
                if self.dtls_via.is_some_and(|v| v != via) {
                    tracing::info!(
                        "DTLS handshake moves to the {via:?} path: nothing came on the other"
                    );
                }
                self.dtls_via = Some(via);
                self.dtls_heard = Some(now);
                self.dtls.handle_packet(now, datagram);
                Arrived::Dtls
            }
            Some(20..=63) if !self.ended => {
                // Kept for the start, a few at most (a first flight is
                // one to three records); the engine checks them as any.
                if self.early_dtls.len() == EARLY_DTLS_RECORDS {
                    self.early_dtls.pop_front();
                }
                self.early_dtls.push_back((via, datagram.to_vec()));
                Arrived::Nothing
            }
            Some(128..=191) => {
                let Some(media) = self.media.as_mut() else {
                    return Arrived::Nothing;
                };
                match media.handle_datagram(now, datagram) {
                    Ok(MediaIncoming::Bye) => {
                        if self.report.reason.is_empty() {
                            let peer = self.report.peer.as_ref().map(ToString::to_string);
                            self.report.reason =
                                format!("{} hung up", peer.as_deref().unwrap_or("the peer"));
                        }
                        let _ = self.machine.hangup(now);
                        Arrived::Media
                    }
                    Ok(_) => Arrived::Media,
                    Err(_) => Arrived::Nothing,
                }
            }
            _ => Arrived::Nothing,
        }
    }

    fn send_app(&mut self, now: Instant, datagram: &[u8]) {
        match self.path {
            Path::Relay if self.signaling_up => self.send_relay(datagram),
            Path::Ice(_) => {
                self.send_direct(datagram);
                if self.direct_suspect(now) {
                    self.send_relay(datagram);
                }
            }
            // No path yet: DTLS retransmits.
            _ => {}
        }
    }

    /// Whether the handshake's path has carried nothing of the peer's for
    /// [`DTLS_PATH_STALE`] (never once secured).
    fn dtls_stale(&self, now: Instant) -> bool {
        self.media.is_none() && self.dtls_heard.is_some_and(|t| now >= t + DTLS_PATH_STALE)
    }

    /// A DTLS record goes on the handshake's path (see `dtls_via`), or on
    /// the media path when the handshake's fell silent.
    fn send_dtls(&mut self, now: Instant, record: &[u8]) {
        let current = self.path.via();
        if current.is_some() && current != self.dtls_via && self.dtls_stale(now) {
            tracing::info!(
                "DTLS handshake moves to the {current:?} path: nothing came on the other"
            );
            self.dtls_via = current;
            self.dtls_heard = Some(now);
        }
        match self.dtls_via {
            Some(Via::Relay) if self.signaling_up => self.send_relay(record),
            Some(Via::Direct) => self.send_direct(record),
            Some(Via::Relay) => {}
            None => self.send_app(now, record),
        }
    }

    /// On the selected ICE pair, if any.
    fn send_direct(&mut self, datagram: &[u8]) {
        if let Some(t) = self.ice.as_mut().and_then(|a| a.transmit_app(datagram)) {
            self.transmits.push_back(t);
        }
    }

    fn send_relay(&mut self, datagram: &[u8]) {
        let Some(call_id) = self.report.call_id else {
            return;
        };
        self.relay_seq += 1;
        self.signals.push_back(SignalOut::Relay {
            call_id,
            seq: self.relay_seq,
            frame: datagram.to_vec(),
        });
    }

    /// The peer's media has not come on the pair for [`SUSPECT_AFTER`]:
    /// ours goes on the relay too (the peer's buffer drops the copies),
    /// so a blackout costs the peer a fifth of a second of audio, not the
    /// second it takes to find the pair silent.
    fn direct_suspect(&self, now: Instant) -> bool {
        self.media.is_some()
            && self.signaling_up
            && !self.config.force_relay
            && self.reach.lost.is_none()
            && self.direct_heard.is_some_and(|t| now >= t + SUSPECT_AFTER)
    }

    fn send_rtcp(&mut self, now: Instant) {
        loop {
            let Some(media) = self.media.as_mut() else {
                return;
            };
            match media.poll_transmit(now, &mut self.scratch[..]) {
                Some(Ok(n)) => {
                    let d = self.scratch[..n].to_vec();
                    self.send_app(now, &d);
                }
                Some(Err(e)) => tracing::debug!("RTCP report not sent: {e}"),
                None => return,
            }
        }
    }

    /// The call machine ended the call: settle the outcome, say goodbye on
    /// the media path, close ICE and DTLS.
    fn end(&mut self, now: Instant, reason: Reason) {
        if self.ended {
            return;
        }
        let peer = self
            .report
            .peer
            .as_ref()
            .map_or_else(|| "the peer".to_string(), ToString::to_string);
        let too_soon = matches!(reason, Reason::ServerError(ErrorCode::RateLimited));
        let (outcome, mut words) = outcome_of(
            reason,
            self.report.answered.is_some(),
            self.report.role,
            &peer,
        );
        if let (true, Some(s)) = (too_soon, self.retry_after) {
            words = format!("wait {s} s before calling {peer} again");
        }
        self.report.outcome = self.forced.unwrap_or(outcome);
        if self.report.reason.is_empty() || self.report.reason == "hung up" {
            self.report.reason = words;
        }
        // RTCP BYE three times (each its own SRTCP index): when the
        // signaling server is gone it is the only word the peer gets, and one
        // lost datagram would leave it waiting for consent to expire.
        for _ in 0..3 {
            let Some(media) = self.media.as_mut() else {
                break;
            };
            self.report.stats = media.stats();
            if let Ok(n) = media.write_bye(now, &mut self.scratch[..]) {
                let d = self.scratch[..n].to_vec();
                self.send_app(now, &d);
            }
        }
        self.report.path = self.path.name();
        if let Some(agent) = self.ice.as_mut() {
            agent.close(now);
            while let Some(t) = agent.poll_transmit() {
                self.transmits.push_back(t);
            }
        }
        self.dtls.close();
        self.report.ended = Some(now);
        self.ended = true;
        self.events.push_back(SessionEvent::Ended);
    }
}

/// A DTLS handshake that heard nothing of the peer's on its path for this
/// long may move to the other path (see `CallSession::dtls_via`): a
/// flight and its answer through the server take a few hundred
/// milliseconds at most, and the first retransmission comes after 1 s.
const DTLS_PATH_STALE: Duration = Duration::from_secs(1);

/// Which way an application datagram came or goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// The signaling server's relay.
    Relay,
    /// The ICE agent's selected pair (any local candidate).
    Direct,
}

/// What an application datagram turned out to be.
enum Arrived {
    /// A DTLS record, handed to the engine.
    Dtls,
    /// Media that passed SRTP or SRTCP authentication.
    Media,
    /// Dropped (unauthentic, malformed, or nothing to take it).
    Nothing,
}

/// Authenticated media on the ICE pair (or a pair selected) this recently
/// keeps relayed media from moving the path to the relay: frames still in
/// flight on the relay when both sides went back to direct do not pull
/// them off it, while a peer that moved to the relay is followed at once.
const DIRECT_HEARD_FRESH: Duration = Duration::from_millis(500);

/// No authenticated media on the pair for this long (ten frames) and ours
/// goes on the relay as well until the peer's comes again.
const SUSPECT_AFTER: Duration = Duration::from_millis(200);

fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|t| t <= now)
}

/// The outcome of a call the machine ended for `reason`, and why in plain
/// words, from our side (`role`) about `peer`.
fn outcome_of(reason: Reason, answered: bool, role: Role, peer: &str) -> (Outcome, String) {
    use cryptic_signal::wire::HangupReason;
    let caller = role == Role::Caller;
    match reason {
        Reason::SecurityAbort => (Outcome::SecurityAbort, "someone is in the middle".into()),
        Reason::RemoteHangup(Some(HangupReason::SecurityAbort)) => (
            Outcome::SecurityAbort,
            format!(
                "{peer}'s side found someone in the middle (a certificate or key did not \
                 match); call aborted"
            ),
        ),
        Reason::RemoteHangup(Some(HangupReason::MediaFailed)) => {
            (Outcome::Failed, format!("{peer}'s media failed"))
        }
        // The server gave up waiting for the peer to come back.
        Reason::RemoteHangup(Some(HangupReason::PeerDisconnected)) if answered => (
            Outcome::Completed,
            format!("{peer}'s connection to the server was lost"),
        ),
        Reason::LocalHangup if answered => (Outcome::Completed, "you hung up".into()),
        Reason::RemoteHangup(_) if answered => (Outcome::Completed, format!("{peer} hung up")),
        Reason::LocalHangup if caller => (
            Outcome::Cancelled,
            format!("you cancelled before {peer} answered"),
        ),
        Reason::LocalHangup => (Outcome::Rejected, "you declined".into()),
        Reason::RemoteHangup(Some(HangupReason::Timeout)) => {
            (Outcome::Missed, format!("missed call from {peer}"))
        }
        Reason::RemoteHangup(_) => (Outcome::Cancelled, format!("{peer} cancelled the call")),
        Reason::RemoteReject(RejectReason::Busy) | Reason::LocalReject(RejectReason::Busy) => {
            (Outcome::Busy, format!("{peer} is busy"))
        }
        Reason::RemoteReject(RejectReason::Declined) => {
            (Outcome::Rejected, format!("{peer} declined"))
        }
        Reason::RemoteReject(RejectReason::KeyChanged) => (
            Outcome::Rejected,
            format!("{peer} refused: your key changed for them (they can accept it with `cryptic-call trust`)"),
        ),
        Reason::RemoteReject(RejectReason::Incompatible) => (
            Outcome::Rejected,
            format!("{peer}'s client could not take the call (no codec or cipher in common)"),
        ),
        Reason::RemoteReject(RejectReason::Timeout) => {
            (Outcome::Missed, format!("{peer} did not answer"))
        }
        Reason::RemoteReject(r) => (Outcome::Rejected, format!("{peer} refused ({r:?})")),
        Reason::LocalReject(RejectReason::Incompatible) => (
            Outcome::Rejected,
            format!("the call from {peer} could not be taken"),
        ),
        Reason::LocalReject(_) => (Outcome::Rejected, "you declined".into()),
        Reason::RingTimeout if caller => (Outcome::Missed, format!("{peer} did not answer")),
        Reason::RingTimeout => (Outcome::Missed, format!("missed call from {peer}")),
        Reason::ConnectTimeout => (
            Outcome::Failed,
            "no media path within the connect timeout".into(),
        ),
        Reason::MediaFailed => (Outcome::Failed, "media failed".into()),
        Reason::ServerError(ErrorCode::UserOffline) => {
            (Outcome::Offline, format!("{peer} is offline"))
        }
        Reason::ServerError(ErrorCode::RateLimited) => (
            Outcome::Failed,
            format!("the server asks you to wait before calling {peer} again"),
        ),
        Reason::ServerError(ErrorCode::SessionReplaced) => (
            Outcome::Failed,
            "you signed in elsewhere: this session was replaced".into(),
        ),
        Reason::ServerError(code) => (Outcome::Failed, format!("the server refused: {code:?}")),
        other => (Outcome::Failed, format!("{other:?}")),
    }
}
