#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! The server holds at most `max_connections` (handshakes included) and
//! accepts again once one leaves.

mod common;

use std::time::Duration;

use common::*;
use cryptic_signal::client::connect;
use cryptic_signal::server::Limits;

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_until_one_leaves() {
    let mut limits = Limits::default();
    limits.max_connections = 2;
    let server = TestServer::start_with(limits).await;
    let (_pa, a) = server.client("alice").await;
    let (_pb, _b) = server.client("bob").await;
    let carol = server.profile("carol").client_config().unwrap();
    assert!(
        connect(&carol).await.is_err(),
        "a third connection must be refused"
    );
    let (sa, _ra) = a.split();
    sa.close().await;
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if connect(&carol).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "a connection must be accepted once alice left");
    server.stop().await;
}
