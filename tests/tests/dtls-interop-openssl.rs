//! DTLS-SRTP against a peer nobody here wrote: OpenSSL's command line on
//! loopback UDP, in both roles, each side with its own self-signed ECDSA
//! P-256 certificate. The keying material OpenSSL prints must be the one
//! our SRTP contexts use, our side must verify OpenSSL's fingerprint, and
//! the certificate OpenSSL received must have our fingerprint.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cryptic_dtls_srtp::handshake::{
    handshake, HandshakeConfig, Identity, Role, SrtpKeys, UdpTransport,
};
use cryptic_dtls_srtp::rtp::RtpHeader;
use cryptic_dtls_srtp::srtp::{Config, MasterKey, Profile, SrtpContext};
use cryptic_dtls_srtp::{Error, Fingerprint};

fn openssl_available() -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            cryptic_tests::skip(
                "the `openssl` command is not installed (scripts/setup installs it)",
            );
            false
        }
    }
}

/// A temporary directory (removed when dropped) and its path.
struct TempDir(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = cryptic_tests::temp_dir(tag);
        TempDir(dir.path().to_path_buf(), dir)
    }
}

/// An OpenSSL peer's certificate and key files and their fingerprint.
struct OpensslPeer {
    cert: PathBuf,
    key: PathBuf,
    fingerprint: Fingerprint,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `openssl x509 -fingerprint -sha256` says `sha256 Fingerprint=AB:CD:...`.
fn fingerprint_of_pem(pem: &Path) -> Fingerprint {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem));
    let hex = out.trim().split_once('=').unwrap().1;
    format!("sha-256 {hex}").parse().unwrap()
}

fn openssl_peer(dir: &Path) -> OpensslPeer {
    let cert = dir.join("peer.crt");
    let key = dir.join("peer.key");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=openssl-peer",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null()));
    let fingerprint = fingerprint_of_pem(&cert);
    OpensslPeer {
        cert,
        key,
        fingerprint,
    }
}

/// A running `openssl s_server`/`s_client` (the shared test spawner
/// underneath; told `Q` and killed when dropped).
struct Openssl {
    proc: cryptic_tests::Proc,
}

impl Openssl {
    fn spawn(args: &[String]) -> Self {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let how = cryptic_tests::Spawn {
            quit_line: Some("Q"),
            ..cryptic_tests::Spawn::default()
        };
        Openssl {
            proc: cryptic_tests::Proc::start_with("openssl", "openssl", &args, how),
        }
    }

    /// Waits (at most 15 s) for a line satisfying `pred` and returns it.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.proc.wait_until(what, Duration::from_secs(15), pred)
    }

    /// The PEM certificate printed after the line `heading`.
    fn certificate_after(&self, heading: &str) -> String {
        let start = self
            .proc
            .seen
            .iter()
            .position(|l| l == heading)
            .unwrap_or_else(|| {
                panic!(
                    "no {heading:?} in openssl output:\n{}",
                    self.proc.seen.join("\n")
                )
            });
        let mut pem = String::new();
        for line in &self.proc.seen[start + 1..] {
            pem.push_str(line);
            pem.push('\n');
            if line.starts_with("-----END CERTIFICATE") {
                break;
            }
        }
        pem
    }
}

