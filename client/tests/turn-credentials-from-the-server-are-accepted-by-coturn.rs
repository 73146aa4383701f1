//! TURN REST credentials checked by a real coturn (`--use-auth-secret
//! --static-auth-secret`), the independent reference for the HMAC: the
//! signaling server (a real process, its secret read from a file) hands
//! each user `<expiry>:<user>` and a password in `welcome`; an allocation
//! with them succeeds, a forged or expired one is refused, and the secret
//! never shows in the server's output.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use cryptic_ice::{AgentConfig, CandidateKind, Driver, Event, Role, TurnServer};
use cryptic_signal::client::connect;
use cryptic_signal::profile::Profile;
use cryptic_signal::server::turn::TurnSecret;
use cryptic_signal::uri::{IceScheme, IceUri};
use cryptic_signal::wire::UserId;

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

fn coturn(dir: &std::path::Path, port: u16, secret: &str) -> Option<Proc> {
    if std::process::Command::new("turnserver")
        .arg("--help")
        .output()
        .is_err()
    {
        cryptic_tests::skip("turnserver (Debian package coturn) is not installed");
        return None;
    }
    let relay = 49_300 + (std::process::id() % 50) as u16 * 4;
    let mut p = Proc::start(
        "coturn",
        "turnserver",
        &[
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            &format!("--listening-port={port}"),
            "--use-auth-secret",
            &format!("--static-auth-secret={secret}"),
            "--realm=test.local",
            "--fingerprint",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--no-rfc5780",
            "--allow-loopback-peers",
            &format!("--min-port={relay}"),
            &format!("--max-port={}", relay + 3),
            &format!("--userdb={}/turndb", dir.display()),
            &format!("--pidfile={}/turnserver.pid", dir.display()),
            "--log-file=stdout",
            "--simple-log",
            "-v",
        ],
    );
    p.wait_until("its UDP listener", Duration::from_secs(10), |l| {
        l.contains("UDP listener opened on") && l.contains(&format!("127.0.0.1:{port}"))
    });
    Some(p)
}

/// A relay-only allocation on `server` with these credentials: true when
/// coturn hands out a relayed address.
async fn allocates(server: SocketAddr, user: &str, pass: &str) -> bool {
    let cfg = AgentConfig::new(Role::Controlling)
        .with_turn_server(TurnServer::new(server, user, pass))
        .with_relay_only(true);
    let mut d = Driver::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut relayed = false;
    loop {
        match tokio::time::timeout_at(end, d.next_event()).await {
            Ok(Some(Event::CandidateGathered(c))) => {
                relayed |= c.kind() == CandidateKind::Relayed;
            }
            Ok(Some(Event::GatheringDone)) => break,
            Ok(Some(_)) => {}
            _ => panic!("gathering did not finish within 10 s"),
        }
    }
    d.close().await;
    relayed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_welcome_allocate_and_forged_or_expired_ones_are_refused() {
    let dir = TempDir::new("turn-rest");
    let secret = format!("turn-secret-{:016x}", rand::random::<u64>());
    let turn_port = free_port(true);
    let Some(mut coturn) = coturn(&dir.0, turn_port, &secret) else {
        return;
    };
    let turn_addr: SocketAddr = format!("127.0.0.1:{turn_port}").parse().unwrap();

    // The operator's side: a CA, a profile, the secret in a file, the server.
    let ca = dir.0.join("ca");
    run_ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    let addr = format!("127.0.0.1:{}", free_port(false));
    let alice = dir.0.join("alice");
    run_ok(&[
        "ca",
        "issue",
        "alice",
        "--dir",
        ca.to_str().unwrap(),
        "--server",
        &addr,
        "--server-name",
        "127.0.0.1",
        "--out",
        alice.to_str().unwrap(),
    ]);
    let secret_file = dir.0.join("turn.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let mut server = Proc::start(
        "server",
        BIN,
        &[
            "server",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            "127.0.0.1",
            "--listen",
            &addr,
            "--data",
            dir.0.join("data").to_str().unwrap(),
            "--ice-server",
            &format!("stun:{turn_addr}"),
            "--ice-server",
            &format!("turn:{turn_addr}"),
            "--turn-secret-file",
            secret_file.to_str().unwrap(),
            "--turn-credential-hours",
            "2",
        ],
    );
    server.wait_for("listening on", Duration::from_secs(20));

    // Alice logs in; her welcome carries her own short-lived credential.
    let profile = Profile::load(&alice).unwrap();
    let conn = connect(&profile.client_config().unwrap()).await.unwrap();
    let uris: Vec<IceUri> = conn
        .ice_servers()
        .iter()
        .map(|s| IceUri::parse(s).unwrap())
        .collect();
    assert_eq!(uris.len(), 2, "{:?}", conn.ice_servers());
    assert_eq!(uris[0].scheme, IceScheme::Stun);
    assert_eq!(uris[0].credentials, None);
    let (user, pass) = uris[1].credentials.clone().expect("turn: with credentials");
    let (expiry, name) = user.split_once(':').unwrap();
    assert_eq!(name, "alice");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        expiry.abs_diff(now + 2 * 3600) < 60,
        "valid for 2 h: {expiry} vs now {now}"
    );
    println!("alice's TURN user name: {user}");

    // coturn recomputes the HMAC from the same secret: the allocation succeeds.
    assert!(
        allocates(turn_addr, &user, &pass).await,
        "{}",
        coturn.output()
    );

    // Forged: another user's name with alice's password, or a changed password.
    let bob_name = format!("{expiry}:bob");
    assert!(!allocates(turn_addr, &bob_name, &pass).await);
    let mut forged = pass.clone().into_bytes();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    assert!(!allocates(turn_addr, &user, &String::from_utf8(forged).unwrap()).await);
    // A longer validity written into the name breaks the HMAC too.
    let stretched = format!("{}:alice", expiry + 86_400);
    assert!(!allocates(turn_addr, &stretched, &pass).await);

    // Expired: the server's own formula, an hour past its expiry. The same
    // formula with a current expiry still works (it is the time that fails).
    let s = TurnSecret::new(&secret).unwrap();
    let alice_id = UserId::new("alice").unwrap();
    let old = s.credential(&alice_id, now - 3 * 3600, Duration::from_secs(3600));
    assert!(!allocates(turn_addr, &old.username, &old.password).await);
    let fresh = s.credential(&alice_id, now, Duration::from_secs(3600));
    assert!(allocates(turn_addr, &fresh.username, &fresh.password).await);

    // The secret never shows in what the server printed.
    drop(conn);
    server.wait_exit_or_kill();
    assert!(!server.output().contains(&secret), "{}", server.output());
    coturn.wait_exit_or_kill();
}
