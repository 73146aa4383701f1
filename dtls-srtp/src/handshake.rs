//! The DTLS-SRTP handshake (RFC 5764) that turns two end-to-end verified
//! fingerprints into SRTP master keys.
//!
//! ```text
//!  signaling (end to end): my fingerprint ->        <- peer's fingerprint
//!  ICE socket / server relay / test pipe:  [ DatagramTransport ]
//!                       |
//!  handshake(transport, identity, expected peer fingerprint, config)
//!                       |
//!  DtlsSession -> SrtpKeys { local, remote } -> two SrtpContexts
//! ```
//!
//! * Every call gets a fresh [`Identity`]: an ECDSA P-256 self-signed
//!   certificate made with rcgen, dropped with the call (forward secrecy
//!   comes from DTLS's ephemeral ECDHE; the certificate only authenticates).
//! * The handshake is DTLS 1.2 by the `dtls` crate, over any
//!   [`DatagramTransport`]. It offers `use_srtp` with SRTP_AEAD_AES_128_GCM
//!   only, requires a certificate from the peer in both roles, and accepts
//!   the peer's certificate **only** if its SHA-256 fingerprint equals the
//!   one received end to end. A mismatch fails with
//!   [`Error::FingerprintMismatch`] before any key is exported.
//! * Keys: the exporter (RFC 5705) with label `EXTRACTOR-dtls_srtp` gives
//!   `client key | server key | client salt | server salt` (RFC 5764
//!   section 4.2): 16+16+12+12 bytes for AEAD_AES_128_GCM. When both users
//!   chose [`Profile::CrypticChaCha20Poly1305`] in signaling, the same
//!   handshake exports 88 bytes with the label [`CHACHA_EXPORTER_LABEL`] and
//!   splits them the same way (32+32+12+12). The DTLS role decides which half
//!   is ours: the client sends with the client key.
//!
//! # Who is client
//!
//! The role is an input decided by signaling, never negotiated on the wire.
//! Cryptic's rule: **the caller (who sent `call_invite`) is the DTLS server
//! and the callee (who sent `call_answer`) is the DTLS client**. The callee
//! learns the caller's candidates and fingerprint first, so it can start the
//! handshake as soon as a path exists; the caller is waiting anyway.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::dtls::config::{ClientAuthType, Config as DtlsConfig, ExtendedMasterSecretType};
use ::dtls::conn::DTLSConn;
use ::dtls::crypto::{Certificate, CryptoPrivateKey};
use ::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use async_trait::async_trait;
use tokio::sync::watch;
use webrtc_util::KeyingMaterialExporter;

use crate::error::Error;
use crate::fingerprint::Fingerprint;
use crate::srtp::{Config as SrtpConfig, MasterKey, Profile, SrtpContext};

/// The RFC 5764 exporter label for SRTP keys.
pub const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// The exporter label of the Cryptic ChaCha20-Poly1305 profile's keys.
pub const CHACHA_EXPORTER_LABEL: &str = "EXTRACTOR-cryptic-srtp-chacha20-poly1305-v1";

/// A datagram path to the peer: the ICE socket's selected pair, the
/// signaling server's relay, or an in-memory pipe in tests.
///
/// `recv` returns one whole datagram per call. The DTLS layer only ever
/// sees DTLS records: the driver that owns the socket passes it the
/// datagrams whose first byte is 20 to 63 (RFC 7983).
#[async_trait]
pub trait DatagramTransport: Send + Sync + 'static {
    /// Sends one datagram to the peer.
    async fn send(&self, datagram: &[u8]) -> io::Result<()>;
    /// Receives one datagram from the peer into `buf`, returning its length.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
}

/// Which side of the DTLS handshake we play (see the module docs for the
/// rule the client follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Sends the ClientHello; the callee.
    Client,
    /// Answers it; the caller.
    Server,
}

/// Settings of a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeConfig {
    /// Our side of the handshake.
    pub role: Role,
    /// The SRTP profile both users chose in signaling.
    pub profile: Profile,
    /// Give up after this long without a completed handshake. Default 10 s.
    pub timeout: Duration,
    /// Retransmit an unanswered flight after this long. Default 400 ms.
    pub retransmit_interval: Duration,
    /// Largest DTLS datagram we send. Default 1200 bytes.
    pub mtu: usize,
}

