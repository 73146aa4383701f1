//! The tokio driver: one UDP socket carrying ICE, TURN, DTLS and SRTP,
//! demultiplexed by first byte (RFC 7983), and the TCP or TLS streams to
//! TURN servers reached that way ([`TurnStreams`]).

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::host::local_addresses;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::agent::{Agent, AgentConfig, Credentials, Event, Received, Route};
use crate::candidate::Candidate;
use crate::stream::{StreamInput, TurnStreams};
use crate::stun::ChannelData;
use crate::Error;

/// Media datagrams queued for [`IceTransport::recv`] at most; more are
/// dropped, as a full socket buffer would.
const MEDIA_QUEUE: usize = 256;
/// Largest datagram read from the socket.
const MAX_DATAGRAM: usize = 2048;
/// Largest payload [`IceTransport::send`] frames as ChannelData.
const MAX_RELAYED: usize = 1500;

enum Command {
    RemoteCredentials(Credentials, oneshot::Sender<Result<(), Error>>),
    RemoteCandidate(Box<Candidate>, oneshot::Sender<Result<(), Error>>),
    EndOfCandidates,
    Restart,
    Close(oneshot::Sender<()>),
}

struct Shared {
    socket: Arc<UdpSocket>,
    streams: TurnStreams,
    /// The socket is IPv6 (dual-stack): IPv4 peers are v4-mapped on it.
    v6: bool,
    route: RwLock<Option<Route>>,
    media: Mutex<mpsc::Receiver<Vec<u8>>>,
    recycle: mpsc::Sender<Vec<u8>>,
}

/// Sends and receives application datagrams (DTLS, SRTP, SRTCP) on the
/// selected pair. Cheap to clone; all clones share the socket.
///
/// - [`send`](Self::send) goes to the peer on the selected pair, wrapped in
///   ChannelData (or a Send indication until the channel is bound) when the
///   pair runs through our TURN relay. Direct and ChannelData sends do not
///   allocate. Before a pair is selected it fails with `NotConnected`.
/// - [`recv`](Self::recv) yields the next datagram from the peer whose first
///   byte is DTLS (20..=63) or RTP/RTCP (128..=191), unwrapped from TURN
///   framing; STUN never reaches it. Datagrams longer than `buf` are
///   truncated, as with a UDP socket. The driver task copies each datagram
///   into a buffer recycled from earlier `recv`s (no allocation once warm);
///   at most 256 wait, more are dropped as a full socket buffer would.
/// - The send path reads the selected route under an uncontended read
///   lock (no syscall); it is written only when the route changes.
#[derive(Clone)]
pub struct IceTransport {
    shared: Arc<Shared>,
}

impl IceTransport {
    /// Sends one datagram to the peer on the selected pair.
    pub async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let route = *self
            .shared
            .route
            .read()
            .map_err(|_| io::Error::other("route lock poisoned"))?;
        match route {
            None => Err(io::ErrorKind::NotConnected.into()),
            Some(Route::Direct { peer }) => self
                .shared
                .socket
                .send_to(datagram, on_socket(peer, self.shared.v6))
                .await
                .map(drop),
            Some(Route::Relay {
                server,
                channel: Some(ch),
                transport,
                ..
            }) if transport.is_stream() => {
                let mut buf = vec![0u8; datagram.len() + 8];
                let n = crate::framing::write_channel_data_padded(ch, datagram, &mut buf)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                buf.truncate(n);
                self.shared.streams.send(server, transport, buf);
                Ok(())
            }
            Some(Route::Relay {
                server,
                peer,
                transport,
                ..
            }) if transport.is_stream() => {
                let msg = crate::turn::send_indication(peer, datagram, rand::random())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                self.shared.streams.send(server, transport, msg);
                Ok(())
            }
            Some(Route::Relay {
                server,
                channel: Some(ch),
                ..
            }) => {
                let mut buf = [0u8; MAX_RELAYED + 4];
                let n = ChannelData::write(ch, datagram, &mut buf)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                self.shared
                    .socket
                    .send_to(&buf[..n], on_socket(server, self.shared.v6))
                    .await
                    .map(drop)
            }
            Some(Route::Relay { server, peer, .. }) => {
                let msg = crate::turn::send_indication(peer, datagram, rand::random())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                self.shared
                    .socket
                    .send_to(&msg, on_socket(server, self.shared.v6))
                    .await
                    .map(drop)
            }
        }
    }

    /// Receives the next application datagram from the peer into `buf`;
    /// returns its length. Fails with `NotConnected` once the driver ended.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let datagram = {
            let mut rx = self.shared.media.lock().await;
            rx.recv()
                .await
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?
        };
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        let _ = self.shared.recycle.try_send(datagram);
        Ok(n)
    }

    /// Whether a pair is selected now.
    pub fn is_connected(&self) -> bool {
        self.shared
            .route
            .read()
            .map(|r| r.is_some())
            .unwrap_or(false)
    }
}

