//! DTLS as the call session sees it: datagrams in, datagrams out, and at
//! the end keys and the peer's verified fingerprint.
//!
//! ```text
//!  CallSession --handle_packet(DTLS record)--> [ Dtls ] --poll_output--> Transmit(record)
//!                                                       \-> Connected { keys, peer } | Failed
//! ```
//!
//! [`Dtls`] is the sans-IO face. [`AsyncDtls`] puts the `dtls` crate's
//! asynchronous handshake ([`cryptic_dtls_srtp::handshake::handshake`])
//! behind it: the handshake runs as a tokio task reading from a queue that
//! [`Dtls::handle_packet`] fills and writing to a queue that
//! [`Dtls::poll_output`] drains. The driver that owns the session keeps the
//! adapter's [`DtlsWaker`] and turns the session's crank when it fires, so
//! the session itself never awaits.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use cryptic_dtls_srtp::handshake::{
    handshake, DatagramTransport, DtlsSession, HandshakeConfig, Identity, Role,
};
use cryptic_dtls_srtp::srtp::Profile;
use cryptic_dtls_srtp::{Error as DtlsError, Fingerprint};
use tokio::sync::{mpsc, Notify};
use zeroize::Zeroizing;

/// What a [`Dtls`] engine has for the session.
#[derive(Debug)]
#[non_exhaustive]
pub enum DtlsOutput {
    /// A DTLS record to send to the peer on the call's current path.
    Transmit(Vec<u8>),
    /// The handshake completed with a peer whose certificate has
    /// `peer_fingerprint` (already checked against the expected one).
    Connected {
        /// The DTLS-SRTP exporter output for the profile (RFC 5764 layout:
        /// client key, server key, client salt, server salt); the session
        /// binds it to the call key before splitting it.
        exported: Zeroizing<Vec<u8>>,
        /// The peer's verified fingerprint.
        peer_fingerprint: Fingerprint,
    },
    /// The handshake failed; no key was released.
    Failed(DtlsError),
}

/// A DTLS-SRTP endpoint driven without I/O.
///
/// # How to drive it
///
/// [`start`](Self::start) once a path to the peer exists; give every DTLS
/// record that arrives (first byte 20..=63) to
/// [`handle_packet`](Self::handle_packet); drain
/// [`poll_output`](Self::poll_output) after every input and whenever the
/// engine's timeout ([`poll_timeout`](Self::poll_timeout)) or its waker
/// fires; [`close`](Self::close) at hang-up.
pub trait Dtls: Send {
    /// The SHA-256 fingerprint of our per-call certificate (sent end to end).
    fn local_fingerprint(&self) -> Fingerprint;
    /// Starts the handshake as `role`, accepting only a peer whose
    /// certificate has the fingerprint `expected_peer`.
    fn start(&mut self, now: Instant, role: Role, profile: Profile, expected_peer: Fingerprint);
    /// One DTLS record from the peer.
    fn handle_packet(&mut self, now: Instant, datagram: &[u8]);
    /// Timers (retransmission, give-up).
    fn handle_timeout(&mut self, now: Instant);
    /// The next output, if any.
    fn poll_output(&mut self) -> Option<DtlsOutput>;
    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Ends the association (close_notify where the engine sends one).
    fn close(&mut self);
}

/// Wakes the driver when an [`AsyncDtls`] has output ready.
#[derive(Clone, Debug, Default)]
pub struct DtlsWaker(Arc<Notify>);

impl DtlsWaker {
    /// Resolves once output is ready (or was made ready since the last
    /// call).
    pub async fn ready(&self) {
        self.0.notified().await
    }
}

