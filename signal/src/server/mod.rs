//! The signaling server: TLS 1.3 with required client certificates, one
//! WebSocket per user, routing by user, the active-call registry, relay
//! frames, rate limits, and the SQLite key directory.
//!
//! ```text
//! TcpListener ─accept─> TLS 1.3 (client cert from our CA) ─> WebSocket ─> connection task
//!                                                                  │  parsed messages
//!                                              Hub (routing, calls, limits) ─ mpsc ─> other connection tasks
//!                                              KeyDirectory (SQLite, blocking pool)
//! ```
//!
//! Embed it with [`Server::bind`] then [`Server::run`], or [`run`].
//! Logs (tracing) name users and call ids, never keys or payloads.
//!
//! Every resource a client can make the server hold is capped by a field
//! of [`Limits`]: connections (in all and per source address), handshakes
//! in progress per address, each write's deadline, the outgoing queue
//! (messages and bytes; [`Limits::connection_memory_bound`] gives the
//! memory of one connection), message and relay rates, key-directory
//! quotas, and the time calls, relay sessions and ringing may last.
//! `docs/OPERATIONS.md` lists them with their defaults.

mod admit;
pub mod cluster;
mod hub;
pub mod keydir;
mod quota;
pub mod revoke;
pub mod turn;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::certs::{certs_from_pem, key_from_pem, provider, root_store, user_from_cert_der};
use crate::wire::{ErrorCode, KeysPublished, Message, Pong, UserId, Welcome, MAX_MESSAGE_BYTES};
use crate::Error;
use hub::{Hub, Out, RateLimiter};
use keydir::KeyDirectory;

/// Limits the server enforces.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// At most one unanswered invite per sender within this interval. Default 10 s.
    pub invite_interval: Duration,
    /// Ringing calls older than this are dropped from the registry. Default 60 s.
    pub ring_timeout: Duration,
    /// Text messages per second per connection (token bucket rate). Default 50.
    pub messages_per_second: u32,
    /// Token bucket size for text messages. Default 200.
    pub message_burst: u32,
    /// Relay frames per second per call (both directions together). Default 2,000.
    pub relay_frames_per_second: u32,
    /// Relay bytes per second per call. Default 2 MiB.
    pub relay_bytes_per_second: u64,
    /// Bad messages (malformed, forged, invalid relay) tolerated before closing. Default 20.
    pub max_errors: u32,
    /// A connection silent for this long is closed (clients ping). Default 120 s.
    pub idle_timeout: Duration,
    /// TLS + WebSocket handshake deadline. Default 10 s.
    pub handshake_timeout: Duration,
    /// Most simultaneous connections, handshakes in progress included. Default 50,000.
    pub max_connections: usize,
    /// Most simultaneous connections from one source address (an IPv6
    /// source counts by its /64), handshakes included. Connections beyond
    /// it are closed at once. Default 64.
    pub max_connections_per_ip: usize,
    /// Most TLS + WebSocket handshakes in progress from one source address
    /// (IPv6 by /64): idle or slow handshakes from one address cannot hold
    /// more than this many slots for `handshake_timeout`. Default 16.
    pub max_handshakes_per_ip: usize,
    /// Outgoing queue per connection (messages). Default 256.
    pub queue_len: usize,
    /// Outgoing queue per connection (bytes of text and frames waiting to be
    /// written). What does not fit is dropped. Default 1 MiB.
    ///
    /// Together with the fixed WebSocket and TLS buffers this bounds a
    /// connection's memory; see [`Limits::connection_memory_bound`].
    pub queue_bytes: usize,
    /// Deadline of every write to a client (a batch of queued messages and
    /// its flush, an error reply, the welcome). A client that stops reading
    /// is dropped once a write misses it: its queue is freed and its slot
    /// counts no more towards `max_connections`. Default 5 s.
    pub write_timeout: Duration,
    /// Messages refused by the rate limit count as strikes (towards
    /// `max_errors`) once more than `rate_strike_multiple × message_burst`
    /// were refused without the sender pausing long enough for its bucket
    /// to refill. Default 2.
    pub rate_strike_multiple: u32,
    /// Relay frames refused by the per-call caps (`relay_limit`) count as
    /// strikes once more than `relay_strike_multiple ×
    /// relay_frames_per_second` were refused from one connection within
    /// one second. Default 5.
    pub relay_strike_multiple: u32,
    /// The window of the key-directory quotas below (all reset together
    /// when it ends). Default 60 s.
    pub key_window: Duration,
    /// `keys_fetch` of one target by one requester per window; more are
    /// refused (`rate_limited`). A fetch that hands out nothing (the target
    /// has no keys) is not counted. Default 5.
    pub key_fetches_per_target: u32,
    /// `keys_fetch` by one requester per window, all targets together;
    /// more are refused (`rate_limited`). Default 30.
    pub key_fetches_per_requester: u32,
    /// One-time keys claimed from one user per window, all requesters
    /// together; beyond it fetches get the (reusable) fallback key, so even
    /// several requesters cannot drain a user's one-time keys. Default 20.
    pub one_time_keys_per_target: u32,
    /// `keys_publish` by one user per window; more are refused before any
    /// signature is checked. Default 10.
    pub key_publishes_per_user: u32,
    /// An answered call lasting longer is ended by the server: both
    /// participants get `call_hangup` with reason `timeout`. Checked about
    /// once a second. Default 12 h.
    pub max_call_duration: Duration,
    /// Relay frames of one call are refused (`relay_limit`) once this long
    /// has passed since its first relay frame; the call itself goes on.
    /// Default 4 h.
    pub max_relay_duration: Duration,
    /// `call_ice_candidate` messages forwarded from each participant while
    /// the call rings; more are refused (`rate_limited`) until the answer.
    /// Default 20.
    pub max_ringing_candidates: u32,
    /// A user whose connection drops during an answered call keeps the
    /// call this long: a new login of the same user (on this node) within
    /// it takes the call over, and hang-ups and other call messages for it
    /// are held meanwhile (relay frames are dropped); after it the call
    /// ends as on any disconnect (`peer_disconnected`). Ringing calls end
    /// at once. Zero ends answered calls at once too. Default 20 s.
    pub reconnect_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            invite_interval: Duration::from_secs(10),
            ring_timeout: Duration::from_secs(60),
            messages_per_second: 50,
            message_burst: 200,
            relay_frames_per_second: 2_000,
            relay_bytes_per_second: 2 * 1024 * 1024,
            max_errors: 20,
            idle_timeout: Duration::from_secs(120),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 50_000,
            max_connections_per_ip: 64,
            max_handshakes_per_ip: 16,
            queue_len: 256,
            queue_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(5),
            rate_strike_multiple: 2,
            relay_strike_multiple: 5,
            key_window: Duration::from_secs(60),
            key_fetches_per_target: 5,
            key_fetches_per_requester: 30,
            one_time_keys_per_target: 20,
            key_publishes_per_user: 10,
            max_call_duration: Duration::from_secs(12 * 3600),
            max_relay_duration: Duration::from_secs(4 * 3600),
            max_ringing_candidates: 20,
            reconnect_grace: Duration::from_secs(20),
        }
    }
}