/// Runs an [`Agent`] on one tokio UDP socket.
///
/// Call sequence: [`start`](Self::start); send
/// [`local_credentials`](Self::local_credentials) to the peer; read
/// [`next_event`](Self::next_event) in a loop and signal each
/// `CandidateGathered` (as `candidate.to_sdp_string()`) and `GatheringDone`
/// (as end-of-candidates); feed what the peer signals to
/// [`set_remote_credentials`](Self::set_remote_credentials),
/// [`add_remote_candidate`](Self::add_remote_candidate) and
/// [`end_of_remote_candidates`](Self::end_of_remote_candidates); on
/// `Selected`, hand [`transport`](Self::transport) to DTLS; on `PathLost`,
/// [`restart`](Self::restart) and signal the new credentials and candidates;
/// [`close`](Self::close) at hang-up.
pub struct Driver {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    transport: IceTransport,
    credentials: Credentials,
    local_addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Driver {
    /// Binds a UDP socket on `bind` and starts the agent on it. Host
    /// candidates are the bound address or, when `bind` is unspecified,
    /// every local non-loopback address: IPv4 for `0.0.0.0`, IPv4 and IPv6
    /// for `[::]` (one dual-stack socket; loopback when there is nothing
    /// else).
    pub async fn start(config: AgentConfig, bind: SocketAddr) -> io::Result<Self> {
        Self::start_with_hosts(config, bind, Vec::new()).await
    }

    /// As [`start`](Self::start), with explicit host candidate addresses
    /// (all must be reachable on the socket bound to `bind`).
    pub async fn start_with_hosts(
        config: AgentConfig,
        bind: SocketAddr,
        hosts: Vec<IpAddr>,
    ) -> io::Result<Self> {
        Self::start_with_tls(config, bind, hosts, None).await
    }

    /// As [`start_with_hosts`](Self::start_with_hosts), checking the
    /// certificates of TURN servers reached over TLS with `tls` (see
    /// [`crate::tls_config`]).
    pub async fn start_with_tls(
        config: AgentConfig,
        bind: SocketAddr,
        hosts: Vec<IpAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> io::Result<Self> {
        let (streams, stream_rx) = TurnStreams::new(&config.turn_servers, tls);
        let socket = Arc::new(UdpSocket::bind(bind).await?);
        let local_addr = socket.local_addr()?;
        let hosts = if !hosts.is_empty() {
            hosts
        } else if !local_addr.ip().is_unspecified() {
            vec![local_addr.ip()]
        } else {
            local_addresses(local_addr.is_ipv6())
        };
        let now = Instant::now();
        let mut agent = Agent::new(config, now).map_err(io::Error::other)?;
        let host_addrs: Vec<SocketAddr> = hosts
            .iter()
            .map(|ip| SocketAddr::new(*ip, local_addr.port()))
            .collect();
        for h in &host_addrs {
            agent.add_host(*h);
        }
        agent.gather(now);
        let credentials = agent.local_credentials().clone();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::channel(MEDIA_QUEUE);
        let (recycle_tx, recycle_rx) = mpsc::channel(MEDIA_QUEUE);
        let shared = Arc::new(Shared {
            socket: socket.clone(),
            streams,
            v6: local_addr.is_ipv6(),
            route: RwLock::new(None),
            media: Mutex::new(media_rx),
            recycle: recycle_tx,
        });
        let task = tokio::spawn(run(
            agent,
            socket,
            host_addrs,
            shared.clone(),
            (cmd_rx, stream_rx),
            ev_tx,
            media_tx,
            recycle_rx,
        ));
        Ok(Self {
            commands: cmd_tx,
            events: ev_rx,
            transport: IceTransport { shared },
            credentials,
            local_addr,
            task: Some(task),
        })
    }

    /// The local credentials the agent started with (after a restart, the
    /// new ones come in [`Event::Restarted`]).
    pub fn local_credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The socket's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The datagram transport for DTLS and SRTP.
    pub fn transport(&self) -> IceTransport {
        self.transport.clone()
    }

    /// Next event; `None` once the driver ended.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    async fn ask(
        &self,
        f: impl FnOnce(oneshot::Sender<Result<(), Error>>) -> Command,
    ) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(f(tx)).is_err() {
            return Err(Error::InvalidConfig("driver stopped"));
        }
        rx.await
            .unwrap_or(Err(Error::InvalidConfig("driver stopped")))
    }

    /// Sets the peer's credentials (new ones mean the peer restarted).
    pub async fn set_remote_credentials(&self, creds: Credentials) -> Result<(), Error> {
        self.ask(|tx| Command::RemoteCredentials(creds, tx)).await
    }