/// The `dtls` crate's handshake behind [`Dtls`], run as a tokio task.
/// Must be started inside a tokio runtime.
pub struct AsyncDtls {
    identity: Identity,
    waker: DtlsWaker,
    inbound: Option<mpsc::Sender<Vec<u8>>>,
    outbound: (
        mpsc::UnboundedSender<Vec<u8>>,
        mpsc::UnboundedReceiver<Vec<u8>>,
    ),
    result: Option<tokio::sync::oneshot::Receiver<Result<DtlsSession, DtlsError>>>,
    session: Option<DtlsSession>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for AsyncDtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncDtls")
            .field("fingerprint", &self.identity.fingerprint())
            .field("connected", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl AsyncDtls {
    /// An engine with a fresh per-call certificate.
    pub fn new() -> Result<Self, DtlsError> {
        Ok(Self {
            identity: Identity::generate()?,
            waker: DtlsWaker::default(),
            inbound: None,
            outbound: mpsc::unbounded_channel(),
            result: None,
            session: None,
            task: None,
        })
    }

    /// The handle the driver awaits to know that output is ready.
    pub fn waker(&self) -> DtlsWaker {
        self.waker.clone()
    }
}

/// The queues the handshake task reads and writes.
struct Queues {
    inbound: tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>,
    outbound: mpsc::UnboundedSender<Vec<u8>>,
    waker: DtlsWaker,
}

#[async_trait]
impl DatagramTransport for Queues {
    async fn send(&self, datagram: &[u8]) -> std::io::Result<()> {
        self.outbound
            .send(datagram.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        self.waker.0.notify_one();
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        let d = self
            .inbound
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        let n = d.len().min(buf.len());
        buf[..n].copy_from_slice(&d[..n]);
        Ok(n)
    }
}

impl Dtls for AsyncDtls {
    fn local_fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    fn start(&mut self, _now: Instant, role: Role, profile: Profile, expected_peer: Fingerprint) {
        if self.task.is_some() {
            return;
        }
        let (in_tx, in_rx) = mpsc::channel(64);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let queues = Arc::new(Queues {
            inbound: tokio::sync::Mutex::new(in_rx),
            outbound: self.outbound.0.clone(),
            waker: self.waker.clone(),
        });
        let identity = self.identity.clone();
        let waker = self.waker.clone();
        let config = HandshakeConfig::new(role).with_profile(profile);
        self.task = Some(tokio::spawn(async move {
            let r = handshake(queues, &identity, expected_peer, config).await;
            // The receiver is gone only when the call already ended.
            let _ = done_tx.send(r);
            waker.0.notify_one();
        }));
        self.inbound = Some(in_tx);
        self.result = Some(done_rx);
    }

    fn handle_packet(&mut self, _now: Instant, datagram: &[u8]) {
        if let Some(tx) = &self.inbound {
            // A full queue drops the record, as a full socket buffer would;
            // the peer retransmits.
            if tx.try_send(datagram.to_vec()).is_err() {
                tracing::debug!("DTLS inbound queue full: record dropped");
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_output(&mut self) -> Option<DtlsOutput> {
        if let Ok(d) = self.outbound.1.try_recv() {
            return Some(DtlsOutput::Transmit(d));
        }
        let rx = self.result.as_mut()?;
        match rx.try_recv() {
            Ok(Ok(session)) => {
                self.result = None;
                let out = DtlsOutput::Connected {
                    exported: Zeroizing::new(session.exporter_output().to_vec()),
                    peer_fingerprint: session.peer_fingerprint(),
                };
                self.session = Some(session);
                Some(out)
            }
            Ok(Err(e)) => {
                self.result = None;
                Some(DtlsOutput::Failed(e))
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                self.result = None;
                Some(DtlsOutput::Failed(DtlsError::Handshake(
                    "the handshake task stopped".into(),
                )))
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // The handshake task keeps its own timers.
        None
    }

    fn close(&mut self) {
        // Dropping the session stops its reader; the handshake task, if
        // still running, ends when its inbound queue closes.
        self.session = None;
        self.inbound = None;
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for AsyncDtls {
    fn drop(&mut self) {
        self.close();
    }
}