impl HandshakeConfig {
    /// Defaults for the given role: AEAD_AES_128_GCM, 10 s timeout.
    pub fn new(role: Role) -> Self {
        HandshakeConfig {
            role,
            profile: Profile::AeadAes128Gcm,
            timeout: Duration::from_secs(10),
            retransmit_interval: Duration::from_millis(400),
            mtu: 1200,
        }
    }

    /// The same with another SRTP profile.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// The same with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same with another retransmission interval.
    pub fn with_retransmit_interval(mut self, interval: Duration) -> Self {
        self.retransmit_interval = interval;
        self
    }
}

/// A per-call DTLS identity: a fresh ECDSA P-256 self-signed certificate
/// and its fingerprint. Make one per call and drop it after the call.
#[derive(Clone)]
pub struct Identity {
    certificate: Certificate,
    fingerprint: Fingerprint,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a new key pair and self-signed certificate.
    pub fn generate() -> Result<Self, Error> {
        let cert_err = |e: rcgen::Error| Error::Certificate(e.to_string());
        let key_pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["cryptic-call".to_string()]).map_err(cert_err)?;
        // Valid for minutes around now: the certificate authenticates one
        // handshake (its fingerprint travels sealed), never anything later.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::minutes(15);
        let cert = params.self_signed(&key_pair).map_err(cert_err)?;
        let der = cert.der().to_owned();
        let private_key =
            CryptoPrivateKey::try_from(&key_pair).map_err(|e| Error::Certificate(e.to_string()))?;
        Ok(Identity {
            fingerprint: Fingerprint::of_der(&der),
            certificate: Certificate {
                certificate: vec![der],
                private_key,
            },
        })
    }

    /// The fingerprint to put in the sealed signaling payload.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The DER-encoded certificate.
    pub fn certificate_der(&self) -> &[u8] {
        self.certificate.certificate[0].as_ref()
    }
}

/// The SRTP master keys a handshake produced.
#[derive(Debug, Clone)]
pub struct SrtpKeys {
    /// The profile the keys are for.
    pub profile: Profile,
    /// Our sending key (the client write key when we are the client).
    pub local: MasterKey,
    /// The peer's sending key, for unprotecting what it sends.
    pub remote: MasterKey,
}

impl SrtpKeys {
    /// Splits exported keying material laid out as RFC 5764 section 4.2
    /// says: `client key | server key | client salt | server salt`.
    pub fn from_exported(profile: Profile, role: Role, material: &[u8]) -> Result<Self, Error> {
        let k = profile.master_key_len();
        let s = profile.master_salt_len();
        if material.len() != 2 * (k + s) {
            return Err(Error::BadKeyLength {
                expected: 2 * (k + s),
                got: material.len(),
            });
        }
        let client = MasterKey::new(profile, &material[..k], &material[2 * k..2 * k + s])?;
        let server = MasterKey::new(profile, &material[k..2 * k], &material[2 * k + s..])?;
        let (local, remote) = match role {
            Role::Client => (client, server),
            Role::Server => (server, client),
        };
        Ok(SrtpKeys {
            profile,
            local,
            remote,
        })
    }

    /// The two SRTP contexts of a call: `(outbound, inbound)`.
    pub fn contexts(&self, config: SrtpConfig) -> Result<(SrtpContext, SrtpContext), Error> {
        Ok((
            SrtpContext::new(&self.local, config)?,
            SrtpContext::new(&self.remote, config)?,
        ))
    }
}

/// A completed DTLS association. Keep it for the length of the call, so
/// that a peer that missed our last flight gets it again, and close it at
/// hang-up (which sends close_notify).
pub struct DtlsSession {
    conn: Arc<DTLSConn>,
    keys: SrtpKeys,
    exported: zeroize::Zeroizing<Vec<u8>>,
    peer: Fingerprint,
    closer: watch::Sender<bool>,
}

