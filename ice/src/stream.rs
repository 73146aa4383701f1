//! The tokio side of TURN over TCP and TLS: one connection per TURN server,
//! opened when the agent first sends to it, bytes split into messages by the
//! sans-IO [`StreamDecoder`].
//!
//! ```text
//!  Agent --Transmit{transport: Tcp|Tls}--> TurnStreams::send --> writer half --> TURN server
//!  Agent <--handle_stream_input / stream_closed-- StreamInput <-- StreamDecoder <-- reader half
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::agent::Transmit;
use crate::framing::StreamDecoder;
use crate::turn::{Transport, TurnServer};

/// Messages queued for one stream at most; more are dropped, as a full
/// socket buffer would drop datagrams.
const OUT_QUEUE: usize = 256;
/// Messages read from every stream and not yet taken, at most (the readers
/// wait: TCP pushes back on the server).
const IN_QUEUE: usize = 256;
/// How long opening a connection (TCP and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What arrived from a TURN server over a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamInput {
    /// One whole message: give it to
    /// [`Agent::handle_stream_input`](crate::Agent::handle_stream_input).
    Message {
        /// The TURN server.
        server: SocketAddr,
        /// TCP or TLS.
        transport: Transport,
        /// The message (STUN, or ChannelData with its padding).
        message: Vec<u8>,
    },
    /// The stream closed, broke its framing or could not be opened: tell
    /// [`Agent::stream_closed`](crate::Agent::stream_closed).
    Closed {
        /// The TURN server.
        server: SocketAddr,
        /// TCP or TLS.
        transport: Transport,
    },
}

/// The TCP and TLS connections to the TURN servers of one agent. Cheap to
/// clone; every clone shares the connections. Dropping the last clone
/// closes them once what was queued (a deallocation) is written.
#[derive(Clone)]
pub struct TurnStreams {
    inner: Arc<Inner>,
}

/// The writer queue of each open stream, by server and transport.
type Conns = HashMap<(SocketAddr, Transport), mpsc::Sender<Vec<u8>>>;

struct Inner {
    conns: Mutex<Conns>,
    names: HashMap<SocketAddr, String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    inbound: mpsc::Sender<StreamInput>,
}

impl std::fmt::Debug for TurnStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnStreams").finish_non_exhaustive()
    }
}

impl TurnStreams {
    /// Connections for `servers` (their TLS names are taken from them);
    /// `tls` checks the certificates of `turns:` servers (without it, TLS
    /// servers cannot be reached). Read what arrives from the receiver.
    pub fn new(
        servers: &[TurnServer],
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> (Self, mpsc::Receiver<StreamInput>) {
        let (tx, rx) = mpsc::channel(IN_QUEUE);
        let names = servers
            .iter()
            .filter_map(|s| Some((s.addr, s.server_name.clone()?)))
            .collect();
        let inner = Inner {
            conns: Mutex::new(HashMap::new()),
            names,
            tls,
            inbound: tx,
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// Sends one framed message to the TURN server at `server` over
    /// `transport`, opening the connection on first use. Never waits: a
    /// full queue drops the message. Nothing happens for UDP.
    pub fn send(&self, server: SocketAddr, transport: Transport, message: Vec<u8>) {
        if !transport.is_stream() {
            return;
        }
        let Ok(mut conns) = self.inner.conns.lock() else {
            return;
        };
        let tx = conns.entry((server, transport)).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(OUT_QUEUE);
            let name = self
                .inner
                .names
                .get(&server)
                .cloned()
                .unwrap_or_else(|| server.ip().to_string());
            tokio::spawn(run(
                server,
                transport,
                name,
                self.inner.tls.clone(),
                rx,
                self.inner.inbound.clone(),
            ));
            tx
        });
        if tx.try_send(message).is_err() {
            tracing::debug!("TURN stream queue full or closed: message dropped");
        }
    }

    /// Sends an agent's [`Transmit`] whose transport is a stream.
    pub fn send_transmit(&self, t: Transmit) {
        self.send(t.destination, t.transport, t.contents);
    }

    /// Forgets a closed stream: the next send opens a new one.
    pub fn forget(&self, server: SocketAddr, transport: Transport) {
        if let Ok(mut conns) = self.inner.conns.lock() {
            conns.remove(&(server, transport));
        }
    }
}

/// A rustls client configuration trusting the certificates in `ca_pem`
/// (PEM): for `turns:` servers whose certificate chains to them.
pub fn tls_config(ca_pem: &[u8]) -> io::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(c.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
    if roots.is_empty() {
        return Err(io::Error::other("no CA certificate in the PEM"));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn run(
    server: SocketAddr,
    transport: Transport,
    name: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    out: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<StreamInput>,
) {
    let r = connect_and_pump(server, transport, name, tls, out, &inbound).await;
    if let Err(e) = r {
        tracing::debug!(transport = transport.as_str(), "TURN stream: {e}");
    }
    let _ = inbound
        .send(StreamInput::Closed { server, transport })
        .await;
}

async fn connect_and_pump(
    server: SocketAddr,
    transport: Transport,
    name: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    out: mpsc::Receiver<Vec<u8>>,
    inbound: &mpsc::Sender<StreamInput>,
) -> io::Result<()> {
    let timeout = |e| io::Error::new(io::ErrorKind::TimedOut, e);
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
        .await
        .map_err(|_| timeout("TCP connect timed out"))??;
    tcp.set_nodelay(true)?;
    let tag = (server, transport);
    if transport != Transport::Tls {
        return pump(tcp, tag, out, inbound).await;
    }
    let tls = tls.ok_or_else(|| io::Error::other("no TLS configuration for a turns: server"))?;
    let name = rustls::pki_types::ServerName::try_from(name).map_err(io::Error::other)?;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| timeout("TLS handshake timed out"))??;
    pump(stream, tag, out, inbound).await
}

async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    (server, transport): (SocketAddr, Transport),
    mut out: mpsc::Receiver<Vec<u8>>,
    inbound: &mpsc::Sender<StreamInput>,
) -> io::Result<()> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut decoder = StreamDecoder::new();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            m = out.recv() => match m {
                Some(m) => {
                    writer.write_all(&m).await?;
                    // Whatever else is queued goes in the same flush.
                    while let Ok(m) = out.try_recv() {
                        writer.write_all(&m).await?;
                    }
                    writer.flush().await?;
                }
                None => {
                    let _ = writer.shutdown().await;
                    return Ok(());
                }
            },
            n = reader.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by the server"));
                }
                decoder.push(&buf[..n]).map_err(io::Error::other)?;
                while let Some(message) = decoder.next_message().map_err(io::Error::other)? {
                    let input = StreamInput::Message { server, transport, message: message.to_vec() };
                    if inbound.send(input).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}
