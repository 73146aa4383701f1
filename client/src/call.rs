//! The call driver: sockets, the signaling connection, audio wake-ups and
//! a timer around one [`CallSession`], which makes every decision.
//!
//! ```text
//!   UDP socket ─────┐                       ┌──> UDP socket
//!   signaling ──────┤  CallSession (sans-IO) ├──> signaling (messages, relay frames)
//!   user controls ──┤                       ├──> events: printed lines
//!   audio wake ─────┤  <── Voice (Opus, devices or files): every 2 ms with a
//!                   │      sound device (it paces), else when a frame is due
//!   DTLS waker ─────┘
//! ```
//!
//! [`run_call`] drives one call for one user until it ends and returns a
//! [`CallReport`]. Everything a call decides (outcomes, relay fallback,
//! profiles, the SAS, glare) lives in [`crate::session`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::link::{Link, LinkEvent};
use cryptic_audio::{FrameDuration, ProcessingConfig, SinkSpec, SourceSpec};
use cryptic_ice::{StreamInput, Transport, TurnServer, TurnStreams};
use cryptic_signal::call::Role;
use cryptic_signal::client::{Incoming as SignalIncoming, Receiver, Sender};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::wire::{CallId, ErrorCode, Message, UserId};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::dtls::{AsyncDtls, DtlsWaker};
use crate::error::Error;
use crate::history::Outcome;
use crate::media::MediaStats;
use crate::session::{CallSession, SessionConfig, SessionEvent, SignalOut};
use crate::voice::Voice;

pub use crate::session::{CODEC, SRTP_PROFILES};

/// What the user asked for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallOptions {
    /// Where our audio comes from.
    pub input: SourceSpec,
    /// Where the peer's audio goes.
    pub output: SinkSpec,
    /// Hang up after this long in the active state (`None`: until the peer
    /// hangs up or the call fails).
    pub duration: Option<Duration>,
    /// Opus bitrate, bits per second.
    pub bitrate: u32,
    /// Bind ICE to loopback only (the demo and tests); otherwise every
    /// local address.
    pub loopback_only: bool,
    /// Print the live status line every second.
    pub status_line: bool,
    /// How long the callee lets a call ring before auto-accepting
    /// (`None`: the callee never accepts by itself).
    pub auto_accept: Option<Duration>,
    /// Give up on ICE after this long and end the call.
    pub ice_timeout: Duration,
    /// The callee declines every call instead of accepting it.
    pub auto_reject: bool,
    /// The caller hangs up if the call is not answered within this long.
    pub cancel_after: Option<Duration>,
    /// How long an invite rings before it ends unanswered.
    pub ring_timeout: Duration,
    /// Send media through the signaling server from the start.
    pub force_relay: bool,
    /// Offer the Cryptic ChaCha20-Poly1305 SRTP profile first; it is used
    /// when both users prefer it, AES-128-GCM otherwise.
    pub prefer_chacha: bool,
    /// Fall back to the server relay when ICE has found no path this long
    /// after the answer.
    pub relay_after: Duration,
    /// Start on the server relay at the answer while ICE checks run, and
    /// move to the pair once one is selected (see
    /// [`SessionConfig::relay_first`](crate::session::SessionConfig::relay_first)).
    pub relay_first: bool,
    /// Echo cancellation, noise suppression and gain control on the
    /// microphone: all on when the input is a sound device, off for files,
    /// tones and silence (see [`CallOptions::new`]).
    pub processing: ProcessingConfig,
    /// How long the frames we send are: 10 ms from a microphone (the
    /// default there: about 20 ms less mouth to ear than 20 ms frames,
    /// 54-59 ms against 79-82 through devices; the
    /// rate controller spends 1.5 times the bitrate on them, which keeps
    /// the score, PESQ-WB 3.72 at 48 kbit/s against 3.70 for 20 ms at 32,
    /// `audio/quality/encoder-gap.sh`), 20 ms from a file or tone (half
    /// the packets and bits). The peer learns which from the RTP
    /// timestamps. 10 ms frames also let the jitter buffer trim pauses by
    /// just its excess delay ([`SessionConfig::fine_stretch`](crate::session::SessionConfig::fine_stretch)).
    pub frame: FrameDuration,
}