/// Most bytes tungstenite buffers for writing on one connection
/// ([`WebSocketConfig::max_write_buffer_size`]).
const WS_MAX_WRITE_BUFFER: usize = 1024 * 1024;
/// tungstenite's read buffer.
const WS_READ_BUFFER: usize = 1024;
/// rustls' buffers of one connection, approximately: the outgoing TLS
/// records (capped at 64 KiB by rustls' default buffer limit), received
/// plaintext (16 KiB) and the record deframer (up to a 64 KiB handshake
/// message). Rounded up.
const TLS_BUFFERS: usize = 192 * 1024;

impl Limits {
    /// An upper bound, in bytes, of what one connection holds in user-space
    /// buffers: its outgoing queue (`queue_bytes`, plus one item that may
    /// overshoot it, plus the queue's slots), the WebSocket write buffer
    /// (1 MiB at most), the message being read (twice
    /// [`MAX_MESSAGE_BYTES`]) with the 1 KiB read buffer, and rustls'
    /// buffers (about 192 KiB). About 2.5 MiB with the defaults.
    ///
    /// Not included: kernel socket buffers (see `net.ipv4.tcp_wmem` and
    /// `tcp_rmem`) and a few KiB of task and bookkeeping state.
    pub fn connection_memory_bound(&self) -> usize {
        let queue =
            self.queue_bytes + 2 * MAX_MESSAGE_BYTES + self.queue_len * std::mem::size_of::<Out>();
        let ws = WS_MAX_WRITE_BUFFER + WS_READ_BUFFER + 2 * MAX_MESSAGE_BYTES;
        queue + ws + TLS_BUFFERS
    }
}

/// Server configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// Server certificate chain, PEM.
    pub cert_pem: String,
    /// Server private key, PEM.
    pub key_pem: String,
    /// CA whose client certificates are accepted, PEM.
    pub client_ca_pem: String,
    /// Directory of the key directory database (`keys.sqlite`).
    pub data_dir: PathBuf,
    /// STUN/TURN server URIs advertised to clients in `welcome`
    /// (e.g. `stun:127.0.0.1:3478`, `turn:127.0.0.1:3478`). A `turn:` URI
    /// carries no password: each user gets its own short-lived credential
    /// from [`ServerConfig::turn`] in it.
    pub ice_servers: Vec<String>,
    /// The TURN REST secret shared with the TURN server, and how long the
    /// credentials handed out stay valid. Needed when a `turn:` URI is advertised.
    pub turn: Option<Arc<turn::TurnConfig>>,
    /// The revocation list ([`revoke`]): read at [`Server::bind`] and again
    /// by [`ServerHandle::reload_revocations`] (the CLI calls it on SIGHUP).
    pub revocation_file: Option<PathBuf>,
    /// Cluster mode: share presence and routing with other nodes through
    /// Redis ([`cluster`]). `None`: one node, nothing shared.
    pub cluster: Option<cluster::ClusterConfig>,
    /// Limits.
    pub limits: Limits,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// A configuration with default limits.
    pub fn new(
        listen: SocketAddr,
        cert_pem: String,
        key_pem: String,
        client_ca_pem: String,
        data_dir: PathBuf,
    ) -> Self {
        Self {
            listen,
            cert_pem,
            key_pem,
            client_ca_pem,
            data_dir,
            ice_servers: Vec::new(),
            turn: None,
            revocation_file: None,
            cluster: None,
            limits: Limits::default(),
        }
    }
}