fn srtp_args(role: &str, peer: &OpensslPeer, addr: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![role.into(), "-dtls1_2".into()];
    if role == "s_server" {
        args.extend(["-accept".into(), addr.into(), "-naccept".into(), "1".into()]);
        args.extend(["-verify".into(), "1".into()]);
    } else {
        args.extend(["-connect".into(), addr.into()]);
    }
    args.extend(["-cert".into(), peer.cert.display().to_string()]);
    args.extend(["-key".into(), peer.key.display().to_string()]);
    args.extend(["-use_srtp".into(), "SRTP_AEAD_AES_128_GCM".into()]);
    args.extend(["-keymatexport".into(), "EXTRACTOR-dtls_srtp".into()]);
    args.extend(["-keymatexportlen".into(), "56".into()]);
    args
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Checks that two master keys are the same by sealing with one and
/// opening with the other.
fn assert_same_key(ours: &MasterKey, theirs: &MasterKey) {
    let mut tx = SrtpContext::new(ours, Config::default()).unwrap();
    let mut rx = SrtpContext::new(theirs, Config::default()).unwrap();
    let mut plain = [0u8; 64];
    let n = RtpHeader::new(111, 1, 960, 5)
        .write_packet(b"same key", 0, &mut plain)
        .unwrap();
    let mut wire = [0u8; 128];
    let m = tx.protect_rtp(&plain[..n], &mut wire).unwrap();
    let mut out = [0u8; 128];
    assert_eq!(rx.unprotect_rtp(&wire[..m], &mut out).unwrap(), n);
}

fn check_keys(openssl: &mut Openssl, role: Role, ours: &SrtpKeys) {
    let line = openssl.wait_for("the keying material", |l| l.contains("Keying material: "));
    let material = hex(line.trim().trim_start_matches("Keying material: "));
    assert_eq!(material.len(), 56);
    let theirs = SrtpKeys::from_exported(Profile::AeadAes128Gcm, role, &material).unwrap();
    assert_same_key(&ours.local, &theirs.local);
    assert_same_key(&ours.remote, &theirs.remote);
}

fn fingerprint_of_printed(openssl: &Openssl, heading: &str, dir: &Path) -> Fingerprint {
    let pem = dir.join("printed.crt");
    std::fs::write(&pem, openssl.certificate_after(heading)).unwrap();
    fingerprint_of_pem(&pem)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_completes_dtls_srtp_with_openssl_s_server_and_agrees_on_keys() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new("dtls-s-server");
    let peer = openssl_peer(&dir.0);
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Openssl::spawn(&srtp_args("s_server", &peer, &addr));
    server.wait_for("ACCEPT", |l| l == "ACCEPT");

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(&addr).await.unwrap();
    let transport = Arc::new(UdpTransport::new(socket));
    let me = Identity::generate().unwrap();
    let session = handshake(
        transport,
        &me,
        peer.fingerprint,
        HandshakeConfig::new(Role::Client),
    )
    .await
    .unwrap();
    assert_eq!(session.peer_fingerprint(), peer.fingerprint);
    server.wait_for("the SRTP profile", |l| {
        l.contains("SRTP Extension negotiated, profile=SRTP_AEAD_AES_128_GCM")
    });
    check_keys(&mut server, Role::Client, session.srtp_keys());
    assert_eq!(
        fingerprint_of_printed(&server, "Client certificate", &dir.0),
        me.fingerprint(),
        "OpenSSL received a certificate other than ours"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_completes_dtls_srtp_with_our_server_and_agrees_on_keys() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new("dtls-s-client");
    let peer = openssl_peer(&dir.0);
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let mut client = Openssl::spawn(&srtp_args("s_client", &peer, &addr));

    let mut first = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(15), socket.recv_from(&mut first))
        .await
        .expect("s_client sent nothing")
        .unwrap();
    first.truncate(n);
    socket.connect(from).await.unwrap();
    let transport = Arc::new(UdpTransport::with_first_datagram(socket, first));
    let me = Identity::generate().unwrap();
    let session = handshake(
        transport,
        &me,
        peer.fingerprint,
        HandshakeConfig::new(Role::Server),
    )
    .await
    .unwrap();
    assert_eq!(session.peer_fingerprint(), peer.fingerprint);
    client.wait_for("the SRTP profile", |l| {
        l.contains("SRTP Extension negotiated, profile=SRTP_AEAD_AES_128_GCM")
    });
    check_keys(&mut client, Role::Server, session.srtp_keys());
    assert_eq!(
        fingerprint_of_printed(&client, "Server certificate", &dir.0),
        me.fingerprint(),
        "OpenSSL received a certificate other than ours"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openssl_peer_whose_fingerprint_was_not_signaled_is_refused() {
    if !openssl_available() {
        return;
    }
    let dir = TempDir::new("dtls-wrong-fp");
    let peer = openssl_peer(&dir.0);
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Openssl::spawn(&srtp_args("s_server", &peer, &addr));
    server.wait_for("ACCEPT", |l| l == "ACCEPT");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(&addr).await.unwrap();
    let transport = Arc::new(UdpTransport::new(socket));
    let me = Identity::generate().unwrap();
    let someone_else = Identity::generate().unwrap().fingerprint();
    let result = handshake(
        transport,
        &me,
        someone_else,
        HandshakeConfig::new(Role::Client),
    )
    .await;
    assert_eq!(result.unwrap_err(), Error::FingerprintMismatch);
}