impl CallOptions {
    /// Options with the given input and output and no time limit; the
    /// audio processing is on for a microphone, off otherwise.
    pub fn new(input: SourceSpec, output: SinkSpec) -> Self {
        let (processing, frame) = match input {
            SourceSpec::Default | SourceSpec::Device(_) => {
                (ProcessingConfig::all(), FrameDuration::Ms10)
            }
            _ => (ProcessingConfig::none(), FrameDuration::Ms20),
        };
        CallOptions {
            processing,
            frame,
            input,
            output,
            duration: None,
            // 32 kbit/s to start: with constant-size packets 24 kbit/s
            // scored PESQ-WB 3.48 on seven speech samples against 3.89 at
            // 32 (audio/quality/encoder-gap.sh); the rate controller steps
            // down at once when the path loses packets.
            bitrate: 32_000,
            loopback_only: false,
            status_line: true,
            auto_accept: None,
            ice_timeout: Duration::from_secs(10),
            auto_reject: false,
            cancel_after: None,
            ring_timeout: Duration::from_secs(45),
            force_relay: false,
            prefer_chacha: false,
            relay_after: Duration::from_secs(3),
            relay_first: true,
        }
    }
}

/// What the user can do to a call in progress (the interactive shell).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Control {
    /// Answer the ringing call.
    Accept,
    /// Decline the ringing call.
    Reject,
    /// End the call (or cancel it before the answer).
    Hangup,
    /// Replace the microphone with silence (`true`) or stop doing so; the
    /// packet flow goes on unchanged.
    Mute(bool),
    /// Print the status line now.
    Stats,
    /// Capture from this microphone (or file, tone) from now on; the old
    /// one stays when the new one does not open.
    Input(SourceSpec),
    /// Play to this speaker (or file) from now on; the old one stays when
    /// the new one does not open.
    Output(SinkSpec),
}

/// How a call went, for the summary and the history.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallReport {
    /// The call.
    pub call_id: Option<CallId>,
    /// The other user.
    pub peer: Option<UserId>,
    /// Our side.
    pub role: Role,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, in words.
    pub reason: String,
    /// From the invite (sent or received) to the first audio frame played.
    pub setup_time: Option<Duration>,
    /// From the answer to the end.
    pub active_time: Duration,
    /// The media path.
    pub path: Option<String>,
    /// The short authentication string both users should see.
    pub sas: Option<String>,
    /// The SRTP cipher of the call.
    pub cipher: &'static str,
    /// Media figures at the end.
    pub stats: MediaStats,
    /// When the call started (invite sent or received), Unix seconds.
    pub started_unix: i64,
    /// When our first audio frame was encoded and sent.
    pub first_sent: Option<Instant>,
    /// When the first of the peer's frames was played.
    pub first_played: Option<Instant>,
    /// When sounds started in what we sent (after 100 ms or more of
    /// silence), to measure mouth-to-ear delay against the peer's
    /// `onsets_played`.
    pub onsets_sent: Vec<Instant>,
    /// When sounds started in what we played.
    pub onsets_played: Vec<Instant>,
    /// The speaker's counters at hang-up (underruns: clicks the device
    /// played because its queue ran dry); zero without audio.
    pub speaker: cryptic_audio::StreamStats,
}

/// A STUN or TURN server as the signaling server advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IceServer {
    Stun(std::net::SocketAddr),
    /// Address, user, password, how to reach it, and the name its TLS
    /// certificate must carry (the URI's host).
    Turn(std::net::SocketAddr, String, String, Transport, String),
}

impl IceServer {
    fn turn_server(self) -> Option<TurnServer> {
        match self {
            IceServer::Turn(addr, user, pass, transport, name) => Some(
                TurnServer::new(addr, user, pass)
                    .with_transport(transport)
                    .with_server_name(name),
            ),
            IceServer::Stun(_) => None,
        }
    }
}

/// Parses an advertised URI (`stun:HOST:PORT`, `turn:USER:PASS@HOST:PORT`
/// with USER and PASS percent-encoded, `?transport=tcp`, `turns:`; see
/// [`cryptic_signal::uri`]), resolving HOST. A `turn:` URI without
/// credentials is of no use here.
async fn parse_ice_server(s: &str) -> Option<IceServer> {
    use cryptic_signal::uri::{IceScheme, IceTransport, IceUri};
    let u = IceUri::parse(s).ok()?;
    let addr = tokio::net::lookup_host((u.host.as_str(), u.port))
        .await
        .ok()?
        .find(|a| a.is_ipv4())?;
    let transport = match (u.scheme, u.transport) {
        (IceScheme::Turns, _) => Transport::Tls,
        (_, IceTransport::Tcp) => Transport::Tcp,
        _ => Transport::Udp,
    };
    match (u.scheme, u.credentials) {
        (IceScheme::Stun, _) => Some(IceServer::Stun(addr)),
        (scheme, Some((user, pass))) if scheme.is_turn() => {
            Some(IceServer::Turn(addr, user, pass, transport, u.host))
        }
        _ => None,
    }
}