struct Shared {
    hub: Mutex<Hub>,
    key_quota: Mutex<quota::KeyQuota>,
    addrs: Arc<admit::AddrSlots>,
    ice_servers: Vec<String>,
    turn: Option<Arc<turn::TurnConfig>>,
    revocation_file: Option<PathBuf>,
    revocations: std::sync::RwLock<Arc<revoke::Revocations>>,
    cluster: Option<Arc<cluster::Cluster>>,
    /// Every logged-in connection, for ending revoked ones on a reload.
    live: Mutex<HashMap<u64, (UserId, revoke::CertFingerprint, hub::Tx)>>,
    keys: Arc<KeyDirectory>,
    limits: Limits,
    next_conn: AtomicU64,
    connections: AtomicUsize,
}

impl Shared {
    fn key_quota(&self) -> std::sync::MutexGuard<'_, quota::KeyQuota> {
        // Counter updates are single steps: a poisoned lock is consistent.
        self.key_quota
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The STUN/TURN URIs for `user`'s `welcome`, TURN ones with a fresh
    /// credential of that user.
    fn ice_servers_for(&self, user: &UserId) -> Vec<String> {
        let cred = self.turn.as_ref().map(|t| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            t.secret.credential(user, now, t.validity)
        });
        turn::advertise(&self.ice_servers, cred.as_ref())
    }

    fn live(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (UserId, revoke::CertFingerprint, hub::Tx)>> {
        // Inserts and removals are single steps: a poisoned lock is consistent.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn revocations(&self) -> Arc<revoke::Revocations> {
        self.revocations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        // Hub methods do not panic midway through updates; recover from poison anyway.
        self.hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Live figures of a running server.
#[derive(Clone)]
pub struct ServerStats(Arc<Shared>);

impl ServerStats {
    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.0.connections.load(Ordering::Relaxed)
    }

    /// Calls in the registry (ringing or active).
    pub fn calls(&self) -> usize {
        self.0.hub().call_count()
    }
}

/// Controls a running server.
#[derive(Clone)]
pub struct ServerHandle(Arc<Shared>);

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

/// What a reload of the revocation list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// Entries in the list now in force.
    pub entries: usize,
    /// Open connections ended because the list now refuses them.
    pub ended: usize,
}

impl ServerHandle {
    /// Reads the revocation list again and ends every open connection it
    /// now refuses (the client reads `certificate_revoked`). On an error
    /// (unreadable file, bad line) the list in force stays.
    pub fn reload_revocations(&self) -> Result<Reloaded, Error> {
        let path = self.0.revocation_file.as_ref().ok_or_else(|| {
            Error::Config(crate::Cause::new(
                "this server was started without a revocation list",
            ))
        })?;
        let list = Arc::new(revoke::Revocations::load(path)?);
        *self
            .0
            .revocations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = list.clone();
        let mut ended = 0;
        for (user, cert, tx) in self.0.live().values() {
            if list.refuses(user, cert) {
                tracing::info!(user = %user, "certificate revoked: ending its connection");
                tx.kill(ErrorCode::CertificateRevoked);
                ended += 1;
            }
        }
        Ok(Reloaded {
            entries: list.len(),
            ended,
        })
    }
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Binds and runs a server until `shutdown` completes.
pub async fn run(config: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Server::bind(config).await?.run(shutdown).await
}

fn tls_config(config: &ServerConfig) -> Result<rustls::ServerConfig, Error> {
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string().into());
    let roots = Arc::new(root_store(&config.client_ca_pem)?);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| tls(&e))?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(&config.cert_pem)?,
            key_from_pem(&config.key_pem)?,
        )
        .map_err(|e| tls(&e))?;
    // No resumption tickets: every connection proves its certificate.
    c.send_tls13_tickets = 0;
    c.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(c)
}

/// WebSocket limits: messages up to twice [`MAX_MESSAGE_BYTES`] are read so
/// that the parser can answer `too_large`; larger ones close the connection.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        // Frames queue up to 8 KiB before a write, so a burst of relay
        // frames becomes one TLS record and one syscall, while an idle
        // connection keeps no large buffer.
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .max_message_size(Some(2 * MAX_MESSAGE_BYTES))
        .max_frame_size(Some(2 * MAX_MESSAGE_BYTES))
}

