//! The client connection: mTLS WebSocket to the server.
//!
//! [`connect`] returns a [`Connection`] once the server's `welcome` arrived.
//! Use [`Connection::publish_keys`] / [`Connection::fetch_keys`] for the key
//! directory, then [`Connection::split`] into a cloneable [`Sender`] (any
//! task; a background writer owns the socket and pings every
//! [`ClientConfig::keepalive`]) and a [`Receiver`] (one task), which fails
//! with [`Error::Unresponsive`] when the server stays silent (no pong)
//! for [`ClientConfig::dead_after`].
//!
//! Relay frames for an active call: [`Sender::send_relay`] /
//! [`Sender::try_send_relay`] send the compact binary form; they arrive as
//! [`Incoming::Relay`] with the frame as [`Bytes`] (no copy).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::certs::{certs_from_pem, key_from_pem, provider, root_store};
use crate::wire::{CallId, KeysBundle, KeysFetch, KeysPublish, Message, Ping, RelayFrame, UserId};
use crate::Error;

/// How to reach and authenticate to the server.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `host:port`.
    pub server: String,
    /// Name (DNS or IP) the server certificate must carry.
    pub server_name: String,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Client certificate and key, PEM (`None` connects without one: the server refuses).
    pub identity: Option<(String, String)>,
    /// Interval of keep-alive pings, sent whatever else is sent (the
    /// server answers each with a pong). Default 3 s.
    pub keepalive: Duration,
    /// The connection is taken as lost when nothing at all (not even a
    /// pong) came from the server for this long: the [`Receiver`] then
    /// fails with [`Error::Unresponsive`]. A TCP connection whose path died
    /// (the client's address went away) stays open for many minutes
    /// otherwise. Default 8 s.
    pub dead_after: Duration,
    /// Connect + handshake deadline. Default 10 s.
    pub connect_timeout: Duration,
    /// The local address to connect from (load generators spread their
    /// connections over 127.0.0.x); `None`: the system's choice.
    pub local_ip: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration with a client certificate.
    pub fn new(
        server: String,
        server_name: String,
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    ) -> Self {
        Self {
            server,
            server_name,
            ca_pem,
            identity: Some((cert_pem, key_pem)),
            keepalive: Duration::from_secs(3),
            dead_after: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            local_ip: None,
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Something received from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
// Boxing the message would add an allocation per control message to save a
// 264-byte move per relay frame, which costs less than the allocation.
#[allow(clippy::large_enum_variant)]
pub enum Incoming {
    /// A JSON message (never `pong`: keep-alives are absorbed).
    Message(Message),
    /// A binary relay frame.
    Relay {
        /// The call.
        call_id: CallId,
        /// The sender's counter.
        seq: u64,
        /// The datagram.
        frame: Bytes,
    },
}

/// The client's WebSocket limits: the server's messages are read up to
/// twice [`crate::wire::MAX_MESSAGE_BYTES`] (so an oversized one is an error,
/// not an allocation), with small buffers for a connection that mostly idles.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(2 * crate::wire::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(2 * crate::wire::MAX_MESSAGE_BYTES))
}

/// An open connection (before [`Connection::split`]).
#[derive(Debug)]
pub struct Connection {
    user: UserId,
    ice_servers: Vec<String>,
    sender: Sender,
    receiver: Receiver,
}

/// Connects, completes TLS (with the client certificate) and the WebSocket
/// upgrade, and waits for `welcome`. A server that refuses the certificate
/// makes this fail.
pub async fn connect(config: &ClientConfig) -> Result<Connection, Error> {
    tokio::time::timeout(config.connect_timeout, connect_inner(config))
        .await
        .map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
}

async fn connect_inner(config: &ClientConfig) -> Result<Connection, Error> {
    let tls_err = |e: &dyn std::fmt::Display| Error::Tls(e.to_string().into());
    let roots = root_store(&config.ca_pem)?;
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_err(&e))?
        .with_root_certificates(roots);
    let tls = match &config.identity {
        Some((c, k)) => b
            .with_client_auth_cert(certs_from_pem(c)?, key_from_pem(k)?)
            .map_err(|e| tls_err(&e))?,
        None => b.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from(config.server_name.clone())
        .map_err(|e| tls_err(&e))?;
    let tcp = match config.local_ip {
        None => TcpStream::connect(&config.server).await?,
        Some(ip) => {
            let to = tokio::net::lookup_host(&config.server)
                .await?
                .find(|a| a.is_ipv4() == ip.is_ipv4())
                .ok_or_else(|| Error::Io(std::io::ErrorKind::AddrNotAvailable.into()))?;
            let s = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            s.bind(std::net::SocketAddr::new(ip, 0))?;
            s.connect(to).await?
        }
    };
    let _ = tcp.set_nodelay(true);
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await?;
    let host = if config.server_name.contains(':') {
        format!("[{}]", config.server_name)
    } else {
        config.server_name.clone()
    };
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("wss://{host}/"),
        tls,
        Some(ws_config()),
    )
    .await
    .map_err(|e| Error::Tls(crate::Cause::because("websocket upgrade failed", e)))?;
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(writer(sink, rx, config.keepalive));
    let sender = Sender {
        tx,
        ca_pem: Arc::from(config.ca_pem.as_str()),
    };
    let mut receiver = Receiver {
        stream,
        pending: VecDeque::new(),
        dead_after: config.dead_after.max(config.keepalive),
        heard: tokio::time::Instant::now(),
    };
    let (user, ice_servers) = match receiver.recv_raw().await? {
        Incoming::Message(Message::Welcome(w)) => (w.user, w.ice_servers),
        Incoming::Message(Message::Error(e)) => {
            return Err(Error::Server {
                code: e.code,
                message: e.message,
            })
        }
        _ => return Err(Error::Protocol("expected welcome".into())),
    };
    Ok(Connection {
        user,
        ice_servers,
        sender,
        receiver,
    })
}

