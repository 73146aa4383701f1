//! One call, end to end: signaling, ICE, DTLS with the end-to-end
//! fingerprint, SRTP media with Opus, on one user's side.
//!
//! ```text
//!  signaling (sealed offer/answer/candidates) --> CallMachine --> events
//!        |                                                          |
//!        v                                                          v
//!  ICE Driver --Selected--> IceTransport --demux--> DTLS (20..=63) --keys--+
//!                                           \-----> media (128..=191) <----+
//!  media task: Input -> Opus -> MediaSession -> IceTransport; IceTransport ->
//!              MediaSession -> jitter -> Opus decode/FEC/PLC -> Output
//! ```
//!
//! [`run_call`] drives one call for one user until it ends and returns a
//! [`CallReport`]. The caller is the ICE controlling agent and the DTLS
//! server; the callee is controlled and the DTLS client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cryptic_audio::{
    Decoder, Encoder, EncoderConfig, FrameDuration, Input, InputOptions, Output, OutputOptions,
    Pacing, Read, SinkSpec, SourceSpec,
};
use cryptic_dtls_srtp::handshake::{
    handshake, DatagramTransport, DtlsSession, HandshakeConfig, Identity, Role as DtlsRole,
    SrtpKeys,
};
use cryptic_dtls_srtp::stats::NtpClock;
use cryptic_dtls_srtp::{Error as DtlsError, Fingerprint};
use cryptic_ice::{
    AgentConfig, Credentials, Driver, Event as IceEvent, IceTransport, PathKind, Role as IceRole,
    TurnServer, END_OF_CANDIDATES,
};
use cryptic_jitter::Playout;
use cryptic_signal::call::{CallConfig, CallEvent, CallMachine, CallState, Reason, Role};
use cryptic_signal::callkey::CallKey;
use cryptic_signal::client::{Incoming as SignalIncoming, Receiver, Sender};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::payload::{CallOffer, CandidateUpdate};
use cryptic_signal::wire::{CallId, UserId};
use tokio::sync::{mpsc, oneshot, watch};

use crate::history::Outcome;
use crate::media::{
    Incoming as MediaIncoming, MediaConfig, MediaSession, MediaStats, MAX_DATAGRAM,
};

/// The codec we offer.
pub const CODEC: &str = "opus/48000/2";
/// The SRTP profiles we accept, preferred first.
pub const SRTP_PROFILES: [&str; 2] = ["AEAD_AES_128_GCM", "CRYPTIC_CHACHA20_POLY1305"];

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
}

impl CallOptions {
    /// Options with the given input and output and no time limit.
    pub fn new(input: SourceSpec, output: SinkSpec) -> Self {
        CallOptions {
            input,
            output,
            duration: None,
            bitrate: 24_000,
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
        }
    }
}

/// What the user can do to a call in progress (the interactive shell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// The two ways a call's datagrams can travel: the ICE socket's selected
/// pair, or `call_relay_frame`s through the signaling server. Sending uses
/// the relay once it is switched on (by our fallback timer, by the user, or
/// because the peer's datagrams arrive that way), the ICE pair otherwise.
struct Paths {
    ice: IceTransport,
    relay: Sender,
    call_id: CallId,
    seq: AtomicU64,
    use_relay: AtomicBool,
}

impl Paths {
    fn relay_in_use(&self) -> bool {
        self.use_relay.load(Ordering::Relaxed)
    }

    fn switch_to_relay(&self) {
        self.use_relay.store(true, Ordering::Relaxed);
    }

    async fn send(&self, datagram: &[u8]) -> std::io::Result<()> {
        if self.relay_in_use() || !self.ice.is_connected() {
            if !self.relay_in_use() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no media path yet",
                ));
            }
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            // A full queue drops the datagram, as a congested network would.
            return self
                .relay
                .try_send_relay(self.call_id, seq, datagram)
                .map(|_| ())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()));
        }
        self.ice.send(datagram).await
    }
}

/// Datagrams the DTLS layer reads: fed by the media task's demultiplexer.
struct DemuxedDtls {
    paths: Arc<Paths>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
}

#[async_trait]
impl DatagramTransport for DemuxedDtls {
    async fn send(&self, datagram: &[u8]) -> std::io::Result<()> {
        match self.paths.send(datagram).await {
            // Before a path exists the flight is lost; DTLS retransmits.
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.rx.lock().await.recv().await {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "media path closed",
            )),
        }
    }
}

/// A STUN or TURN server as the signaling server advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IceServer {
    Stun(std::net::SocketAddr),
    Turn(std::net::SocketAddr, String, String),
}