impl core::fmt::Debug for DtlsSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DtlsSession")
            .field("profile", &self.keys.profile)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl DtlsSession {
    /// The SRTP master keys.
    pub fn srtp_keys(&self) -> &SrtpKeys {
        &self.keys
    }

    /// The raw exporter output the keys were split from (56 bytes for
    /// AES-128-GCM, 88 for ChaCha20-Poly1305): for a caller that binds the
    /// keys to more than DTLS before use.
    pub fn exporter_output(&self) -> &[u8] {
        &self.exported
    }

    /// The verified fingerprint of the peer's certificate.
    pub fn peer_fingerprint(&self) -> Fingerprint {
        self.peer
    }

    /// Sends close_notify and stops the DTLS layer's reader.
    pub async fn close(self) {
        // The peer may already be gone; closing is best effort.
        let _ = self.conn.close().await;
        let _ = self.closer.send(true);
    }
}

impl Drop for DtlsSession {
    fn drop(&mut self) {
        let _ = self.closer.send(true);
    }
}

/// Adapts a [`DatagramTransport`] to the `dtls` crate's connection trait,
/// with a switch that makes a pending `recv` fail so that the DTLS reader
/// task ends when we give up.
struct TransportConn {
    transport: Arc<dyn DatagramTransport>,
    closed: watch::Receiver<bool>,
}

/// Addresses are meaningless on an abstract transport; the DTLS layer only
/// uses them for logging and the server name, which we set ourselves.
const PLACEHOLDER_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

#[async_trait]
impl webrtc_util::Conn for TransportConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        let mut closed = self.closed.clone();
        if *closed.borrow() {
            return Err(closed_error());
        }
        tokio::select! {
            r = self.transport.recv(buf) => r.map_err(webrtc_util::Error::from_std),
            _ = closed.wait_for(|c| *c) => Err(closed_error()),
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        Ok((n, PLACEHOLDER_ADDR))
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        if *self.closed.borrow() {
            return Err(closed_error());
        }
        self.transport
            .send(buf)
            .await
            .map(|()| buf.len())
            .map_err(webrtc_util::Error::from_std)
    }

    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> webrtc_util::Result<usize> {
        self.send(buf).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(PLACEHOLDER_ADDR)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(PLACEHOLDER_ADDR)
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

fn closed_error() -> webrtc_util::Error {
    webrtc_util::Error::from_std(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "DTLS session closed",
    ))
}

