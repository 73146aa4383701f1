#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! TURN over TCP and TLS against a real coturn on 127.0.0.1 (RFC 8656:
//! STUN and padded ChannelData framed on the stream, the relayed transport
//! still UDP): with coturn's UDP listeners off (`--no-udp`), relay-only
//! agents allocate over TCP or TLS and their media flows through the relay;
//! a `turns:` server whose certificate does not chain to our CA gives no
//! relay; relays reached over TCP or TLS rank below the one over UDP.

mod common;
#[path = "common/coturn.rs"]
mod coturn;
#[path = "common/signaling.rs"]
mod signaling;

use std::sync::Arc;
use std::time::Duration;

use cryptic_ice::{
    AgentConfig, Candidate, CandidateKind, Driver, PathKind, Role, Transport, TurnServer,
};

fn port(base: u16) -> u16 {
    base + (std::process::id() % 500) as u16
}

/// A test CA and a server certificate it signed for `localhost` and
/// 127.0.0.1, written as PEM files in `dir`; returns (CA PEM, cert path,
/// key path).
fn certificates(dir: &std::path::Path, ca_name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let (cert_path, key_path) = (dir.join("turn.crt"), dir.join("turn.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        ca_cert.pem(),
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// Two relay-only agents on `turn`, connected through it, exchange 50
/// datagrams each way (DTLS-like and SRTP-like first bytes).
async fn relay_only_call(turn: TurnServer, tls: Option<Arc<rustls::ClientConfig>>) {
    let cfg = |role| {
        AgentConfig::new(role)
            .with_turn_server(turn.clone())
            .with_relay_only(true)
    };
    let start = |role| {
        Driver::start_with_tls(
            cfg(role),
            "127.0.0.1:0".parse().unwrap(),
            vec![],
            tls.clone(),
        )
    };
    let mut a = start(Role::Controlling).await.unwrap();
    let mut b = start(Role::Controlled).await.unwrap();
    let ca = signaling::gather(&mut a, Duration::from_secs(10)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(10)).await;
    assert_eq!((ca.len(), cb.len()), (1, 1), "one relayed candidate each");
    for c in ca.iter().chain(&cb) {
        assert_eq!(Candidate::parse(c).unwrap().kind(), CandidateKind::Relayed);
    }
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    let (sa, sb, _) = signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .expect("both agents select a pair through the relay");
    assert_eq!((sa.kind, sb.kind), (PathKind::Relay, PathKind::Relay));
    let (ta, tb) = (a.transport(), b.transport());
    let mut buf = [0u8; 1500];
    for i in 0..50u8 {
        // Odd lengths: ChannelData on the stream is padded, the payload not.
        let dtls = [23, 254, 253, i, 7];
        ta.send(&dtls).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), tb.recv(&mut buf))
            .await
            .expect("relayed datagram arrives")
            .unwrap();
        assert_eq!(&buf[..n], &dtls);
        let srtp = [0x80, 0x60, 0, i, 1, 2, 3];
        tb.send(&srtp).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), ta.recv(&mut buf))
            .await
            .expect("relayed datagram arrives")
            .unwrap();
        assert_eq!(&buf[..n], &srtp);
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_agents_allocate_over_tcp_when_the_server_has_no_udp_listener() {
    if !coturn::available() {
        return;
    }
    let server = coturn::start_ready(
        &[],
        "127.0.0.1",
        port(37000),
        (49231, 49260),
        &["--allow-loopback-peers", "--no-udp"],
        coturn::Listener::Tcp,
    );
    let turn =
        TurnServer::new(server.addr, coturn::USER, coturn::PASS).with_transport(Transport::Tcp);
    relay_only_call(turn, None).await;
    let five_s = Duration::from_secs(5);
    assert!(server.wait_log("CHANNEL_BIND processed, success", 2, five_s));
    assert!(
        server.wait_log("REFRESH processed, success", 2, five_s),
        "both allocations deleted over their streams"
    );
    // coturn has no UDP listener: the allocations were made over TCP.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_agents_allocate_over_tls_with_a_certificate_from_our_ca() {
    if !coturn::available() {
        return;
    }
    let dir = cryptic_tests::temp_dir("ice-turns");
    let (ca_pem, cert, key) = certificates(dir.path(), "cryptic test CA");
    let plain = port(38000);
    let tls_port = plain + 500;
    let tls_arg = format!("--tls-listening-port={tls_port}");
    let (cert_arg, key_arg) = (format!("--cert={cert}"), format!("--pkey={key}"));
    let server = coturn::start_ready(
        &[],
        "127.0.0.1",
        plain,
        (49261, 49290),
        &[
            "--allow-loopback-peers",
            "--no-udp",
            &tls_arg,
            &cert_arg,
            &key_arg,
        ],
        coturn::Listener::Tls,
    );
    let tls_addr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let turn = TurnServer::new(tls_addr, coturn::USER, coturn::PASS)
        .with_transport(Transport::Tls)
        .with_server_name("localhost");
    let config = cryptic_ice::tls_config(ca_pem.as_bytes()).unwrap();
    relay_only_call(turn, Some(config)).await;
    let five_s = Duration::from_secs(5);
    assert!(server.wait_log("CHANNEL_BIND processed, success", 2, five_s));
    // That TLS (not plain TCP, which coturn also takes on its TLS port)
    // carried them: the same set-up with a certificate from another CA
    // gets no relay (the next test).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turns_server_whose_certificate_is_not_from_our_ca_gives_no_relay() {
    if !coturn::available() {
        return;
    }
    let dir = cryptic_tests::temp_dir("ice-turns-bad");
    let (_, cert, key) = certificates(dir.path(), "someone else's CA");
    let elsewhere = dir.path().join("ours");
    std::fs::create_dir(&elsewhere).unwrap();
    let (ours, _, _) = certificates(&elsewhere, "cryptic test CA");
    let plain = port(39000);
    let tls_port = plain + 500;
    let tls_arg = format!("--tls-listening-port={tls_port}");
    let (cert_arg, key_arg) = (format!("--cert={cert}"), format!("--pkey={key}"));
    let _server = coturn::start_ready(
        &[],
        "127.0.0.1",
        plain,
        (49291, 49299),
        &["--no-udp", &tls_arg, &cert_arg, &key_arg],
        coturn::Listener::Tls,
    );
    let turn = TurnServer::new(
        format!("127.0.0.1:{tls_port}").parse().unwrap(),
        coturn::USER,
        coturn::PASS,
    )
    .with_transport(Transport::Tls)
    .with_server_name("localhost");
    let cfg = AgentConfig::new(Role::Controlling)
        .with_turn_server(turn)
        .with_relay_only(true);
    let config = cryptic_ice::tls_config(ours.as_bytes()).unwrap();
    let mut a = Driver::start_with_tls(cfg, "127.0.0.1:0".parse().unwrap(), vec![], Some(config))
        .await
        .unwrap();
    // The handshake fails, the stream closes, gathering ends with nothing.
    let cands = signaling::gather(&mut a, Duration::from_secs(10)).await;
    assert!(cands.is_empty(), "{cands:?}");
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_reached_over_tcp_ranks_below_the_same_relay_over_udp() {
    if !coturn::available() {
        return;
    }
    let server = coturn::start_ready(
        &[],
        "127.0.0.1",
        port(40000),
        (49300, 49310),
        &["--allow-loopback-peers"],
        coturn::Listener::Udp,
    );
    let udp = TurnServer::new(server.addr, coturn::USER, coturn::PASS);
    let tcp = udp.clone().with_transport(Transport::Tcp);
    let cfg = AgentConfig::new(Role::Controlling)
        .with_turn_server(tcp)
        .with_turn_server(udp)
        .with_relay_only(true);
    let mut a = Driver::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let cands: Vec<Candidate> = signaling::gather(&mut a, Duration::from_secs(10))
        .await
        .iter()
        .map(|c| Candidate::parse(c).unwrap())
        .collect();
    assert_eq!(cands.len(), 2, "{cands:?}");
    let (hi, lo) = if cands[0].priority() > cands[1].priority() {
        (&cands[0], &cands[1])
    } else {
        (&cands[1], &cands[0])
    };
    assert_ne!(hi.foundation(), lo.foundation());
    // Both relayed; local preference 65535 (UDP) above 32767 (TCP).
    assert_eq!(hi.priority() >> 8 & 0xFFFF, 65535);
    assert_eq!(lo.priority() >> 8 & 0xFFFF, 32767);
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turn_stream_closing_under_the_selected_pair_loses_the_path_at_once() {
    if !coturn::available() {
        return;
    }
    let server = coturn::start_ready(
        &[],
        "127.0.0.1",
        port(41000),
        (49311, 49330),
        &["--allow-loopback-peers", "--no-udp"],
        coturn::Listener::Tcp,
    );
    let turn =
        TurnServer::new(server.addr, coturn::USER, coturn::PASS).with_transport(Transport::Tcp);
    let cfg = |role| {
        AgentConfig::new(role)
            .with_turn_server(turn.clone())
            .with_relay_only(true)
    };
    let mut a = Driver::start(cfg(Role::Controlling), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut b = Driver::start(cfg(Role::Controlled), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ca = signaling::gather(&mut a, Duration::from_secs(10)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(10)).await;
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .expect("connected through the relay");
    // coturn goes away: both streams close, and both agents say the path
    // is lost now, not after 30 s of consent checks.
    drop(server);
    for d in [&mut a, &mut b] {
        let lost = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match d.next_event().await {
                    Some(cryptic_ice::Event::PathLost) => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await;
        assert_eq!(lost, Ok(true), "PathLost within 5 s of the stream closing");
        assert!(!d.transport().is_connected());
    }
    a.close().await;
    b.close().await;
}