impl Server {
    /// Loads the certificates, opens the key directory and binds the listener.
    pub async fn bind(config: ServerConfig) -> Result<Server, Error> {
        turn::check_uris(&config.ice_servers, config.turn.as_deref())?;
        let tls = tls_config(&config)?;
        let fd_limit = admit::raise_fd_limit();
        if fd_limit.is_some_and(|l| l < config.limits.max_connections as u64) {
            tracing::warn!(
                fd_limit,
                max_connections = config.limits.max_connections,
                "the open-file limit is below max_connections: accepts will fail before the cap"
            );
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Storage(crate::Cause::because(
                config.data_dir.display().to_string(),
                e,
            ))
        })?;
        let keys = Arc::new(KeyDirectory::open(&config.data_dir.join("keys.sqlite"))?);
        let revocations = match &config.revocation_file {
            Some(path) => {
                let r = revoke::Revocations::load(path)?;
                tracing::info!(entries = r.len(), "revocation list loaded");
                r
            }
            None => revoke::Revocations::default(),
        };
        let cluster = match &config.cluster {
            Some(c) => Some(cluster::Cluster::connect(c).await?),
            None => None,
        };
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            shared: Arc::new(Shared {
                hub: Mutex::new(Hub::default()),
                key_quota: Mutex::new(quota::KeyQuota::default()),
                addrs: admit::AddrSlots::new(
                    config.limits.max_connections_per_ip,
                    config.limits.max_handshakes_per_ip,
                ),
                ice_servers: config.ice_servers,
                turn: config.turn,
                revocation_file: config.revocation_file,
                revocations: std::sync::RwLock::new(Arc::new(revocations)),
                live: Mutex::new(HashMap::new()),
                cluster,
                keys,
                limits: config.limits,
                next_conn: AtomicU64::new(1),
                connections: AtomicUsize::new(0),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.listener.local_addr()?)
    }

    /// A handle to live figures.
    pub fn stats(&self) -> ServerStats {
        ServerStats(self.shared.clone())
    }

    /// A handle to control the running server (reload the revocation list).
    pub fn handle(&self) -> ServerHandle {
        ServerHandle(self.shared.clone())
    }

    /// Accepts connections until `shutdown` completes, then tells every
    /// client (error `server_shutdown`, close frame) and waits up to five
    /// seconds for the connections to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(addr = ?self.listener.local_addr().ok(), "signaling server listening");
        let mut backoff = admit::AcceptBackoff::default();
        // While accepts keep failing (EMFILE...), the listener pauses.
        let mut paused_until: Option<tokio::time::Instant> = None;
        // Time caps of calls (duration, ringing) are enforced by a sweep.
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cluster_tasks = tokio::task::JoinSet::new();
        if let Some(c) = &self.shared.cluster {
            let (subscribed, ready) = tokio::sync::oneshot::channel();
            cluster_tasks.spawn(cluster::inbound(self.shared.clone(), c.clone(), subscribed));
            cluster_tasks.spawn(cluster::heartbeat(self.shared.clone(), c.clone()));
            // Users are taken in only once envelopes for them can arrive:
            // an invite published before the subscription is lost. Those
            // who connect meanwhile wait in the listen backlog.
            if tokio::time::timeout(cluster::FIRST_SUBSCRIBE, ready)
                .await
                .is_err()
            {
                tracing::warn!("cluster: not subscribed to Redis yet; taking users in anyway");
            }
        }
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = sweep.tick() => {
                    let (ended, gone) = {
                        let mut hub = self.shared.hub();
                        (hub.expire(Instant::now(), &self.shared.limits), hub.take_gone())
                    };
                    deliver(ended);
                    if let (Some(c), false) = (&self.shared.cluster, gone.is_empty()) {
                        cluster_tasks.spawn(cluster::release_all(c.clone(), gone));
                    }
                }
                () = tokio::time::sleep_until(paused_until.unwrap_or_else(tokio::time::Instant::now)),
                    if paused_until.is_some() => paused_until = None,
                r = self.listener.accept(), if paused_until.is_none() => {
                    let (tcp, peer) = match r {
                        Ok(x) => {
                            backoff.succeeded();
                            x
                        }
                        Err(e) => {
                            let wait = backoff.failed(&e, Instant::now());
                            paused_until = Some(tokio::time::Instant::now() + wait);
                            continue;
                        }
                    };
                    // Counts handshakes in progress too, so half-open connections
                    // cannot exhaust file descriptors.
                    if tasks.len() >= self.shared.limits.max_connections {
                        drop(tcp);
                        continue;
                    }
                    // One address cannot take every slot (addresses stay out of logs).
                    let Some(slot) = self.shared.addrs.admit(peer.ip()) else {
                        tracing::debug!("per-address connection or handshake cap reached");
                        drop(tcp);
                        continue;
                    };
                    let shared = self.shared.clone();
                    let acceptor = self.acceptor.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(connection(shared, acceptor, tcp, slot, stop));
                }
            }
        }
        tracing::info!("signaling server shutting down");
        let _ = stop_tx.send(true);
        for tx in self.shared.hub().senders() {
            tx.try_send(Out::Close(
                ErrorCode::ServerShutdown,
                "server shutting down".into(),
            ));
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
        cluster_tasks.abort_all();
        Ok(())
    }
}

