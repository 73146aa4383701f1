//! Shared set-up for the real-TLS loopback tests: a CA, a server on
//! 127.0.0.1 port 0 with its SQLite key directory in a temp dir, and
//! profiles/clients of the library.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use cryptic_signal::certs::{CertificateAuthority, Validity};
use cryptic_signal::client::{connect, Connection, Incoming, Receiver};
use cryptic_signal::profile::Profile;
use cryptic_signal::server::{Limits, Server, ServerConfig, ServerStats};
use cryptic_signal::wire::{ErrorCode, Message, UserId};
use tokio::sync::oneshot;

pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub ca: CertificateAuthority,
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub stats: ServerStats,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create("Test CA").unwrap();
        let data_dir = dir.path().join("server-data");
        Self::start_in(ca, dir, data_dir, limits).await
    }

    pub async fn start_in(
        ca: CertificateAuthority,
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        limits: Limits,
    ) -> Self {
        Self::start_configured(ca, dir, data_dir, |cfg| cfg.limits = limits).await
    }

    /// A server whose configuration `f` changes before it starts.
    pub async fn start_configured(
        ca: CertificateAuthority,
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        f: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let sc = ca
            .issue_server(
                &["localhost".to_string(), "127.0.0.1".to_string()],
                Validity::days_from_now(1),
            )
            .unwrap();
        let mut cfg = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            sc.cert_pem,
            sc.key_pem,
            ca.cert_pem().to_string(),
            data_dir.clone(),
        );
        f(&mut cfg);
        let server = Server::bind(cfg).await.unwrap();
        let addr = server.local_addr().unwrap();
        let stats = server.stats();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            ca,
            dir,
            data_dir,
            stats,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Writes a profile directory for `name`, issued by this server's CA.
    pub fn profile(&self, name: &str) -> Profile {
        let u = user(name);
        let cert = self
            .ca
            .issue_client(&u, Validity::days_from_now(1))
            .unwrap();
        Profile::write(
            &self.dir.path().join(format!("profile-{name}")),
            &u,
            &self.addr.to_string(),
            "localhost",
            self.ca.cert_pem(),
            &cert,
        )
        .unwrap()
    }

    pub async fn client(&self, name: &str) -> (Profile, Connection) {
        let p = self.profile(name);
        let c = connect(&p.client_config().unwrap()).await.unwrap();
        assert_eq!(c.user().as_str(), name);
        (p, c)
    }

    /// Graceful shutdown; returns the CA and temp dir for a restart.
    pub async fn stop(mut self) -> (CertificateAuthority, tempfile::TempDir, PathBuf) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }
        (self.ca, self.dir, self.data_dir)
    }
}

/// The next JSON message (fails after 5 s).
pub async fn next_msg(rx: &mut Receiver) -> Message {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out waiting for a message")
    {
        Ok(Incoming::Message(m)) => m,
        other => panic!("expected a JSON message, got {other:?}"),
    }
}

/// The next message or relay frame (fails after 5 s).
pub async fn next(rx: &mut Receiver) -> Incoming {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("timed out")
        .unwrap()
}

/// Asserts that nothing arrives within `ms` milliseconds.
pub async fn nothing_within(rx: &mut Receiver, ms: u64) {
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(ms), rx.recv()).await {
        panic!("expected silence, got {r:?}");
    }
}

/// The next message must be an error with `code`.
pub async fn expect_error(rx: &mut Receiver, code: ErrorCode) {
    match next_msg(rx).await {
        Message::Error(e) => assert_eq!(e.code, code, "{}", e.message),
        m => panic!("expected error {code:?}, got {m:?}"),
    }
}

use cryptic_signal::wire::{CallAnswer, CallId, CallInvite, Sealed};

/// A call invite with a dummy sealed payload (the server never opens it).
pub fn invite(id: CallId, from: &str, to: &str) -> Message {
    Message::CallInvite(CallInvite {
        call_id: id,
        from_user: user(from),
        to_user: user(to),
        encrypted_payload: Sealed::new(0, b"offer").unwrap(),
    })
}

/// A call answer with a dummy sealed payload.
pub fn answer(id: CallId, from: &str, to: &str) -> Message {
    Message::CallAnswer(CallAnswer {
        call_id: id,
        from_user: user(from),
        to_user: user(to),
        encrypted_payload: Sealed::new(1, b"answer").unwrap(),
    })
}

pub fn new_id() -> CallId {
    CallId::random(&mut rand::rng())
}

/// Reads everything `rx` gets until the connection ends; the first
/// `call_hangup` is reported.
pub fn drain_until_hangup(mut rx: Receiver) -> oneshot::Receiver<cryptic_signal::wire::CallHangup> {
    let (tx, got) = oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Ok(m) = rx.recv().await {
            if let Incoming::Message(Message::CallHangup(h)) = m {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(h);
                }
            }
        }
    });
    got
}