/// Everything one side needs for one call.
pub struct CallSide {
    /// Our user.
    pub me: UserId,
    /// Our end-to-end store (sessions with the peer must exist or be
    /// started by the caller beforehand).
    pub e2e: E2eStore,
    /// Signaling, sending half.
    pub sender: Sender,
    /// Signaling, receiving half.
    pub receiver: Receiver,
    /// STUN and TURN servers the signaling server advertised
    /// (`stun:HOST:PORT`, `turn:USER:PASS@HOST:PORT`, percent-encoded).
    pub ice_servers: Vec<String>,
    /// Where to connect again when the signaling connection is lost
    /// during a call (`None`: the call goes on without it, as far as it
    /// can). A new connection replaces `sender` and `receiver`.
    pub servers: Option<crate::link::Servers>,
}

impl std::fmt::Debug for CallSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSide")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// Runs one call for `side`: places it to `callee` when given, otherwise
/// waits for an incoming call (accepted after `options.auto_accept`).
pub async fn run_call(
    side: &mut CallSide,
    callee: Option<UserId>,
    options: &CallOptions,
) -> Result<CallReport, Error> {
    let (_keep, mut controls) = mpsc::unbounded_channel();
    run_call_with(side, callee, options, None, &mut controls).await
}

/// [`run_call`] with the user's [`Control`]s, and optionally a signaling
/// message already received for this call (the shell reads the invite
/// before it knows a call is starting).
pub async fn run_call_with(
    side: &mut CallSide,
    callee: Option<UserId>,
    options: &CallOptions,
    initial: Option<Message>,
    controls: &mut mpsc::UnboundedReceiver<Control>,
) -> Result<CallReport, Error> {
    // A missing file or device is found before anyone's phone rings.
    Voice::check(&options.input, &options.output)?;
    let bind: SocketAddr = if options.loopback_only {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    let socket = UdpSocket::bind(bind).await.map_err(Error::Io)?;
    let bound = socket.local_addr().map_err(Error::Io)?;
    let hosts = cryptic_ice::host_addresses(bound);
    let config = session_config(side, options, hosts.clone()).await;
    // TURN servers reached over TCP or TLS: a `turns:` certificate must
    // chain to the CA the signaling server's does.
    let tls = cryptic_ice::tls_config(side.sender.ca_pem().as_bytes()).ok();
    let (streams, stream_rx) = TurnStreams::new(&config.turn_servers, tls);
    let dtls = AsyncDtls::new().map_err(Error::Dtls)?;
    let waker = dtls.waker();
    let started_unix = unix_now();
    // The store is written off the async threads, before what it sealed
    // leaves (see `persist`).
    side.e2e.set_deferred_saves(true);
    let mut session = CallSession::new(config, &mut side.e2e, Box::new(dtls), Instant::now());
    if let Some(peer) = callee {
        session.place_call(Instant::now(), peer)?;
    }
    if let Some(m) = initial {
        session.handle_signal(Instant::now(), m);
    }
    let io = Io {
        socket: &socket,
        streams,
        stream_rx,
        bound,
        hosts,
        link: Link::new(&mut side.sender, &mut side.receiver, side.servers.as_ref()),
        waker,
    };
    let voice = drive(&mut session, io, options, controls).await;
    crate::screen::clear_status();
    persist(session.sealer_mut()).await;
    let mut report = CallReport::from_session(&session, started_unix);
    if let Some(t) = report.setup_time {
        tracing::info!("first audio played {} ms after the invite", t.as_millis());
    }
    let s = &report.stats;
    if s.played + s.concealed > 0 {
        tracing::info!(
            played = s.played,
            concealed = s.concealed,
            inserted = s.inserted,
            rebuilt_from_copies = s.recovered,
            buffer_ms = s.jitter_buffer_delay.as_millis() as u64,
            "the peer's audio at hang-up"
        );
    }
    side.e2e.set_deferred_saves(false);
    if let Some(voice) = voice {
        report.onsets_sent = voice.onsets_sent.clone();
        report.onsets_played = voice.onsets_played.clone();
        report.speaker = voice.speaker_stats();
        if report.speaker.underruns > 0 {
            tracing::info!(
                underruns = report.speaker.underruns,
                silence_ms = report.speaker.underrun_samples * 1000
                    / u64::from(report.speaker.device_rate.max(1)),
                "the speaker's queue ran dry"
            );
        }
        if let Err(e) = voice.finish() {
            eprintln!("[{}] {e}", side.me);
        }
    }
    Ok(report)
}

/// Reads what piled up in the socket while the audio devices opened (a
/// few hundred ms for a WAV in a debug build, or a sound server), then has
/// the jitter buffer forget the delays of all of it: read now in one burst,
/// and out of order with what the server relayed meanwhile, those packets
/// looked up to 300 ms late, and the buffer kept that target for 30 s (the
/// demo: bob heard by alice through a 276 ms buffer, alice by bob through
/// 8 ms).
fn drain_backlog(session: &mut CallSession<&mut E2eStore>, io: &Io<'_>, buf: &mut [u8]) {
    for _ in 0..MAX_BACKLOG {
        let Ok((n, from)) = io.socket.try_recv_from(buf) else {
            break;
        };
        session.handle_datagram(Instant::now(), from, io.local_for(from), &buf[..n]);
    }
    session.forget_receive_delays();
}

/// Datagrams read at most by [`drain_backlog`] (a second of 10 ms frames
/// over two paths, with room for checks).
const MAX_BACKLOG: usize = 256;

/// What the driver loop reads and writes.
struct Io<'a> {
    socket: &'a UdpSocket,
    /// TCP and TLS connections to TURN servers, and what they read.
    streams: TurnStreams,
    stream_rx: mpsc::Receiver<StreamInput>,
    /// The socket's address (unspecified: every address of the host).
    bound: SocketAddr,
    /// The host addresses it receives on, as last read.
    hosts: Vec<SocketAddr>,
    /// The signaling connection, made again when lost.
    link: Link<'a>,
    waker: DtlsWaker,
}