fn deliver(list: Vec<(hub::Tx, Out)>) {
    for (tx, out) in list {
        // A full queue means a slow reader: drop rather than block routing.
        if !tx.try_send(out) {
            tracing::debug!("dropped a message for a slow or closed connection");
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    mut slot: admit::Slot,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let limits = shared.limits.clone();
    let hs = async {
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or("no client certificate")?;
        let user = user_from_cert_der(&der).map_err(|e| e.to_string())?;
        let ws = tokio_tungstenite::accept_async_with_config(tls, Some(ws_config()))
            .await
            .map_err(|e| format!("websocket: {e}"))?;
        // Boxed: the connection's state then exists once, on the heap,
        // not copied into each future that takes it.
        Ok::<_, String>((user, revoke::fingerprint(&der), Box::new(ws)))
    };
    // The handshake's state (TLS, certificate checks, HTTP upgrade) is
    // large and short-lived: on the heap, not in every connection's task.
    let handshake = tokio::time::timeout(limits.handshake_timeout, Box::pin(hs)).await;
    slot.handshake_done();
    // The handshake's result moves into the session's future within this
    // block, so the task does not keep a second copy of the connection.
    let session = {
        let (user, cert, ws) = match handshake {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::info!(reason = %e, "connection refused during handshake");
                return;
            }
            Err(_) => {
                tracing::info!("handshake timed out");
                return;
            }
        };
        serve(&shared, user, cert, ws, stop)
    };
    shared.connections.fetch_add(1, Ordering::Relaxed);
    session.await;
    shared.connections.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<TcpStream>>;

fn close_frame(code: ErrorCode, reason: &str) -> WsMessage {
    let code = match code {
        ErrorCode::ServerShutdown => CloseCode::Away,
        ErrorCode::TooManyErrors => CloseCode::Policy,
        _ => CloseCode::Normal,
    };
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// How a connection's loop ended.
enum End {
    /// The client left, a read failed or it went idle: close politely.
    Gone,
    /// A write failed or missed its deadline: the client does not read.
    /// Drop it without a goodbye (that write would be stuck too).
    Stuck,
    /// We end it and say why (error message, close frame) within a short deadline.
    Close(ErrorCode, String),
}

impl End {
    /// The goodbye of a connection killed for `why`.
    fn killed(why: ErrorCode) -> Self {
        let text = match why {
            ErrorCode::CertificateRevoked => REVOKED,
            _ => "a newer connection for this user replaced this one",
        };
        End::Close(why, text.into())
    }
}

/// What a revoked user reads.
const REVOKED: &str = "the operator revoked this certificate: the server refuses it \
                       (ask the operator for a new profile)";

/// Completes once the connection is killed, with why (never if its kill
/// switch is gone).
async fn killed(kill: &mut hub::Kill) -> ErrorCode {
    let why = kill.wait_for(Option::is_some).await.map(|w| *w);
    match why {
        Ok(why) => why.unwrap_or(ErrorCode::SessionReplaced),
        Err(_) => std::future::pending().await,
    }
}

/// Runs one write (feed, flush, send) until `deadline`; a kill (newer
/// login) interrupts it.
async fn bounded<F>(
    deadline: tokio::time::Instant,
    kill: &mut hub::Kill,
    write: F,
) -> Result<(), End>
where
    F: Future<Output = Result<(), tokio_tungstenite::tungstenite::Error>>,
{
    tokio::select! {
        biased;
        why = killed(kill) => Err(End::killed(why)),
        r = tokio::time::timeout_at(deadline, write) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Stuck),
        },
    }
}

async fn serve(
    shared: &Arc<Shared>,
    user: UserId,
    cert: revoke::CertFingerprint,
    mut ws: Box<Ws>,
    stop: watch::Receiver<bool>,
) {
    let limits = &shared.limits;
    let conn_id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, rx, kill) = hub::channel(limits.queue_len, limits.queue_bytes);
    // Registered before the check: a reload that lands in between finds
    // this connection and ends it.
    shared
        .live()
        .insert(conn_id, (user.clone(), cert, tx.clone()));
    let end = if shared.revocations().refuses(&user, &cert) {
        tracing::info!(user = %user, "login refused: certificate revoked");
        End::killed(ErrorCode::CertificateRevoked)
    } else {
        session(shared, &user, conn_id, &mut ws, (tx, rx, kill), stop).await
    };
    shared.live().remove(&conn_id);
    let goodbye = tokio::time::Instant::now() + limits.write_timeout.min(Duration::from_secs(1));
    match end {
        End::Stuck => tracing::info!(user = %user, "dropped: a write missed its deadline"),
        End::Gone => {
            let _ = tokio::time::timeout_at(goodbye, Ws::close(&mut ws, None)).await;
        }
        End::Close(code, why) => {
            let m = Message::error(code, why.clone(), None).to_json();
            let _ = tokio::time::timeout_at(goodbye, async {
                ws.send(WsMessage::text(m)).await?;
                ws.send(close_frame(code, &why)).await?;
                // Read (and discard) until the client answers the close:
                // closing with unread input would reset the connection and
                // could destroy the goodbye before the client reads it.
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_close() {
                        break;
                    }
                }
                Ws::close(&mut ws, None).await
            })
            .await;
        }
    }
    tracing::info!(user = %user, "disconnected");
}