async fn writer(
    mut sink: SplitSink<Ws, WsMessage>,
    mut rx: mpsc::Receiver<WsMessage>,
    keepalive: Duration,
) {
    let mut nonce = 0u64;
    // Pings on a fixed clock, busy or not: the receiver counts on the
    // pongs to know the connection is alive.
    // (A zero period would make the interval panic.)
    let keepalive = keepalive.max(Duration::from_millis(100));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = ping.tick() => {
                nonce += 1;
                WsMessage::text(Message::Ping(Ping { nonce }).to_json())
            }
        };
        let closing = matches!(first, WsMessage::Close(_));
        if sink.feed(first).await.is_err() {
            break;
        }
        let mut n = 0;
        while n < 64 {
            let Ok(m) = rx.try_recv() else { break };
            if sink.feed(m).await.is_err() {
                return;
            }
            n += 1;
        }
        if sink.flush().await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

impl Connection {
    /// Our user name, as the server read it from our certificate.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// STUN/TURN server URIs advertised by the server in `welcome`.
    pub fn ice_servers(&self) -> &[String] {
        &self.ice_servers
    }

    /// A sender handle.
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Splits into a sender and a receiver.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    /// Sends a message.
    pub async fn send(&self, m: &Message) -> Result<(), Error> {
        self.sender.send(m).await
    }

    /// Receives the next message or relay frame.
    pub async fn recv(&mut self) -> Result<Incoming, Error> {
        self.receiver.recv().await
    }

    async fn request(&mut self, m: &Message, want: fn(&Message) -> bool) -> Result<Message, Error> {
        self.sender.send(m).await?;
        let mut held = Vec::new();
        let r = loop {
            match self.receiver.recv_raw().await {
                Ok(Incoming::Message(m)) if want(&m) => break Ok(m),
                Ok(Incoming::Message(Message::Error(e))) if e.call_id.is_none() => {
                    break Err(Error::Server {
                        code: e.code,
                        message: e.message,
                    })
                }
                Ok(other) => held.push(other),
                Err(e) => break Err(e),
            }
        };
        for h in held.into_iter().rev() {
            self.receiver.pending.push_front(h);
        }
        r
    }

    /// Publishes keys; returns the server's count of unclaimed one-time keys.
    pub async fn publish_keys(&mut self, keys: KeysPublish) -> Result<u32, Error> {
        match self
            .request(&Message::KeysPublish(keys), |m| {
                matches!(m, Message::KeysPublished(_))
            })
            .await?
        {
            Message::KeysPublished(p) => Ok(p.one_time_key_count),
            _ => Err(Error::Protocol("unexpected answer".into())),
        }
    }

    /// Fetches `user`'s key bundle (claims one of their one-time keys).
    pub async fn fetch_keys(&mut self, user: &UserId) -> Result<KeysBundle, Error> {
        let m = Message::KeysFetch(KeysFetch { user: user.clone() });
        let u = user.clone();
        let r = self
            .request(&m, |m| matches!(m, Message::KeysBundle(_)))
            .await?;
        match r {
            Message::KeysBundle(b) if b.user == u => Ok(b),
            _ => Err(Error::Protocol("unexpected answer".into())),
        }
    }
}