    /// Adds a remote candidate from its `candidate:` string (strict parse).
    pub async fn add_remote_candidate(&self, candidate: &str) -> Result<(), Error> {
        let c = Candidate::parse(candidate)?;
        self.ask(|tx| Command::RemoteCandidate(Box::new(c), tx))
            .await
    }

    /// The peer signalled end-of-candidates.
    pub fn end_of_remote_candidates(&self) {
        let _ = self.commands.send(Command::EndOfCandidates);
    }

    /// Restarts ICE; watch for [`Event::Restarted`] and the candidates that
    /// follow it.
    pub fn restart(&self) {
        let _ = self.commands.send(Command::Restart);
    }

    /// Stops the agent, deleting TURN allocations first.
    pub async fn close(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// An IPv4 destination as the socket wants it: v4-mapped on an IPv6
/// (dual-stack) socket.
fn on_socket(addr: SocketAddr, v6: bool) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if v6 => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
        other => other,
    }
}

/// A source address as the agent wants it: v4-mapped IPv6 back to IPv4.
fn from_socket(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut agent: Agent,
    socket: Arc<UdpSocket>,
    hosts: Vec<SocketAddr>,
    shared: Arc<Shared>,
    (mut commands, mut streams): (
        mpsc::UnboundedReceiver<Command>,
        mpsc::Receiver<StreamInput>,
    ),
    events: mpsc::UnboundedSender<Event>,
    media: mpsc::Sender<Vec<u8>>,
    mut recycle: mpsc::Receiver<Vec<u8>>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let far = Duration::from_secs(3600);
    let mut closing: Option<oneshot::Sender<()>> = None;
    let mut route = None;
    loop {
        flush(&mut agent, &socket, &shared, &events, &mut route).await;
        if let Some(done) = closing.take() {
            let _ = done.send(());
            return;
        }
        let deadline = agent.poll_timeout().unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                let src = from_socket(src);
                let dst = hosts
                    .iter()
                    .find(|h| h.is_ipv4() == src.is_ipv4())
                    .copied()
                    .unwrap_or(src);
                if let Received::Media(range) = agent.handle_input(Instant::now(), src, dst, &buf[..n]) {
                    let mut v = recycle.try_recv().unwrap_or_else(|_| Vec::with_capacity(MAX_DATAGRAM));
                    v.clear();
                    v.extend_from_slice(&buf[range]);
                    let _ = media.try_send(v);
                }
            }
            input = streams.recv() => {
                let now = Instant::now();
                let received = match input {
                    Some(StreamInput::Message { server, transport, message }) => {
                        match agent.handle_stream_input(now, server, transport, &message) {
                            Received::Media(range) => message.get(range).map(<[u8]>::to_vec),
                            _ => None,
                        }
                    }
                    Some(StreamInput::Closed { server, transport }) => {
                        shared.streams.forget(server, transport);
                        agent.stream_closed(now, server, transport);
                        None
                    }
                    None => None,
                };
                if let Some(v) = received {
                    let _ = media.try_send(v);
                }
            }
            cmd = commands.recv() => {
                let now = Instant::now();
                match cmd {
                    None => {
                        agent.close(now);
                        flush(&mut agent, &socket, &shared, &events, &mut route).await;
                        return;
                    }
                    Some(Command::RemoteCredentials(c, tx)) => {
                        let _ = tx.send(agent.set_remote_credentials(now, c));
                    }
                    Some(Command::RemoteCandidate(c, tx)) => {
                        let _ = tx.send(agent.add_remote_candidate(now, *c));
                    }
                    Some(Command::EndOfCandidates) => agent.remote_end_of_candidates(),
                    Some(Command::Restart) => agent.restart(now),
                    Some(Command::Close(tx)) => {
                        agent.close(now);
                        closing = Some(tx);
                    }
                }
                agent.handle_timeout(now);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                agent.handle_timeout(Instant::now());
            }
        }
    }
}

async fn flush(
    agent: &mut Agent,
    socket: &UdpSocket,
    shared: &Shared,
    events: &mpsc::UnboundedSender<Event>,
    cached: &mut Option<Route>,
) {
    while let Some(t) = agent.poll_transmit() {
        if t.transport.is_stream() {
            shared.streams.send_transmit(t);
            continue;
        }
        // Errors (unreachable peer, no route) are what checks are for.
        let _ = socket
            .send_to(&t.contents, on_socket(t.destination, shared.v6))
            .await;
    }
    // The route first: whoever reads `Selected` can send at once.
    let route = agent.route();
    if route != *cached {
        *cached = route;
        if let Ok(mut r) = shared.route.write() {
            *r = route;
        }
    }
    while let Some(e) = agent.poll_event() {
        let _ = events.send(e);
    }
}