/// A logged-in connection: registered in the hub (replacing an older one of
/// the same user) until it ends; returns how it ended.
async fn session(
    shared: &Arc<Shared>,
    user: &UserId,
    conn_id: u64,
    ws: &mut Ws,
    (tx, mut rx, mut kill): (hub::Tx, hub::Rx, hub::Kill),
    mut stop: watch::Receiver<bool>,
) -> End {
    let (old, hangups) = shared.hub().connect(user, conn_id, tx.clone());
    deliver(hangups);
    if let Some(old) = old {
        tracing::info!(user = %user, "new login replaces the previous connection");
        // The goodbye goes through the queue if there is room; the kill
        // ends the old connection even if its queue is full or it is
        // stuck writing.
        old.try_send(Out::Close(
            ErrorCode::SessionReplaced,
            "a newer connection for this user replaced this one".into(),
        ));
        old.kill(ErrorCode::SessionReplaced);
    }
    tracing::info!(user = %user, "connected");
    // Redis calls are boxed: their futures would otherwise be part of
    // every connection's task for its whole life.
    if let Some(c) = &shared.cluster {
        if let Err(e) = Box::pin(c.claim(user, conn_id)).await {
            tracing::warn!(error = %e, "cluster: presence not recorded");
        }
    }
    let end = drive(
        shared, user, conn_id, ws, &tx, &mut rx, &mut kill, &mut stop,
    )
    .await;
    // A lost connection keeps its answered calls for a while; one the
    // server ended (abuse, revocation, shutdown) does not.
    let grace = match end {
        End::Gone | End::Stuck => shared.limits.reconnect_grace,
        End::Close(..) => Duration::ZERO,
    };
    // A connection replaced by a login on another node (still current
    // here) leaves its answered calls going without a word.
    let replaced = matches!(end, End::Close(ErrorCode::SessionReplaced, _));
    let contacts = shared.hub().contacts_of(user, conn_id);
    let (hangups, away) = {
        let mut hub = shared.hub();
        let (moved, mut hangups) = if replaced {
            hub.moved_elsewhere(user, conn_id)
        } else {
            (false, Vec::new())
        };
        if !moved {
            hangups = hub.disconnect(user, conn_id, Instant::now(), grace);
        }
        let away = hub.is_away(user) && hub.local(user).is_some_and(|(c, _)| c == conn_id);
        (hangups, away)
    };
    deliver(hangups);
    if let Some(c) = &shared.cluster {
        // A user in its grace keeps its presence here: a login on another
        // node then tells this one (which lets the call go), and the sweep
        // removes it when the grace ends.
        if !away {
            Box::pin(cluster::logout(shared, c, user, conn_id, &contacts)).await;
        }
    }
    end
}