impl Io<'_> {
    /// The host address a datagram from `from` came in on (the first of
    /// its family; `from` itself when the host has none).
    fn local_for(&self, from: SocketAddr) -> SocketAddr {
        self.hosts
            .iter()
            .find(|h| h.is_ipv4() == from.is_ipv4())
            .copied()
            .unwrap_or(from)
    }
}

/// The loop: feed the session what arrives, send what it wants sent, sleep
/// until its timeout, tick the audio. Returns the audio edge, if it opened.
async fn drive(
    session: &mut CallSession<&mut E2eStore>,
    mut io: Io<'_>,
    options: &CallOptions,
    controls: &mut mpsc::UnboundedReceiver<Control>,
) -> Option<Voice> {
    let me = io_name(session);
    let mut voice: Option<Voice> = None;
    // The devices: the user may switch them during the call.
    let mut devices = (options.input.clone(), options.output.clone());
    // When the audio edge wants to run next (kept until it has run, so
    // that a flood of datagrams cannot put it off).
    let mut voice_at = tokio::time::Instant::now();
    let mut status = tokio::time::interval(Duration::from_secs(1));
    status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The host's addresses, read again every 250 ms: a change (a phone
    // moving between networks) goes to the session, which decides.
    let mut netcheck = tokio::time::interval(NETCHECK_EVERY);
    netcheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut buf = vec![0u8; 2048];
    let mut controls_open = true;
    let device_wake = Arc::new(tokio::sync::Notify::new());
    loop {
        flush(session, &mut io).await;
        if !show_events(session, options, &me, &io.link) {
            break;
        }
        if voice.is_none() && session.media_ready() {
            match Voice::open(&devices.0, &devices.1, options) {
                Ok(mut v) => {
                    session.set_frame_samples(v.frame_samples());
                    drain_backlog(session, &io, &mut buf);
                    let wake = Arc::clone(&device_wake);
                    v.set_waker(cryptic_audio::DeviceWaker::new(move || wake.notify_one()));
                    voice = Some(v);
                    voice_at = tokio::time::Instant::now();
                }
                Err(e) => session.fail(Instant::now(), Outcome::Failed, e.to_string()),
            }
            continue;
        }
        let wake = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = io.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => session.handle_datagram(Instant::now(), from, io.local_for(from), &buf[..n]),
                // An ICMP error for an earlier send: what checks are for.
                Err(e) => tracing::debug!("socket: {e}"),
            },
            input = io.stream_rx.recv() => match input {
                Some(StreamInput::Message { server, transport, message }) => {
                    session.handle_stream_input(Instant::now(), server, transport, &message);
                }
                Some(StreamInput::Closed { server, transport }) => {
                    io.streams.forget(server, transport);
                    session.stream_closed(Instant::now(), server, transport);
                }
                _ => {}
            },
            ev = io.link.next() => signal_event(session, ev),
            _ = io.waker.ready() => session.handle_timeout(Instant::now()),
            _ = tokio::time::sleep_until(wake) => session.handle_timeout(Instant::now()),
            // A sound device moved a period: look at its rings now.
            _ = device_wake.notified(), if voice.is_some() => voice_tick(session, &mut voice, &mut voice_at),
            _ = tokio::time::sleep_until(voice_at), if voice.is_some() => voice_tick(session, &mut voice, &mut voice_at),
            c = controls.recv(), if controls_open => match c {
                None => controls_open = false,
                Some(c) => control(session, c, &me, voice.as_mut(), &mut devices),
            },
            _ = status.tick(), if options.status_line && session.media_ready() => {
                show_status(session, voice.as_ref(), &me);
            }
            _ = netcheck.tick() => {
                let hosts = cryptic_ice::host_addresses(io.bound);
                if hosts != io.hosts {
                    io.hosts = hosts.clone();
                    session.network_changed(Instant::now(), hosts);
                }
            }
        }
    }
    // The goodbye: hang-up message, RTCP BYE, TURN deallocation; a
    // hang-up held while the server was away gets a few seconds to find
    // it again.
    flush(session, &mut io).await;
    io.link.deliver_held(GOODBYE_RECONNECT).await;
    voice
}