/// Runs the DTLS handshake over `transport` as `config.role`, presenting
/// `identity` and accepting only a peer whose certificate has the
/// fingerprint `expected_peer` (received end to end). On success the SRTP
/// keys for `config.profile` are in the returned session.
///
/// Fails with [`Error::FingerprintMismatch`] when the peer's certificate
/// is another one, [`Error::HandshakeTimeout`] when nothing completes
/// within `config.timeout`, [`Error::NoSrtpProfile`] when the peer did not
/// agree to SRTP_AEAD_AES_128_GCM, and [`Error::Handshake`] otherwise. On
/// every failure no key is released and the DTLS tasks stop.
pub async fn handshake(
    transport: Arc<dyn DatagramTransport>,
    identity: &Identity,
    expected_peer: Fingerprint,
    config: HandshakeConfig,
) -> Result<DtlsSession, Error> {
    let (closer, closed) = watch::channel(false);
    let conn = Arc::new(TransportConn { transport, closed });

    let mismatch = Arc::new(AtomicBool::new(false));
    let verify = {
        let expected = expected_peer;
        let mismatch = mismatch.clone();
        Arc::new(
            move |certs: &[Vec<u8>], _chains: &[rustls::pki_types::CertificateDer<'static>]| {
                match certs.first() {
                    Some(der) if expected.matches_der(der) => Ok(()),
                    _ => {
                        mismatch.store(true, Ordering::SeqCst);
                        Err(::dtls::Error::Other(
                            "peer certificate does not match the signaled fingerprint".into(),
                        ))
                    }
                }
            },
        )
    };
    let dtls_config = DtlsConfig {
        certificates: vec![identity.certificate.clone()],
        srtp_protection_profiles: vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
        client_auth: ClientAuthType::RequireAnyClientCert,
        extended_master_secret: ExtendedMasterSecretType::Require,
        flight_interval: config.retransmit_interval,
        // Self-signed certificates have no chain to verify: the fingerprint
        // check in `verify_peer_certificate` is the authentication.
        insecure_skip_verify: true,
        verify_peer_certificate: Some(verify),
        server_name: "cryptic-call".to_string(),
        mtu: config.mtu,
        ..Default::default()
    };

    let is_client = config.role == Role::Client;
    let outcome = tokio::time::timeout(
        config.timeout,
        DTLSConn::new(conn, dtls_config, is_client, None),
    )
    .await;
    let fail = |e: Error| {
        let _ = closer.send(true);
        Err(e)
    };
    let dtls_conn = match outcome {
        Err(_) => return fail(Error::HandshakeTimeout),
        Ok(Err(_)) if mismatch.load(Ordering::SeqCst) => return fail(Error::FingerprintMismatch),
        Ok(Err(e)) => return fail(Error::Handshake(e.to_string())),
        Ok(Ok(c)) => Arc::new(c),
    };

    // Belt and braces: check the certificate the handshake settled on.
    let state = dtls_conn.connection_state().await;
    let peer_ok = state
        .peer_certificates
        .first()
        .is_some_and(|der| expected_peer.matches_der(der));
    if !peer_ok || mismatch.load(Ordering::SeqCst) {
        let _ = dtls_conn.close().await;
        return fail(Error::FingerprintMismatch);
    }
    if dtls_conn.selected_srtpprotection_profile() != SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm {
        let _ = dtls_conn.close().await;
        return fail(Error::NoSrtpProfile);
    }
    let (label, len) = match config.profile {
        Profile::AeadAes128Gcm => (SRTP_EXPORTER_LABEL, 56),
        Profile::CrypticChaCha20Poly1305 => (CHACHA_EXPORTER_LABEL, 88),
    };
    let mut material = match state.export_keying_material(label, &[], len).await {
        Ok(m) => m,
        Err(e) => {
            let _ = dtls_conn.close().await;
            return fail(Error::Handshake(e.to_string()));
        }
    };
    let keys = SrtpKeys::from_exported(config.profile, config.role, &material);
    let exported = zeroize::Zeroizing::new(material.clone());
    zeroize::Zeroize::zeroize(&mut material);
    let keys = match keys {
        Ok(k) => k,
        Err(e) => {
            let _ = dtls_conn.close().await;
            return fail(e);
        }
    };
    Ok(DtlsSession {
        conn: dtls_conn,
        keys,
        exported,
        peer: expected_peer,
        closer,
    })
}

/// A UDP socket connected to the peer, as a [`DatagramTransport`]: for
/// direct tests, interop with other DTLS stacks and benchmarks. (In a call
/// the ICE driver provides the transport.)
#[derive(Debug)]
pub struct UdpTransport {
    socket: tokio::net::UdpSocket,
    first: std::sync::Mutex<Option<Vec<u8>>>,
}

impl UdpTransport {
    /// Wraps a socket already connected to the peer.
    pub fn new(socket: tokio::net::UdpSocket) -> Self {
        UdpTransport {
            socket,
            first: std::sync::Mutex::new(None),
        }
    }

    /// Wraps a socket that learnt its peer from `first`, the datagram it
    /// already received (a server accepting its first client): `first` is
    /// handed to the DTLS layer before anything else.
    pub fn with_first_datagram(socket: tokio::net::UdpSocket, first: Vec<u8>) -> Self {
        UdpTransport {
            socket,
            first: std::sync::Mutex::new(Some(first)),
        }
    }
}

#[async_trait]
impl DatagramTransport for UdpTransport {
    async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send(datagram).await.map(|_| ())
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let first = self
            .first
            .lock()
            .map_err(|_| io::Error::other("transport lock poisoned"))?
            .take();
        if let Some(d) = first {
            let n = d.len().min(buf.len());
            buf[..n].copy_from_slice(&d[..n]);
            return Ok(n);
        }
        self.socket.recv(buf).await
    }
}