/// The connection loop: writes what the hub queued, reads and handles what
/// the client sends, until one side ends it.
#[allow(clippy::too_many_arguments)]
async fn drive(
    shared: &Arc<Shared>,
    user: &UserId,
    conn_id: u64,
    ws: &mut Ws,
    tx: &hub::Tx,
    rx: &mut hub::Rx,
    kill: &mut hub::Kill,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let limits = &shared.limits;
    let deadline = || tokio::time::Instant::now() + limits.write_timeout;
    let welcome = Message::Welcome(Welcome {
        user: user.clone(),
        ice_servers: shared.ice_servers_for(user),
    })
    .to_json();
    if let Err(e) = bounded(deadline(), kill, ws.send(WsMessage::text(welcome))).await {
        return e;
    }
    let mut rate = RateLimiter::new(
        limits.messages_per_second,
        limits.message_burst,
        Instant::now(),
    );
    let rate_strikes_after =
        u64::from(limits.rate_strike_multiple) * u64::from(limits.message_burst);
    // Relay frames refused by the per-call caps within one second, beyond
    // this many, are strikes too.
    let relay_strikes_after =
        u64::from(limits.relay_strike_multiple) * u64::from(limits.relay_frames_per_second);
    let mut relay_refused = hub::RefusalWindow::new(Instant::now());
    let mut strikes = 0u32;
    let mut idle_armed = Instant::now();
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    // Fresh TURN credentials, in a repeated `welcome`, every third of their
    // validity: a client that misses one still holds valid credentials.
    let refresh_every = shared
        .turn
        .as_ref()
        .map(|t| (t.validity / 3).max(Duration::from_secs(1)));
    let refresh = tokio::time::sleep(refresh_every.unwrap_or(limits.idle_timeout));
    tokio::pin!(refresh);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                return End::Close(ErrorCode::ServerShutdown, "server shutting down".into());
            }
            why = killed(kill) => return End::killed(why),
            () = &mut refresh, if refresh_every.is_some() => {
                let welcome = Message::Welcome(Welcome {
                    user: user.clone(),
                    ice_servers: shared.ice_servers_for(user),
                });
                tx.try_send(Out::Text(welcome.to_json()));
                let next = tokio::time::Instant::now() + refresh_every.unwrap_or_default();
                refresh.as_mut().reset(next);
            }
            out = rx.recv() => {
                let Some(out) = out else { return End::Gone };
                // One deadline for the whole batch and its flush: a client
                // that reads a trickle cannot hold a writer for long.
                let by = deadline();
                let mut next = Some(out);
                let mut n = 0;
                let mut close = None;
                while let Some(o) = next.take() {
                    let m = match o {
                        Out::Text(t) => WsMessage::text(t),
                        Out::Binary(b) => WsMessage::Binary(b),
                        Out::Close(code, why) => {
                            close = Some(End::Close(code, why));
                            break;
                        }
                    };
                    if let Err(e) = bounded(by, kill, ws.feed(m)).await {
                        return e;
                    }
                    n += 1;
                    if n >= 64 {
                        break;
                    }
                    next = rx.try_recv();
                }
                if let Err(e) = bounded(by, kill, ws.flush()).await {
                    return e;
                }
                if let Some(c) = close {
                    return c;
                }
            }
            _ = &mut idle => {
                tracing::info!(user = %user, "idle timeout");
                return End::Gone;
            }
            msg = ws.next() => {
                let msg = match msg {
                    None | Some(Err(_)) => return End::Gone,
                    Some(Ok(m)) => m,
                };
                let now = Instant::now();
                // Re-arm the idle timer at most once a second.
                if now.duration_since(idle_armed) > Duration::from_secs(1) {
                    idle_armed = now;
                    idle.as_mut().reset((now + limits.idle_timeout).into());
                }
                let reply = match msg {
                    WsMessage::Text(t) => {
                        if !rate.allow(now) {
                            let strike = rate.refused() > rate_strikes_after;
                            Some((ErrorCode::RateLimited, "too many messages", None, strike))
                        } else {
                            // Boxed: key-directory and cluster work makes this
                            // future large, and an idle connection need not hold it.
                            Box::pin(handle_text(shared, user, conn_id, t.as_str(), now, tx)).await
                        }
                    }
                    WsMessage::Binary(b) => {
                        let o = shared.hub().route_binary(user, b, now, limits);
                        let e = o.error.map(|(c, m, id)| (c, m, id, o.strike));
                        deliver(o.deliver);
                        e
                    }
                    WsMessage::Close(_) => return End::Gone,
                    _ => None,
                };
                if let Some((code, text, call_id, mut strike)) = reply {
                    if code == ErrorCode::RelayLimit
                        && relay_refused.refuse(now) > relay_strikes_after
                    {
                        strike = true;
                    }
                    if strike {
                        strikes += 1;
                    }
                    let m = Message::error(code, text, call_id).to_json();
                    if let Err(e) = bounded(deadline(), kill, ws.send(WsMessage::text(m))).await {
                        return e;
                    }
                    if strikes >= limits.max_errors {
                        tracing::warn!(user = %user, "too many bad messages, closing");
                        return End::Close(ErrorCode::TooManyErrors, "too many bad messages".into());
                    }
                }
            }
        }
    }
}

type Reply = Option<(ErrorCode, &'static str, Option<crate::wire::CallId>, bool)>;

/// Stores keys: in Redis in cluster mode, else in SQLite (off the runtime).
async fn publish_keys(
    shared: &Arc<Shared>,
    user: &UserId,
    p: crate::wire::KeysPublish,
) -> Result<Option<u32>, Error> {
    if let Some(c) = &shared.cluster {
        return c.publish_keys(user, &p).await;
    }
    let keys = shared.keys.clone();
    let u = user.clone();
    tokio::task::spawn_blocking(move || keys.publish(&u, &p))
        .await
        .map_err(|e| Error::Database(crate::Cause::because("key directory task", e)))?
}

/// Claims a bundle: from Redis in cluster mode, else from SQLite.
async fn claim_keys(
    shared: &Arc<Shared>,
    target: &UserId,
    one_time: bool,
) -> Result<Option<crate::wire::KeysBundle>, Error> {
    if let Some(c) = &shared.cluster {
        return c.claim_keys(target, one_time).await;
    }
    let keys = shared.keys.clone();
    let u = target.clone();
    tokio::task::spawn_blocking(move || keys.claim(&u, one_time))
        .await
        .map_err(|e| Error::Database(crate::Cause::because("key directory task", e)))?
}

/// Counts a `keys_publish`: in Redis in cluster mode (cluster-wide), else
/// (or when Redis fails) on this node.
async fn quota_publish(shared: &Arc<Shared>, user: &UserId, now: Instant) -> bool {
    if let Some(c) = &shared.cluster {
        match c.quota_publish(user, &shared.limits).await {
            Ok(ok) => return ok,
            Err(e) => tracing::warn!(error = %e, "cluster: quota counted on this node only"),
        }
    }
    shared.key_quota().publish(user, now, &shared.limits)
}

/// Decides a `keys_fetch`: in Redis in cluster mode (cluster-wide), else
/// (or when Redis fails) on this node.
async fn quota_fetch(
    shared: &Arc<Shared>,
    user: &UserId,
    target: &UserId,
    now: Instant,
) -> quota::Fetch {
    if let Some(c) = &shared.cluster {
        match c.quota_fetch(user, target, &shared.limits).await {
            Ok(f) => return f,
            Err(e) => tracing::warn!(error = %e, "cluster: quota counted on this node only"),
        }
    }
    shared.key_quota().fetch(user, target, now, &shared.limits)
}

/// Gives back what [`quota_fetch`] counted (where it counted it).
async fn quota_refund(shared: &Arc<Shared>, user: &UserId, target: &UserId, decided: quota::Fetch) {
    if let Some(c) = &shared.cluster {
        match c.quota_refund(user, target, decided).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "cluster: quota not refunded"),
        }
    }
    shared.key_quota().refund(user, target, decided);
}