/// How long a call that ended while the server was away tries to reach it
/// again to deliver its hang-up.
const GOODBYE_RECONNECT: Duration = Duration::from_secs(3);

/// What the signaling connection brought, to the session.
fn signal_event(session: &mut CallSession<&mut E2eStore>, ev: LinkEvent) {
    let now = Instant::now();
    match ev {
        // The operator revoked this profile: say so, not "the server went away".
        LinkEvent::Incoming(SignalIncoming::Message(Message::Error(e)))
            if e.call_id.is_none() && e.code == ErrorCode::CertificateRevoked =>
        {
            session.fail(
                now,
                Outcome::Failed,
                format!("signed out by the server: {}", e.message),
            );
        }
        // A newer sign-in of this user elsewhere replaced this connection.
        LinkEvent::Incoming(SignalIncoming::Message(Message::Error(e)))
            if e.call_id.is_none() && e.code == ErrorCode::SessionReplaced =>
        {
            session.fail(
                now,
                Outcome::Failed,
                "signed in elsewhere: this connection was replaced".into(),
            );
        }
        LinkEvent::Incoming(SignalIncoming::Message(m)) => session.handle_signal(now, m),
        LinkEvent::Incoming(SignalIncoming::Relay { call_id, frame, .. }) => {
            session.handle_relay(now, call_id, &frame)
        }
        LinkEvent::Skipped(e) => tracing::debug!("skipped a bad message from the server: {e}"),
        // Closed, or silent past its deadline (no pong to our pings).
        LinkEvent::Lost => session.signaling_lost(now),
        LinkEvent::Back => session.signaling_restored(now),
    }
}

fn io_name(session: &CallSession<&mut E2eStore>) -> String {
    session.me().to_string()
}

fn control(
    session: &mut CallSession<&mut E2eStore>,
    c: Control,
    me: &str,
    voice: Option<&mut Voice>,
    devices: &mut (SourceSpec, SinkSpec),
) {
    let now = Instant::now();
    match c {
        Control::Accept => session.accept(now),
        Control::Reject => session.reject(now),
        Control::Hangup => session.hangup(now),
        Control::Mute(m) => session.set_muted(m),
        Control::Stats => {
            crate::screen::say(format!("[{me}] {}", live_status(session)));
            show_status(session, voice.as_deref(), me);
        }
        Control::Input(spec) => {
            let r = voice.map_or(Ok(()), |v| v.replace_input(&spec));
            match r {
                Ok(()) => {
                    crate::screen::say(format!("[{me}] microphone: {spec}"));
                    devices.0 = spec;
                }
                Err(e) => {
                    crate::screen::say(format!("[{me}] {e}: keeping the microphone {}", devices.0))
                }
            }
        }
        Control::Output(spec) => {
            let r = voice.map_or(Ok(()), |v| v.replace_output(&spec));
            match r {
                Ok(()) => {
                    crate::screen::say(format!("[{me}] speaker: {spec}"));
                    devices.1 = spec;
                }
                Err(e) => {
                    crate::screen::say(format!("[{me}] {e}: keeping the speaker {}", devices.1))
                }
            }
        }
    }
}