/// An in-memory [`DatagramTransport`] pair with seeded impairment, for
/// tests, fuzzing and benchmarks of everything that runs over datagrams.
pub mod pipe {
    use std::io;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use tokio::sync::mpsc;

    use super::DatagramTransport;

    /// How one direction of a [`MemoryTransport`] pair damages traffic.
    #[derive(Debug, Clone, Copy, PartialEq)]
    #[non_exhaustive]
    pub struct Impairment {
        /// Probability that a datagram is dropped.
        pub loss: f64,
        /// Probability that a datagram is held back and delivered after the
        /// next one.
        pub reorder: f64,
        /// Seed of the random decisions.
        pub seed: u64,
    }

    impl Impairment {
        /// A perfect link.
        pub fn none() -> Self {
            Impairment {
                loss: 0.0,
                reorder: 0.0,
                seed: 0,
            }
        }

        /// A link losing `loss` and reordering `reorder` of datagrams.
        pub fn lossy(loss: f64, reorder: f64, seed: u64) -> Self {
            Impairment {
                loss,
                reorder,
                seed,
            }
        }
    }

    struct Sender {
        tx: mpsc::UnboundedSender<Vec<u8>>,
        impairment: Impairment,
        rng: StdRng,
        held: Option<Vec<u8>>,
    }

    /// One end of an in-memory datagram pipe.
    pub struct MemoryTransport {
        out: Mutex<Sender>,
        inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
        injector: mpsc::UnboundedSender<Vec<u8>>,
    }

    impl core::fmt::Debug for MemoryTransport {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("MemoryTransport").finish_non_exhaustive()
        }
    }

    impl MemoryTransport {
        /// Two connected ends; `a_to_b` damages what the first end sends,
        /// `b_to_a` what the second sends.
        pub fn pair(a_to_b: Impairment, b_to_a: Impairment) -> (Arc<Self>, Arc<Self>) {
            let (tx_a, rx_a) = mpsc::unbounded_channel();
            let (tx_b, rx_b) = mpsc::unbounded_channel();
            let end = |tx: mpsc::UnboundedSender<Vec<u8>>,
                       rx: mpsc::UnboundedReceiver<Vec<u8>>,
                       own: mpsc::UnboundedSender<Vec<u8>>,
                       imp: Impairment| {
                Arc::new(MemoryTransport {
                    out: Mutex::new(Sender {
                        tx,
                        impairment: imp,
                        rng: StdRng::seed_from_u64(imp.seed),
                        held: None,
                    }),
                    inbox: tokio::sync::Mutex::new(rx),
                    injector: own,
                })
            };
            (
                end(tx_b.clone(), rx_a, tx_a.clone(), a_to_b),
                end(tx_a, rx_b, tx_b, b_to_a),
            )
        }

        /// Delivers `datagram` to this end as if the peer had sent it
        /// (an attacker on the path, or a fuzzer).
        pub fn inject(&self, datagram: &[u8]) {
            // A closed inbox means this end is gone: nothing to deliver to.
            let _ = self.injector.send(datagram.to_vec());
        }
    }

    #[async_trait]
    impl DatagramTransport for MemoryTransport {
        async fn send(&self, datagram: &[u8]) -> io::Result<()> {
            let mut s = self
                .out
                .lock()
                .map_err(|_| io::Error::other("pipe lock poisoned"))?;
            let imp = s.impairment;
            if imp.loss > 0.0 && s.rng.random_bool(imp.loss.min(1.0)) {
                return Ok(());
            }
            let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "peer end dropped");
            if let Some(held) = s.held.take() {
                s.tx.send(datagram.to_vec()).map_err(|_| closed())?;
                s.tx.send(held).map_err(|_| closed())?;
            } else if imp.reorder > 0.0 && s.rng.random_bool(imp.reorder.min(1.0)) {
                s.held = Some(datagram.to_vec());
            } else {
                s.tx.send(datagram.to_vec()).map_err(|_| closed())?;
            }
            Ok(())
        }

        async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            let mut inbox = self.inbox.lock().await;
            match inbox.recv().await {
                Some(d) => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    Ok(n)
                }
                None => Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "peer end dropped",
                )),
            }
        }
    }
}