/// Sends messages; cheap to clone.
#[derive(Clone, Debug)]
pub struct Sender {
    tx: mpsc::Sender<WsMessage>,
    /// The CA (PEM) the server's certificate chains to.
    ca_pem: Arc<str>,
}

impl Sender {
    /// The CA certificates (PEM) the signaling server's certificate was
    /// checked against: a `turns:` server of the same deployment has its
    /// certificate from the same CA.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Sends a JSON message.
    pub async fn send(&self, m: &Message) -> Result<(), Error> {
        self.tx
            .send(WsMessage::text(m.to_json()))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Sends raw text as is (for tests of the server's parser).
    #[doc(hidden)]
    pub async fn send_raw_text(&self, t: String) -> Result<(), Error> {
        self.tx
            .send(WsMessage::text(t))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Sends raw bytes as a binary frame (for tests of the server's parser).
    #[doc(hidden)]
    pub async fn send_raw_binary(&self, b: Vec<u8>) -> Result<(), Error> {
        self.tx
            .send(WsMessage::Binary(b.into()))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Sends a relay frame (binary form), waiting for queue space.
    pub async fn send_relay(&self, call_id: CallId, seq: u64, frame: &[u8]) -> Result<(), Error> {
        let b = RelayFrame {
            call_id,
            seq,
            frame,
        }
        .to_vec();
        self.tx
            .send(WsMessage::Binary(b.into()))
            .await
            .map_err(|_| Error::Closed)
    }

    /// Sends a relay frame unless the queue is full (then the frame is
    /// dropped, like a datagram, and `Ok(false)` returned).
    pub fn try_send_relay(&self, call_id: CallId, seq: u64, frame: &[u8]) -> Result<bool, Error> {
        let b = RelayFrame {
            call_id,
            seq,
            frame,
        }
        .to_vec();
        match self.tx.try_send(WsMessage::Binary(b.into())) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed),
        }
    }

    /// Closes the connection (the server then hangs up our calls).
    pub async fn close(&self) {
        let _ = self.tx.send(WsMessage::Close(None)).await;
    }
}

/// Receives messages; owned by one task.
#[derive(Debug)]
pub struct Receiver {
    stream: SplitStream<Ws>,
    pending: VecDeque<Incoming>,
    /// Silence from the server this long means the connection is lost.
    dead_after: Duration,
    /// When the last frame came (a deadline that survives a cancelled
    /// `recv`, as in a `select!` loop).
    heard: tokio::time::Instant,
}

impl Receiver {
    /// The next message or relay frame; [`Error::Closed`] when the
    /// connection ends, [`Error::Unresponsive`] when the server sent
    /// nothing, not even a pong, for [`ClientConfig::dead_after`].
    pub async fn recv(&mut self) -> Result<Incoming, Error> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(m);
        }
        self.recv_raw().await
    }

    async fn recv_raw(&mut self) -> Result<Incoming, Error> {
        loop {
            // Any frame (a pong too) proves the connection alive.
            // A deadline past the clock's range is none.
            let far = self.heard + Duration::from_secs(86_400 * 365);
            let deadline = self.heard.checked_add(self.dead_after).unwrap_or(far);
            let m = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err(Error::Unresponsive(self.dead_after)),
                Ok(None | Some(Err(_))) => return Err(Error::Closed),
                Ok(Some(Ok(m))) => m,
            };
            self.heard = tokio::time::Instant::now();
            match m {
                WsMessage::Text(t) => match Message::parse(t.as_str()) {
                    Ok(Message::Pong(_)) => continue,
                    Ok(m) => return Ok(Incoming::Message(m)),
                    Err(e) => {
                        return Err(Error::Protocol(format!("server sent a bad message: {e}")))
                    }
                },
                WsMessage::Binary(b) => {
                    let (call_id, seq) = match RelayFrame::parse(&b) {
                        Ok(f) => (f.call_id, f.seq),
                        Err(e) => {
                            return Err(Error::Protocol(format!("server sent a bad frame: {e}")))
                        }
                    };
                    return Ok(Incoming::Relay {
                        call_id,
                        seq,
                        frame: b.slice(crate::wire::RELAY_HEADER_LEN..),
                    });
                }
                WsMessage::Close(_) => return Err(Error::Closed),
                _ => continue,
            }
        }
    }
}