/// The live status: the full line when output is not a terminal, a short
/// one with the level meters rewritten in place when it is.
fn show_status(session: &CallSession<&mut E2eStore>, voice: Option<&Voice>, me: &str) {
    let r = session.report();
    let compact = crate::screen::compact_status(&crate::screen::Live {
        peer: r.peer.as_ref().map(|p| p.as_str()).unwrap_or("-"),
        elapsed: active_time(session),
        path: r.path.unwrap_or("-"),
        rtt: r.stats.rtt,
        loss: r.stats.loss_received,
        muted: session.muted(),
        levels: voice.map(Voice::levels),
    });
    crate::screen::status(&compact, &format!("[{me}] {}", live_status(session)));
}

/// How often the driver reads the host's addresses again.
const NETCHECK_EVERY: Duration = Duration::from_millis(250);

/// The status line of the call now, with what is happening to the path.
fn live_status(session: &CallSession<&mut E2eStore>) -> String {
    let mut line = status_line(
        &CallReport::from_session(session, 0),
        &session.report().stats,
        active_time(session),
        session.muted(),
    );
    if let Some(note) = session.path_note() {
        line.push_str(&format!(" ({note})"));
    }
    line
}

/// Writes the end-to-end store if it changed, on a blocking thread (it
/// fsyncs), and waits for it: a sealed message leaves only once the ratchet
/// state that sealed it is on disk.
async fn persist(store: &mut E2eStore) {
    match store.take_snapshot() {
        Ok(Some(snapshot)) => match tokio::task::spawn_blocking(move || snapshot.write()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cryptic-call: could not save the end-to-end store: {e}"),
            Err(e) => eprintln!("cryptic-call: the store writer failed: {e}"),
        },
        Ok(None) => {}
        Err(e) => eprintln!("cryptic-call: could not save the end-to-end store: {e}"),
    }
}

/// Sends what the session wants sent. A failed signaling send means the
/// connection is lost (the link makes it again; call messages wait).
async fn flush(session: &mut CallSession<&mut E2eStore>, io: &mut Io<'_>) {
    persist(session.sealer_mut()).await;
    while let Some(t) = session.poll_transmit() {
        if t.transport.is_stream() {
            io.streams.send_transmit(t);
            continue;
        }
        if let Err(e) = io.socket.send_to(&t.contents, t.destination).await {
            tracing::debug!("send: {e}");
        }
    }
    while let Some(out) = session.poll_signal() {
        let sent = match &out {
            SignalOut::Message(m) => io.link.send(m).await,
            // A full queue drops the frame, as a congested network would.
            SignalOut::Relay {
                call_id,
                seq,
                frame,
            } => io.link.send_relay(*call_id, *seq, frame),
        };
        if !sent {
            session.signaling_lost(Instant::now());
        }
    }
}

/// Prints what the user should know; `false` once the call ended.
fn show_events(
    session: &mut CallSession<&mut E2eStore>,
    options: &CallOptions,
    me: &str,
    link: &Link<'_>,
) -> bool {
    let mut going = true;
    while let Some(e) = session.poll_event() {
        let peer = session
            .report()
            .peer
            .map(|p| p.to_string())
            .unwrap_or_default();
        match e {
            SessionEvent::Ended => going = false,
            _ if !options.status_line => {}
            SessionEvent::Incoming { from } => {
                crate::screen::say(format!("[{me}] incoming call from {from}"))
            }
            SessionEvent::InviteRefused { from, reason } => {
                crate::screen::say(format!("[{me}] refused a call from {from}: {reason}"))
            }
            SessionEvent::MissedWhileBusy { from } => {
                crate::screen::say(format!("[{me}] {from} tried to call you (busy)"))
            }
            SessionEvent::Secured { sas, verified } => {
                crate::screen::say(format!(
                    "[{me}] call secured: compare the short authentication string with {peer}: {sas}"
                ));
                if verified {
                    crate::screen::say(format!(
                        "[{me}] {peer} is verified (safety number compared)"
                    ));
                } else {
                    crate::screen::say(format!(
                        "[{me}] {peer} is not verified: compare your safety number once with `cryptic-call verify {peer}`"
                    ));
                }
            }
            // After "no audio on the direct path, trying relay" (and the
            // like) the move to the relay is already said.
            SessionEvent::PathChanged("server-relay")
                if !options.force_relay && session.path_note().is_none() =>
            {
                crate::screen::say(format!(
                    "[{me}] no direct path: media goes through the server relay"
                ))
            }
            SessionEvent::DirectLost(words) => crate::screen::say(format!("[{me}] {words}")),
            SessionEvent::DirectBack => crate::screen::say(format!("[{me}] back on direct")),
            SessionEvent::SignalingLost if link.reconnecting() => crate::screen::say(format!(
                "[{me}] lost the server: reconnecting; the call goes on peer to peer (signaling connection lost: {})",
                link.why()
            )),
            SessionEvent::SignalingLost => crate::screen::say(format!(
                "[{me}] lost the server: the call goes on peer to peer (signaling connection lost: {})",
                link.why()
            )),
            SessionEvent::SignalingBack => {
                crate::screen::say(format!("[{me}] reconnected to the server"))
            }
            _ => {}
        }
    }
    going
}