async fn handle_text(
    shared: &Arc<Shared>,
    user: &UserId,
    conn_id: u64,
    text: &str,
    now: Instant,
    tx: &hub::Tx,
) -> Reply {
    let msg = match Message::parse(text) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(user = %user, code = ?e.code, "bad message");
            return Some((e.code, "message rejected by the parser", None, true));
        }
    };
    match msg {
        Message::Ping(p) => {
            tx.try_send(Out::Text(Message::Pong(Pong { nonce: p.nonce }).to_json()));
            None
        }
        Message::KeysPublish(p) => {
            // Cheap checks first: no signature work for a publish that would
            // be refused anyway. (Key and signature sizes are fixed by the
            // parser; the message size by MAX_MESSAGE_BYTES.)
            if p.one_time_keys.len() > keydir::MAX_ONE_TIME_KEYS_PER_PUBLISH {
                return Some((
                    ErrorCode::InvalidValue,
                    "too many one-time keys in one publish",
                    None,
                    true,
                ));
            }
            if !quota_publish(shared, user, now).await {
                return Some((
                    ErrorCode::RateLimited,
                    "too many key publishes",
                    None,
                    false,
                ));
            }
            match publish_keys(shared, user, p).await {
                Ok(Some(count)) => {
                    tracing::info!(user = %user, "keys published");
                    tx.try_send(Out::Text(
                        Message::KeysPublished(KeysPublished {
                            one_time_key_count: count,
                        })
                        .to_json(),
                    ));
                    None
                }
                Ok(None) => Some((
                    ErrorCode::InvalidValue,
                    "key signatures do not verify",
                    None,
                    true,
                )),
                _ => Some((
                    ErrorCode::Internal,
                    "key directory unavailable",
                    None,
                    false,
                )),
            }
        }
        Message::KeysFetch(f) => {
            let decided = quota_fetch(shared, user, &f.user, now).await;
            let one_time = match decided {
                quota::Fetch::Refuse => {
                    return Some((ErrorCode::RateLimited, "too many key fetches", None, false))
                }
                quota::Fetch::OneTimeKey => true,
                quota::Fetch::FallbackOnly => false,
            };
            let r = claim_keys(shared, &f.user, one_time).await;
            if !matches!(r, Ok(Some(_))) {
                quota_refund(shared, user, &f.user, decided).await;
            }
            match r {
                Ok(Some(b)) => {
                    tx.try_send(Out::Text(Message::KeysBundle(b).to_json()));
                    None
                }
                Ok(None) if !one_time => Some((
                    ErrorCode::RateLimited,
                    "that user's one-time keys are rationed and there is no fallback key",
                    None,
                    false,
                )),
                Ok(None) => Some((
                    ErrorCode::NoKeys,
                    "no keys published for that user",
                    None,
                    false,
                )),
                _ => Some((
                    ErrorCode::Internal,
                    "key directory unavailable",
                    None,
                    false,
                )),
            }
        }
        Message::PresenceShare(p) => {
            if p.contacts.len() > crate::wire::MAX_PRESENCE_CONTACTS {
                return Some((
                    ErrorCode::InvalidValue,
                    "too many contacts in one presence list",
                    None,
                    true,
                ));
            }
            tracing::info!(user = %user, contacts = p.contacts.len(), "presence list set");
            let (old, d, new) = {
                let mut hub = shared.hub();
                let old = hub.contacts_of(user, conn_id);
                let d = hub.share_presence(user, p.contacts);
                (old, d, hub.contacts_of(user, conn_id))
            };
            deliver(d);
            if let Some(c) = &shared.cluster {
                cluster::share_presence(shared, c, user, &old, &new).await;
            }
            None
        }
        Message::KeysPublished(_)
        | Message::KeysBundle(_)
        | Message::Error(_)
        | Message::Welcome(_)
        | Message::Presence(_)
        | Message::Pong(_) => Some((
            ErrorCode::NotAllowed,
            "only the server sends this message",
            None,
            true,
        )),
        m => {
            if let Some(c) = &shared.cluster {
                cluster::prepare_route(shared, c, &m).await;
            }
            let o = shared.hub().route(user, m, now, &shared.limits);
            deliver(o.deliver);
            o.error.map(|(c, m, id)| (c, m, id, o.strike))
        }
    }
}