/// Parses `stun:HOST:PORT` or `turn:USER:PASS@HOST:PORT`, resolving HOST.
async fn parse_ice_server(s: &str) -> Option<IceServer> {
    let resolve = |hostport: String| async move {
        tokio::net::lookup_host(hostport)
            .await
            .ok()?
            .find(|a| a.is_ipv4())
    };
    if let Some(rest) = s.strip_prefix("stun:") {
        return resolve(rest.to_string()).await.map(IceServer::Stun);
    }
    let rest = s.strip_prefix("turn:")?;
    let (cred, hostport) = rest.rsplit_once('@')?;
    let (user, pass) = cred.split_once(':')?;
    let addr = resolve(hostport.to_string()).await?;
    Some(IceServer::Turn(addr, user.to_string(), pass.to_string()))
}

fn path_name(kind: PathKind) -> &'static str {
    match kind {
        PathKind::Relay => "turn-relay",
        _ => "direct",
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What the media task tells the call loop.
#[derive(Debug)]
enum MediaNote {
    FirstFramePlayed(Instant),
    FirstFrameSent(Instant),
    /// A sound started after at least 100 ms of silence: sent or played.
    OnsetSent(Instant),
    OnsetPlayed(Instant),
    RelayInUse,
    Bye,
    Failed(String),
}

struct MediaTaskConfig {
    input: SourceSpec,
    output: SinkSpec,
    bitrate: u32,
    ssrc: u32,
    cname: String,
}

/// The media task: owns the ICE transport's receive side, forwards DTLS
/// datagrams to the handshake, and once keys arrive runs the 20 ms loop.
#[allow(clippy::too_many_arguments)]
async fn media_task(
    paths: Arc<Paths>,
    mut relay_rx: mpsc::Receiver<bytes::Bytes>,
    dtls_tx: mpsc::Sender<Vec<u8>>,
    keys_rx: oneshot::Receiver<SrtpKeys>,
    config: MediaTaskConfig,
    stats_tx: watch::Sender<MediaStats>,
    notes: mpsc::UnboundedSender<MediaNote>,
    mut stop: watch::Receiver<bool>,
    muted: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = vec![0u8; MAX_DATAGRAM];
    let mut keys_rx = Some(keys_rx);
    let mut media: Option<(MediaSession, Input, Output, Encoder, Decoder)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pcm = [0i16; 960];
    let mut packet = [0u8; cryptic_audio::MAX_PACKET];
    let mut first_played = false;
    let (mut quiet_in, mut quiet_out) = (0u32, 0u32);
    let mut first_sent = true;
    let mut frames = 0u64;
    loop {
        tokio::select! {
            r = paths.ice.recv(&mut buf) => {
                let Ok(n) = r else { break };
                demux(&buf[..n], &dtls_tx, media.as_mut().map(|m| &mut m.0), &notes);
            }
            frame = relay_rx.recv() => {
                let Some(frame) = frame else { break };
                if !paths.relay_in_use() && !paths.ice.is_connected() {
                    paths.switch_to_relay();
                    let _ = notes.send(MediaNote::RelayInUse);
                }
                demux(&frame, &dtls_tx, media.as_mut().map(|m| &mut m.0), &notes);
            }
            keys = async { keys_rx.as_mut().expect("guarded by the select condition").await }, if keys_rx.is_some() => {
                keys_rx = None;
                let Ok(keys) = keys else { break };
                let now = Instant::now();
                let clock = NtpClock::from_system_time(
                    now,
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default(),
                );
                let opened = (|| -> Result<_, String> {
                    let session = MediaSession::new(
                        &keys,
                        MediaConfig::new(config.ssrc, config.cname.clone(), u64::from(config.ssrc)),
                        clock,
                        now,
                    )
                    .map_err(|e| e.to_string())?;
                    let input = Input::open(
                        &config.input,
                        InputOptions::default().with_pacing(Pacing::RealTime),
                    )
                    .map_err(|e| format!("input: {e}"))?;
                    let output = Output::open(&config.output, OutputOptions::default())
                        .map_err(|e| format!("output: {e}"))?;
                    let encoder = Encoder::new(EncoderConfig::default().with_bitrate(config.bitrate))
                        .map_err(|e| e.to_string())?;
                    let decoder = Decoder::new(FrameDuration::Ms20).map_err(|e| e.to_string())?;
                    Ok((session, input, output, encoder, decoder))
                })();
                match opened {
                    Ok(m) => media = Some(m),
                    Err(e) => {
                        let _ = notes.send(MediaNote::Failed(e));
                        break;
                    }
                }
            }
            _ = tick.tick(), if media.is_some() => {
                let Some((session, input, output, encoder, decoder)) = media.as_mut() else { continue };
                let now = Instant::now();
                // Capture and send every frame that is ready.
                loop {
                    match input.read_frame(now, &mut pcm) {
                        Ok(Read::Frame) => {
                            if *muted.borrow() {
                                pcm.fill(0);
                            }
                            if loud(&pcm) {
                                if quiet_in >= 5 {
                                    let _ = notes.send(MediaNote::OnsetSent(now));
                                }
                                quiet_in = 0;
                            } else {
                                quiet_in += 1;
                            }
                            let Ok(len) = encoder.encode(&pcm, &mut packet) else { break };
                            if let Ok(n) = session.send_frame(now, &packet[..len], first_sent, &mut out) {
                                if first_sent {
                                    let _ = notes.send(MediaNote::FirstFrameSent(now));
                                }
                                first_sent = false;
                                let _ = paths.send(&out[..n]).await;
                            }
                        }
                        Ok(Read::End) => {
                            // The file ran out: keep sending silence at the
                            // same rate, so the packet flow says nothing.
                            pcm.fill(0);
                            if let Ok(len) = encoder.encode(&pcm, &mut packet) {
                                if let Ok(n) = session.send_frame(now, &packet[..len], false, &mut out) {
                                    let _ = paths.send(&out[..n]).await;
                                }
                            }
                            break;
                        }
                        Ok(_) => break,
                        Err(e) => {
                            let _ = notes.send(MediaNote::Failed(format!("input: {e}")));
                            break;
                        }
                    }
                }
                // Play one frame.
                let played = match session.poll_playout(now) {
                    Playout::Frame(f) => {
                        decoder.decode(f.payload, &mut pcm).or_else(|_| decoder.conceal(&mut pcm)).is_ok()
                    }
                    Playout::Conceal(c) => {
                        let r = match c.fec {
                            Some(next) => decoder.decode_fec(next, &mut pcm),
                            None => decoder.conceal(&mut pcm),
                        };
                        if r.is_err() {
                            pcm.fill(0);
                        }
                        false
                    }
                    _ => {
                        pcm.fill(0);
                        false
                    }
                };
                if loud(&pcm) {
                    if quiet_out >= 5 {
                        let _ = notes.send(MediaNote::OnsetPlayed(now));
                    }
                    quiet_out = 0;
                } else {
                    quiet_out += 1;
                }
                if played && !first_played {
                    first_played = true;
                    let _ = notes.send(MediaNote::FirstFramePlayed(now));
                }
                if let Err(e) = output.write_frame(&pcm) {
                    let _ = notes.send(MediaNote::Failed(format!("output: {e}")));
                }
                while let Some(Ok(n)) = session.poll_transmit(now, &mut out) {
                    let _ = paths.send(&out[..n]).await;
                }
                frames += 1;
                if frames % 50 == 0 {
                    // Feed the loss the peer reports back into Opus FEC.
                    let stats = session.stats();
                    let loss = (stats.loss_reported_by_peer * 100.0).round().clamp(0.0, 100.0) as u8;
                    let _ = encoder.set_expected_loss_percent(loss.max(5));
                }
                let _ = stats_tx.send(session.stats());
            }
            _ = stop.changed() => break,
        }
    }
    if let Some((mut session, _input, mut output, ..)) = media {
        if let Ok(n) = session.write_bye(Instant::now(), &mut out) {
            let _ = paths.send(&out[..n]).await;
        }
        let _ = output.finish();
        let _ = stats_tx.send(session.stats());
    }
}

/// Whether a 20 ms frame carries sound (RMS above about -50 dBFS).
fn loud(pcm: &[i16]) -> bool {
    let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    energy > 100 * 100 * pcm.len() as i64
}

/// Hands a datagram to the DTLS layer (first byte 20..=63) or to the media
/// session (128..=191, RFC 7983).
fn demux(
    datagram: &[u8],
    dtls_tx: &mpsc::Sender<Vec<u8>>,
    session: Option<&mut MediaSession>,
    notes: &mpsc::UnboundedSender<MediaNote>,
) {
    let Some(&first) = datagram.first() else {
        return;
    };
    if (20..=63).contains(&first) {
        // The handshake may be over; a late retransmission is fine to drop.
        let _ = dtls_tx.try_send(datagram.to_vec());
    } else if let Some(session) = session {
        if let Ok(MediaIncoming::Bye) = session.handle_datagram(Instant::now(), datagram) {
            let _ = notes.send(MediaNote::Bye);
        }
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
    /// (`stun:HOST:PORT`, `turn:USER:PASS@HOST:PORT`).
    pub ice_servers: Vec<String>,
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
) -> Result<CallReport, String> {
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
    initial: Option<cryptic_signal::wire::Message>,
    controls: &mut mpsc::UnboundedReceiver<Control>,
) -> Result<CallReport, String> {
    let role = if callee.is_some() {
        Role::Caller
    } else {
        Role::Callee
    };
    let mut call_config = CallConfig::default();
    call_config.ring_timeout = options.ring_timeout;
    let mut machine = CallMachine::new(side.me.clone(), call_config);
    let identity = Identity::generate().map_err(|e| e.to_string())?;
    let mut report = CallReport {
        call_id: None,
        peer: callee.clone(),
        role,
        outcome: Outcome::Failed,
        reason: String::new(),
        setup_time: None,
        active_time: Duration::ZERO,
        path: None,
        sas: None,
        cipher: "AES-128-GCM",
        stats: MediaStats::default(),
        started_unix: unix_now(),
        first_sent: None,
        first_played: None,
        onsets_sent: Vec::new(),
        onsets_played: Vec::new(),
    };
    let bind = if options.loopback_only {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let ice_role = if role == Role::Caller {
        IceRole::Controlling
    } else {
        IceRole::Controlled
    };
    let mut ice_config = AgentConfig::new(ice_role);
    for server in &side.ice_servers {
        match parse_ice_server(server).await {
            Some(IceServer::Stun(addr)) => ice_config = ice_config.with_stun_server(addr),
            Some(IceServer::Turn(addr, user, pass)) => {
                ice_config = ice_config.with_turn_server(TurnServer::new(addr, user, pass))
            }
            None => eprintln!("[{}] ignoring ICE server {server:?}", side.me),
        }
    }
    let mut ice = Driver::start(ice_config, bind.parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| format!("ICE: {e}"))?;
    let local_creds = ice.local_credentials().clone();
    let mut started = Instant::now();
    let my_offer = |candidates: Vec<String>, eoc: bool| {
        CallOffer::new(
            &mut rand::rng(),
            identity.fingerprint().to_string(),
            local_creds.ufrag.clone(),
            local_creds.pwd.clone(),
            candidates,
            eoc,
            vec![CODEC.to_string()],
            if options.prefer_chacha {
                SRTP_PROFILES.iter().rev().map(|s| s.to_string()).collect()
            } else {
                SRTP_PROFILES.iter().map(|s| s.to_string()).collect()
            },
        )
    };
    let mut our_offer: Option<CallOffer> = None;
    let mut their_offer: Option<CallOffer> = None;
    let mut gathered: Vec<String> = Vec::new();
    let mut gathering_done = false;

    // The caller gathers its first candidates (host candidates come at
    // once) so that the invite carries them.
    if let Some(peer) = &callee {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while !gathering_done {
            match tokio::time::timeout_at(deadline, ice.next_event()).await {
                Ok(Some(IceEvent::CandidateGathered(c))) => gathered.push(c.to_sdp_string()),
                Ok(Some(IceEvent::GatheringDone)) => gathering_done = true,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let offer = my_offer(std::mem::take(&mut gathered), gathering_done);
        let sealed = side
            .e2e
            .seal(peer, &offer.to_bytes())
            .map_err(|e| e.to_string())?;
        let call_id = CallId::random(&mut rand::rng());
        report.call_id = Some(call_id);
        started = Instant::now();
        report.started_unix = unix_now();
        machine
            .place_call(started, call_id, peer.clone(), sealed)
            .map_err(|e| e.to_string())?;
        our_offer = Some(offer);
    }
    let mut cancel_at = options
        .cancel_after
        .filter(|_| role == Role::Caller)
        .map(|d| tokio::time::Instant::now() + d);

    let (dtls_tx, dtls_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut dtls_rx = Some(dtls_rx);
    let (keys_tx, keys_rx) = oneshot::channel::<SrtpKeys>();
    let mut keys_tx = Some(keys_tx);
    let mut keys_rx = Some(keys_rx);
    let (stats_tx, stats_rx) = watch::channel(MediaStats::default());
    let (notes_tx, mut notes_rx) = mpsc::unbounded_channel::<MediaNote>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (relay_tx, relay_rx) = mpsc::channel::<bytes::Bytes>(256);
    let mut relay_rx = Some(relay_rx);
    let mut paths: Option<Arc<Paths>> = None;
    let mut dtls_transport: Option<Arc<dyn DatagramTransport>> = None;
    let mut dtls_started = false;
    let mut ice_selected = false;
    let mut relay_at: Option<tokio::time::Instant> = None;

    let (dtls_done_tx, mut dtls_done_rx) = mpsc::channel::<Result<DtlsSession, DtlsError>>(1);
    let mut dtls_session: Option<DtlsSession> = None;
    let mut answered_at: Option<Instant> = None;
    let mut accept_at: Option<tokio::time::Instant> = None;
    let mut hangup_at: Option<tokio::time::Instant> = None;
    let ice_deadline = tokio::time::Instant::now() + options.ice_timeout + Duration::from_secs(45);
    let mut connect_deadline: Option<tokio::time::Instant> = None;
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let mut ended = false;
    let mut signaling_up = true;
    // Set when we end the call because something went wrong; otherwise the
    // outcome follows from how the call machine ended.
    let mut forced_outcome: Option<Outcome> = None;
    let (mute_tx, mute_rx) = watch::channel(false);
    let mut controls_open = true;
    if let Some(m) = initial {
        machine.handle_message(Instant::now(), m);
    }

    // Once both offers are known: the media task and its two paths.
    macro_rules! start_media {
        () => {{
            if let (None, Some(call_id)) = (&paths, report.call_id) {
                let p = Arc::new(Paths {
                    ice: ice.transport(),
                    relay: side.sender.clone(),
                    call_id,
                    seq: AtomicU64::new(0),
                    use_relay: AtomicBool::new(options.force_relay),
                });
                if let (Some(drx), Some(rrx), Some(krx)) =
                    (dtls_rx.take(), relay_rx.take(), keys_rx.take())
                {
                    dtls_transport = Some(Arc::new(DemuxedDtls {
                        paths: p.clone(),
                        rx: tokio::sync::Mutex::new(drx),
                    }));
                    tokio::spawn(media_task(
                        p.clone(),
                        rrx,
                        dtls_tx.clone(),
                        krx,
                        MediaTaskConfig {
                            input: options.input.clone(),
                            output: options.output.clone(),
                            bitrate: options.bitrate,
                            ssrc: rand::random(),
                            cname: side.me.to_string(),
                        },
                        stats_tx.clone(),
                        notes_tx.clone(),
                        stop_rx.clone(),
                        mute_rx.clone(),
                    ));
                }
                if options.force_relay {
                    report.path = Some("server-relay".into());
                }
                paths = Some(p);
                relay_at = Some(if options.force_relay {
                    tokio::time::Instant::now()
                } else {
                    tokio::time::Instant::now() + options.relay_after
                });
            }
        }};
    }

    // Once a path exists (ICE selected a pair, or the relay is on).
    macro_rules! start_dtls {
        () => {{
            if let (false, Some(transport)) = (dtls_started, dtls_transport.clone()) {
                if ice_selected || paths.as_ref().is_some_and(|p| p.relay_in_use()) {
                    dtls_started = true;
                    let expected: Fingerprint = their_offer
                        .as_ref()
                        .and_then(|o| o.dtls_fingerprint.parse().ok())
                        .ok_or("the peer's fingerprint is missing or malformed")?;
                    let dtls_role = if role == Role::Caller {
                        DtlsRole::Server
                    } else {
                        DtlsRole::Client
                    };
                    // ChaCha20-Poly1305 only when both users put it first.
                    let chacha = [our_offer.as_ref(), their_offer.as_ref()].iter().all(|o| {
                        o.and_then(|o| o.srtp_profiles.first())
                            .is_some_and(|p| p == "CRYPTIC_CHACHA20_POLY1305")
                    });
                    let profile = if chacha {
                        report.cipher = "ChaCha20-Poly1305";
                        cryptic_dtls_srtp::srtp::Profile::CrypticChaCha20Poly1305
                    } else {
                        cryptic_dtls_srtp::srtp::Profile::AeadAes128Gcm
                    };
                    let identity = identity.clone();
                    let done = dtls_done_tx.clone();
                    tokio::spawn(async move {
                        let r = handshake(
                            transport,
                            &identity,
                            expected,
                            HandshakeConfig::new(dtls_role).with_profile(profile),
                        )
                        .await;
                        let _ = done.send(r).await;
                    });
                }
            }
        }};
    }
    while !ended {
        // Send what the machine wants sent.
        while let Some(m) = machine.poll_transmit() {
            if let Err(e) = side.sender.send(&m).await {
                if signaling_up {
                    return Err(format!("signaling: {e}"));
                }
            }
        }
        let machine_wake = machine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(far);
        tokio::select! {
            incoming = side.receiver.recv(), if signaling_up => {
                match incoming {
                    Ok(SignalIncoming::Message(m)) => machine.handle_message(Instant::now(), m),
                    Ok(SignalIncoming::Relay { call_id, frame, .. }) => {
                        if Some(call_id) == report.call_id {
                            let _ = relay_tx.try_send(frame);
                        }
                    }
                    // A message the server should not have sent: skip it.
                    Err(cryptic_signal::Error::Protocol(_)) => {}
                    Err(e) => {
                        if dtls_session.is_some() && !paths.as_ref().is_some_and(|p| p.relay_in_use()) {
                            // Media flows peer to peer: the call does not need
                            // the server any more.
                            signaling_up = false;
                            if options.status_line {
                                println!("[{}] signaling server lost ({e}): the call goes on peer to peer", side.me);
                            }
                        } else {
                            report.reason = format!("signaling: {e}");
                            break;
                        }
                    }
                }
            }
            event = ice.next_event() => {
                match event {
                    Some(IceEvent::CandidateGathered(c)) => {
                        if report.peer.is_some() && (our_offer.is_some()) {
                            let peer = report.peer.clone().expect("checked");
                            let update = CandidateUpdate::new(vec![c.to_sdp_string()], false);
                            if let Ok(sealed) = side.e2e.seal(&peer, &update.to_bytes()) {
                                let _ = machine.send_candidate(sealed);
                            }
                        } else {
                            gathered.push(c.to_sdp_string());
                        }
                    }
                    Some(IceEvent::GatheringDone) => {
                        gathering_done = true;
                        if let (Some(peer), Some(_)) = (report.peer.clone(), our_offer.as_ref()) {
                            let update = CandidateUpdate::new(Vec::new(), true);
                            if let Ok(sealed) = side.e2e.seal(&peer, &update.to_bytes()) {
                                let _ = machine.send_candidate(sealed);
                            }
                        }
                    }
                    Some(IceEvent::Selected(pair)) => {
                        ice_selected = true;
                        if !paths.as_ref().is_some_and(|p| p.relay_in_use()) {
                            report.path = Some(path_name(pair.kind).to_string());
                        }
                        start_dtls!();
                    }
                    Some(IceEvent::PathLost) if !paths.as_ref().is_some_and(|p| p.relay_in_use()) => {
                        report.reason = "the media path was lost (consent expired)".into();
                        forced_outcome = Some(Outcome::Failed);
                        machine.media_failed(Instant::now());
                    }
                    // Without a direct path the server relay carries the call
                    // (switched on by the relay timer): ICE failing is no reason
                    // to end it.
                    Some(IceEvent::Failed) => {}
                    Some(_) => {}
                    None => {
                        report.reason = "ICE stopped".into();
                        break;
                    }
                }
            }
            done = dtls_done_rx.recv() => {
                match done {
                    Some(Ok(session)) => {
                        if let Some(tx) = keys_tx.take() {
                            let _ = tx.send(session.srtp_keys().clone());
                        }
                        if let (Some(ours), Some(theirs), Some(call_id)) = (&our_offer, &their_offer, report.call_id) {
                            let (caller, callee_offer) = if role == Role::Caller { (ours, theirs) } else { (theirs, ours) };
                            let key = CallKey::derive(&call_id, &caller.call_nonce, &callee_offer.call_nonce);
                            report.sas = key
                                .short_auth_string(&caller.dtls_fingerprint, &callee_offer.dtls_fingerprint)
                                .ok();
                            if options.status_line {
                                if let Some(sas) = &report.sas {
                                    println!("[{}] call secured: compare the short authentication string with {}: {sas}", side.me, report.peer.as_ref().map(|p| p.to_string()).unwrap_or_default());
                                }
                            }
                        }
                        machine.media_connected(Instant::now());
                        dtls_session = Some(session);
                        if let Some(d) = options.duration {
                            hangup_at = Some(tokio::time::Instant::now() + d);
                        }
                    }
                    Some(Err(DtlsError::FingerprintMismatch)) => {
                        forced_outcome = Some(Outcome::SecurityAbort);
                        report.reason = "the peer's DTLS certificate does not match the fingerprint received end to end: someone is in the middle; call aborted".into();
                        machine.security_abort(Instant::now());
                    }
                    Some(Err(e)) => {
                        report.reason = format!("DTLS: {e}");
                        machine.media_failed(Instant::now());
                    }
                    None => {}
                }
            }
            note = notes_rx.recv() => {
                match note {
                    Some(MediaNote::FirstFramePlayed(at)) => {
                        report.setup_time = Some(at.saturating_duration_since(started));
                        report.first_played = Some(at);
                    }
                    Some(MediaNote::FirstFrameSent(at)) => {
                        report.first_sent = Some(at);
                    }
                    Some(MediaNote::OnsetSent(at)) => report.onsets_sent.push(at),
                    Some(MediaNote::OnsetPlayed(at)) => report.onsets_played.push(at),
                    Some(MediaNote::RelayInUse) => {
                        report.path = Some("server-relay".into());
                        start_dtls!();
                    }
                    Some(MediaNote::Bye) => {
                        // The peer hung up (its call_hangup may also arrive,
                        // or not when the server is gone).
                        if report.reason.is_empty() {
                            report.reason = "the peer hung up".into();
                        }
                        let _ = machine.hangup(Instant::now());
                    }
                    Some(MediaNote::Failed(e)) => {
                        report.reason = format!("media: {e}");
                        forced_outcome = Some(Outcome::Failed);
                        let _ = machine.hangup(Instant::now());
                    }
                    None => {}
                }
            }
            _ = tokio::time::sleep_until(accept_at.unwrap_or_else(far)), if accept_at.is_some() => {
                accept_at = None;
                let peer = report.peer.clone().ok_or("no caller")?;
                let offer = my_offer(std::mem::take(&mut gathered), gathering_done);
                let sealed = side.e2e.seal(&peer, &offer.to_bytes()).map_err(|e| e.to_string())?;
                machine.accept(Instant::now(), sealed).map_err(|e| e.to_string())?;
                our_offer = Some(offer);
                answered_at = Some(Instant::now());
                connect_deadline = Some(tokio::time::Instant::now() + options.ice_timeout);
                start_media!();
                start_dtls!();
            }
            _ = tokio::time::sleep_until(relay_at.unwrap_or_else(far)), if relay_at.is_some() => {
                relay_at = None;
                if let Some(p) = &paths {
                    if dtls_session.is_none() && (options.force_relay || !p.ice.is_connected()) {
                        p.switch_to_relay();
                        report.path = Some("server-relay".into());
                        if options.status_line && !options.force_relay {
                            println!("[{}] no direct path yet: media goes through the server relay", side.me);
                        }
                        start_dtls!();
                    }
                }
            }
            _ = tokio::time::sleep_until(cancel_at.unwrap_or_else(far)), if cancel_at.is_some() => {
                cancel_at = None;
                if answered_at.is_none() {
                    let _ = machine.hangup(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(hangup_at.unwrap_or_else(far)), if hangup_at.is_some() => {
                hangup_at = None;
                report.reason = "hung up".into();
                let _ = machine.hangup(Instant::now());
            }
            _ = tokio::time::sleep_until(connect_deadline.unwrap_or_else(far)), if connect_deadline.is_some() && dtls_session.is_none() => {
                connect_deadline = None;
                if dtls_session.is_none() {
                    report.reason = "no media path within the ICE timeout".into();
                    machine.media_failed(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(machine_wake) => machine.handle_timeout(Instant::now()),
            _ = tokio::time::sleep_until(ice_deadline), if answered_at.is_none() && machine.state() != CallState::Ringing && machine.state() != CallState::Inviting && machine.state() != CallState::Idle => {
                report.reason = "timed out".into();
                let _ = machine.hangup(Instant::now());
            }
            control = controls.recv(), if controls_open => {
                match control {
                    None => controls_open = false,
                    Some(Control::Accept) => {
                        if machine.state() == CallState::Ringing && our_offer.is_none() {
                            accept_at = Some(tokio::time::Instant::now());
                        }
                    }
                    Some(Control::Reject) => {
                        if machine.state() == CallState::Ringing {
                            let _ = machine.reject(Instant::now(), cryptic_signal::wire::RejectReason::Declined);
                        }
                    }
                    Some(Control::Hangup) => {
                        let _ = machine.hangup(Instant::now());
                    }
                    Some(Control::Mute(m)) => {
                        let _ = mute_tx.send(m);
                    }
                    Some(Control::Stats) => {
                        let stats = *stats_rx.borrow();
                        println!("[{}] {}", side.me, status_line(&report, &stats, answered_at.map(|a| a.elapsed()).unwrap_or_default(), *mute_tx.borrow()));
                    }
                }
            }
            _ = status_tick.tick(), if options.status_line && dtls_session.is_some() => {
                let stats = *stats_rx.borrow();
                println!("[{}] {}", side.me, status_line(&report, &stats, answered_at.map(|a| a.elapsed()).unwrap_or_default(), *mute_tx.borrow()));
            }
        }

        // React to what the machine reports.
        while let Some(event) = machine.poll_event() {
            match event {
                CallEvent::Incoming {
                    call_id,
                    from,
                    payload,
                    ..
                } => {
                    report.call_id = Some(call_id);
                    report.peer = Some(from.clone());
                    started = Instant::now();
                    report.started_unix = unix_now();
                    match side
                        .e2e
                        .unseal(&from, &payload)
                        .map_err(|e| e.to_string())
                        .and_then(|b| CallOffer::from_bytes(&b).map_err(|e| e.to_string()))
                    {
                        Ok(offer) => {
                            if options.status_line {
                                println!("[{}] incoming call from {from}", side.me);
                            }
                            apply_remote(
                                &ice,
                                &offer.ice_ufrag,
                                &offer.ice_pwd,
                                &offer.candidates,
                                offer.end_of_candidates,
                            )
                            .await;
                            their_offer = Some(offer);
                            if options.auto_reject {
                                let _ = machine.reject(
                                    Instant::now(),
                                    cryptic_signal::wire::RejectReason::Declined,
                                );
                            } else if let Some(delay) = options.auto_accept {
                                accept_at = Some(tokio::time::Instant::now() + delay);
                            }
                        }
                        Err(e) => {
                            report.reason = format!("could not open the invite: {e}");
                            let _ = machine.reject(
                                Instant::now(),
                                cryptic_signal::wire::RejectReason::Incompatible,
                            );
                        }
                    }
                }
                CallEvent::Answer { payload, .. } => {
                    let peer = report.peer.clone().ok_or("answer without a peer")?;
                    let offer = side
                        .e2e
                        .unseal(&peer, &payload)
                        .map_err(|e| e.to_string())
                        .and_then(|b| CallOffer::from_bytes(&b).map_err(|e| e.to_string()))?;
                    apply_remote(
                        &ice,
                        &offer.ice_ufrag,
                        &offer.ice_pwd,
                        &offer.candidates,
                        offer.end_of_candidates,
                    )
                    .await;
                    their_offer = Some(offer);
                    answered_at = Some(Instant::now());
                    connect_deadline = Some(tokio::time::Instant::now() + options.ice_timeout);
                    start_media!();
                    start_dtls!();
                    // Candidates gathered while waiting for the answer.
                    for c in std::mem::take(&mut gathered) {
                        let update = CandidateUpdate::new(vec![c], false);
                        if let Ok(sealed) = side.e2e.seal(&peer, &update.to_bytes()) {
                            let _ = machine.send_candidate(sealed);
                        }
                    }
                }
                CallEvent::Candidate { payload, .. } => {
                    if let Some(peer) = report.peer.clone() {
                        if let Ok(update) = side
                            .e2e
                            .unseal(&peer, &payload)
                            .map_err(|e| e.to_string())
                            .and_then(|b| {
                                CandidateUpdate::from_bytes(&b).map_err(|e| e.to_string())
                            })
                        {
                            for c in &update.candidates {
                                let _ = ice.add_remote_candidate(c).await;
                            }
                            if update.end_of_candidates {
                                ice.end_of_remote_candidates();
                            }
                        }
                    }
                }
                CallEvent::State {
                    to: CallState::Ended,
                    reason,
                    ..
                } => {
                    ended = true;
                    let (outcome, words) = outcome_of(reason, answered_at.is_some());
                    report.outcome = forced_outcome.unwrap_or(outcome);
                    if report.reason.is_empty() || report.reason == "hung up" {
                        report.reason = words;
                    }
                }
                _ => {}
            }
        }
    }
    while let Some(m) = machine.poll_transmit() {
        let _ = side.sender.send(&m).await;
    }
    let _ = stop_tx.send(true);
    // Give the media task a moment to send BYE and finish the output file.
    tokio::time::sleep(Duration::from_millis(100)).await;
    report.stats = *stats_rx.borrow();
    report.active_time = answered_at.map(|a| a.elapsed()).unwrap_or_default();
    if let Some(s) = dtls_session {
        s.close().await;
    }
    ice.close().await;
    Ok(report)
}

async fn apply_remote(ice: &Driver, ufrag: &str, pwd: &str, candidates: &[String], eoc: bool) {
    if let Ok(creds) = Credentials::new(ufrag, pwd) {
        let _ = ice.set_remote_credentials(creds).await;
    }
    for c in candidates {
        if c != END_OF_CANDIDATES {
            let _ = ice.add_remote_candidate(c).await;
        }
    }
    if eoc {
        ice.end_of_remote_candidates();
    }
}

fn outcome_of(reason: Reason, answered: bool) -> (Outcome, String) {
    use cryptic_signal::wire::{HangupReason, RejectReason};
    match reason {
        Reason::SecurityAbort => (Outcome::SecurityAbort, "someone is in the middle".into()),
        Reason::RemoteHangup(Some(HangupReason::SecurityAbort)) => (
            Outcome::SecurityAbort,
            "the peer found someone in the middle (its DTLS certificate check failed); call aborted".into(),
        ),
        Reason::RemoteHangup(Some(HangupReason::MediaFailed)) => {
            (Outcome::Failed, "the peer's media failed".into())
        }
        Reason::LocalHangup | Reason::RemoteHangup(_) if answered => {
            (Outcome::Completed, "hung up".into())
        }
        Reason::LocalHangup => (Outcome::Cancelled, "cancelled before the answer".into()),
        Reason::RemoteHangup(_) => (Outcome::Cancelled, "the caller cancelled".into()),
        Reason::RemoteReject(RejectReason::Busy) | Reason::LocalReject(RejectReason::Busy) => {
            (Outcome::Busy, "busy".into())
        }
        Reason::RemoteReject(r) | Reason::LocalReject(r) => {
            (Outcome::Rejected, format!("rejected ({r:?})"))
        }
        Reason::RingTimeout => (Outcome::Missed, "nobody answered".into()),
        Reason::ConnectTimeout | Reason::MediaFailed => (Outcome::Failed, "media failed".into()),
        other => (Outcome::Failed, format!("{other:?}")),
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
                "s3cret:x".into()
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