fn active_time(session: &CallSession<&mut E2eStore>) -> Duration {
    session
        .report()
        .answered
        .map(|a| a.elapsed())
        .unwrap_or_default()
}

/// The session's settings from the user's options and the servers the
/// signaling server advertised.
async fn session_config(
    side: &CallSide,
    options: &CallOptions,
    hosts: Vec<SocketAddr>,
) -> SessionConfig {
    let mut config = SessionConfig::new(side.me.clone(), hosts);
    for server in &side.ice_servers {
        match parse_ice_server(server).await {
            Some(IceServer::Stun(addr)) => config.stun_servers.push(addr),
            Some(turn @ IceServer::Turn(..)) => config.turn_servers.extend(turn.turn_server()),
            None => eprintln!("[{}] ignoring ICE server {server:?}", side.me),
        }
    }
    config.ring_timeout = options.ring_timeout;
    config.connect_timeout = options.ice_timeout;
    config.relay_after = options.relay_after;
    config.force_relay = options.force_relay;
    config.relay_first = options.relay_first;
    config.prefer_chacha = options.prefer_chacha;
    config.duration = options.duration;
    config.auto_accept = options.auto_accept;
    config.auto_reject = options.auto_reject;
    config.cancel_after = options.cancel_after;
    // The buffer shrinks only in pauses (a whole quiet frame) and grows by
    // a pitch period: dropping the next frame whatever it held cut words
    // (tests/call-quality-beside-gstreamer.rs).
    config.time_stretch = true;
    // 10 ms frames (a microphone's, or `--low-latency`) ask for delay over
    // bandwidth: what a speaker plays has its pauses trimmed by just the
    // excess on a steady path, too. Not a file's: nobody waits for it.
    // (When a file was still written 20 ms at a time, it asked for 10 ms
    // frames in pairs, and a buffer held just above its target let the
    // second of a pair come late: up to 4.5 % concealed on a clean call,
    // PESQ-WB 3.39 to 4.19 per run. Files are written 10 ms at a time now,
    // see voice.rs; fine trimming for them was not measured since.)
    config.fine_stretch = options.frame == FrameDuration::Ms10 && options.output.is_device();
    config.unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    config.seed = rand::random();
    config
}

