//! A connection open longer than a third of the TURN credentials'
//! validity gets fresh ones in a repeated `welcome` (older clients parse
//! it and ignore it), each with a later expiry, before the first expire.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cryptic_signal::certs::CertificateAuthority;
use cryptic_signal::server::turn::{TurnConfig, TurnSecret};
use cryptic_signal::wire::Message;

/// The expiry (UNIX seconds) in the TURN user name `<expiry>:<user>` of
/// the first `turn:` URI.
fn expiry(servers: &[String]) -> u64 {
    let turn = servers.iter().find(|s| s.starts_with("turn:")).unwrap();
    let digits: String = turn
        .trim_start_matches("turn:")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_turn_credentials_arrive_before_the_first_expire() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::create("Test CA").unwrap();
    let data = dir.path().join("server-data");
    let server = TestServer::start_configured(ca, dir, data, |cfg| {
        cfg.ice_servers = vec!["turn:127.0.0.1:3478".into()];
        let mut turn = TurnConfig::new(TurnSecret::new("a shared secret").unwrap());
        turn.validity = Duration::from_secs(3);
        cfg.turn = Some(Arc::new(turn));
    })
    .await;
    let (_, conn) = server.client("alice").await;
    let first = conn.ice_servers().to_vec();
    let t0 = Instant::now();
    let (_tx, mut rx) = conn.split();
    let mut last = expiry(&first);
    for _ in 0..2 {
        match next_msg(&mut rx).await {
            Message::Welcome(w) => {
                assert_eq!(w.user.as_str(), "alice");
                let e = expiry(&w.ice_servers);
                assert!(e > last, "{e} after {last}");
                last = e;
            }
            m => panic!("{m:?}"),
        }
    }
    // Two refreshes a third of the validity apart: the first credential
    // (valid 3 s) was still valid when the first refresh came.
    println!("two refreshes within {:?}", t0.elapsed());
}
