//! The handshake completes over a pipe that drops 20% of datagrams each way
//! and reorders some, shrugs off garbage datagrams mixed into the flights,
//! and gives up with `HandshakeTimeout` within its bound when the peer never
//! answers.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::time::Duration;

use cryptic_dtls_srtp::handshake::pipe::{Impairment, MemoryTransport};
use cryptic_dtls_srtp::handshake::{handshake, HandshakeConfig, Identity, Role};
use cryptic_dtls_srtp::Error;

#[tokio::test(start_paused = true)]
async fn completes_with_20pct_loss_each_way_and_reordering() {
    for seed in 0..8 {
        let (a, b) = MemoryTransport::pair(
            Impairment::lossy(0.2, 0.1, seed),
            Impairment::lossy(0.2, 0.1, seed + 100),
        );
        let x = Identity::generate().unwrap();
        let y = Identity::generate().unwrap();
        let started = tokio::time::Instant::now();
        let (rx, ry) = tokio::join!(
            handshake(a, &x, y.fingerprint(), HandshakeConfig::new(Role::Server)),
            handshake(b, &y, x.fingerprint(), HandshakeConfig::new(Role::Client)),
        );
        let (sx, sy) = (
            rx.unwrap_or_else(|e| panic!("seed {seed}: server {e}")),
            ry.unwrap_or_else(|e| panic!("seed {seed}: client {e}")),
        );
        println!(
            "seed {seed}: handshake done after {:?} (virtual time)",
            started.elapsed()
        );
        assert_eq!(sx.peer_fingerprint(), y.fingerprint());
        assert_eq!(sy.peer_fingerprint(), x.fingerprint());
    }
}

#[tokio::test(start_paused = true)]
async fn gives_up_within_the_configured_bound_when_the_peer_never_answers() {
    let (a, _silent) = MemoryTransport::pair(Impairment::none(), Impairment::none());
    let me = Identity::generate().unwrap();
    let peer = Identity::generate().unwrap();
    let started = tokio::time::Instant::now();
    let config = HandshakeConfig::new(Role::Client).with_timeout(Duration::from_secs(3));
    let result = handshake(a, &me, peer.fingerprint(), config).await;
    assert_eq!(result.unwrap_err(), Error::HandshakeTimeout);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_bound_is_ten_seconds() {
    let config = HandshakeConfig::new(Role::Server);
    assert_eq!(config.timeout, Duration::from_secs(10));
    let (a, _silent) = MemoryTransport::pair(Impairment::none(), Impairment::none());
    let me = Identity::generate().unwrap();
    let started = tokio::time::Instant::now();
    let result = handshake(a, &me, me.fingerprint(), config).await;
    assert_eq!(result.unwrap_err(), Error::HandshakeTimeout);
    assert!(started.elapsed() < Duration::from_secs(11));
}

#[tokio::test(start_paused = true)]
async fn garbage_datagrams_during_the_handshake_do_not_break_it() {
    let (a, b) = MemoryTransport::pair(Impairment::none(), Impairment::none());
    let x = Identity::generate().unwrap();
    let y = Identity::generate().unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![22],
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        vec![20, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        vec![23; 300],
        (0..=255).collect(),
        vec![0x80; 1500],
    ];
    for g in &garbage {
        a.inject(g);
        b.inject(g);
    }
    let (a2, b2) = (a.clone(), b.clone());
    let noise = async move {
        for round in 0..20u64 {
            tokio::time::sleep(Duration::from_millis(37)).await;
            let g = &garbage[round as usize % garbage.len()];
            a2.inject(g);
            b2.inject(g);
        }
    };
    let (rx, ry, ()) = tokio::join!(
        handshake(a, &x, y.fingerprint(), HandshakeConfig::new(Role::Server)),
        handshake(b, &y, x.fingerprint(), HandshakeConfig::new(Role::Client)),
        noise,
    );
    rx.unwrap();
    ry.unwrap();
}