/// The audio edge's turn: frames captured are sent, frames wanted are
/// played; `voice_at` becomes when it wants to look again.
fn voice_tick(
    session: &mut CallSession<&mut E2eStore>,
    voice: &mut Option<Voice>,
    voice_at: &mut tokio::time::Instant,
) {
    let now = Instant::now();
    if let Some(v) = voice.as_mut() {
        if let Err(e) = v.tick(session, now) {
            session.fail(now, Outcome::Failed, e.to_string());
        }
        *voice_at = tokio::time::Instant::from_std(v.next_wake(now));
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl CallReport {
    /// The report of a session (so far), for a call that started at
    /// `started_unix`.
    fn from_session<S: crate::session::Sealer>(
        session: &CallSession<S>,
        started_unix: i64,
    ) -> Self {
        let r = session.report();
        CallReport {
            call_id: r.call_id,
            peer: r.peer,
            role: r.role,
            outcome: r.outcome,
            reason: r.reason,
            setup_time: r
                .first_played
                .zip(r.started)
                .map(|(p, s)| p.saturating_duration_since(s)),
            active_time: r
                .answered
                .map(|a| {
                    r.ended
                        .unwrap_or_else(Instant::now)
                        .saturating_duration_since(a)
                })
                .unwrap_or_default(),
            path: r.path.map(str::to_string),
            sas: r.sas,
            cipher: r.cipher,
            stats: r.stats,
            started_unix,
            first_sent: r.first_sent,
            first_played: r.first_played,
            onsets_sent: Vec::new(),
            onsets_played: Vec::new(),
            speaker: cryptic_audio::StreamStats::default(),
        }
    }
}

/// The live status line: path, round-trip time, loss, jitter, bitrate,
/// cipher, duration, mute state.
pub fn status_line(
    report: &CallReport,
    stats: &MediaStats,
    elapsed: Duration,
    muted: bool,
) -> String {
    let secs = elapsed.as_secs_f64().max(0.5);
    let kbps = stats.bytes_sent as f64 * 8.0 / secs / 1000.0;
    format!(
        "path={} rtt={} loss={:.1}% jitter={}ms bitrate={:.1}kbit/s rx={} cipher={} time={}:{:02} mic={}",
        report.path.as_deref().unwrap_or("-"),
        stats
            .rtt
            .map(|r| format!("{}ms", r.as_millis()))
            .unwrap_or_else(|| "-".into()),
        stats.loss_received * 100.0,
        stats.jitter.as_millis(),
        kbps,
        stats.packets_received,
        report.cipher,
        elapsed.as_secs() / 60,
        elapsed.as_secs() % 60,
        if muted { "muted" } else { "on" },
    )
}

/// Publishes `count` fresh one-time keys (and the identity) at sign-in.
/// A refusal for rate (a client restarted many times within the server's
/// window) is not fatal: the keys published before are still there.
pub async fn publish_keys(
    conn: &mut cryptic_signal::client::Connection,
    e2e: &mut E2eStore,
    count: usize,
) -> Result<(), String> {
    let keys = e2e.keys_to_publish(count).map_err(|e| e.to_string())?;
    match conn.publish_keys(keys).await {
        Ok(_) => Ok(()),
        Err(cryptic_signal::Error::Server {
            code: cryptic_signal::wire::ErrorCode::RateLimited,
            ..
        }) => {
            tracing::info!("key top-up refused for rate; the keys already published stay");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ice_server_strings_parse_into_stun_and_turn_servers() {
        assert_eq!(
            parse_ice_server("stun:127.0.0.1:3478").await,
            Some(IceServer::Stun("127.0.0.1:3478".parse().unwrap()))
        );
        assert_eq!(
            parse_ice_server("turn:alice:s3cret:x@127.0.0.1:3479").await,
            Some(IceServer::Turn(
                "127.0.0.1:3479".parse().unwrap(),
                "alice".into(),
                "s3cret:x".into(),
                Transport::Udp,
                "127.0.0.1".into()
            ))
        );
        // TURN REST credentials: the user name holds a ':' (percent-encoded).
        assert_eq!(
            parse_ice_server("turn:1764500000%3Aalice:Zm9v%2Fbg%3D%3D@127.0.0.1:3479").await,
            Some(IceServer::Turn(
                "127.0.0.1:3479".parse().unwrap(),
                "1764500000:alice".into(),
                "Zm9v/bg==".into(),
                Transport::Udp,
                "127.0.0.1".into()
            ))
        );
        // Over TCP, and over TLS with the host as the certificate's name.
        assert_eq!(
            parse_ice_server("turn:a:b@127.0.0.1:3479?transport=tcp").await,
            Some(IceServer::Turn(
                "127.0.0.1:3479".parse().unwrap(),
                "a".into(),
                "b".into(),
                Transport::Tcp,
                "127.0.0.1".into()
            ))
        );
        assert_eq!(
            parse_ice_server("turns:a:b@localhost").await,
            Some(IceServer::Turn(
                "127.0.0.1:5349".parse().unwrap(),
                "a".into(),
                "b".into(),
                Transport::Tls,
                "localhost".into()
            ))
        );
        for bad in [
            "",
            "stun:",
            "turn:127.0.0.1:3478",
            "turn:nopass@127.0.0.1:1",
            "http://x",
        ] {
            assert_eq!(parse_ice_server(bad).await, None, "{bad}");
        }
    }

    #[test]
    fn the_status_line_shows_path_cipher_and_mute() {
        let mut report = CallReport {
            call_id: None,
            peer: None,
            role: Role::Caller,
            outcome: Outcome::Completed,
            reason: String::new(),
            setup_time: None,
            active_time: Duration::ZERO,
            path: Some("server-relay".into()),
            sas: None,
            cipher: "ChaCha20-Poly1305",
            stats: MediaStats::default(),
            started_unix: 0,
            first_sent: None,
            first_played: None,
            onsets_sent: Vec::new(),
            onsets_played: Vec::new(),
            speaker: cryptic_audio::StreamStats::default(),
        };
        let line = status_line(
            &report,
            &MediaStats::default(),
            Duration::from_secs(65),
            true,
        );
        assert!(line.contains("path=server-relay"));
        assert!(line.contains("cipher=ChaCha20-Poly1305"));
        assert!(line.contains("time=1:05"));
        assert!(line.contains("mic=muted"));
        report.path = None;
        assert!(
            status_line(&report, &MediaStats::default(), Duration::ZERO, false).contains("mic=on")
        );
    }
}
