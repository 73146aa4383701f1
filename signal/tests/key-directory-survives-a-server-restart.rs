#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! The SQLite key directory survives a (graceful) server restart; one-time
//! keys are handed out once, then the fallback key.

mod common;

use common::*;
use cryptic_signal::client::connect;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::ErrorCode;

#[tokio::test]
async fn published_keys_survive_a_restart_and_one_time_keys_are_handed_out_once() {
    let server = TestServer::start().await;
    let (pa, mut ca) = server.client("alice").await;
    let mut ea = pa.e2e().unwrap();
    assert_eq!(
        ca.publish_keys(ea.keys_to_publish(2).unwrap())
            .await
            .unwrap(),
        2
    );
    let (pb, mut cb) = server.client("bob").await;
    let first = cb.fetch_keys(&user("alice")).await.unwrap();
    assert!(!first.fallback);

    // Graceful shutdown tells connected clients.
    let (_sb, mut rb) = cb.split();
    let (ca_, dir, data) = server.stop().await;
    expect_error(&mut rb, ErrorCode::ServerShutdown).await;
    drop(ca);

    let server = TestServer::start_in(ca_, dir, data, Limits::default()).await;
    let mut cfg = pb.client_config().unwrap();
    cfg.server = server.addr.to_string();
    let mut cb = connect(&cfg).await.unwrap();
    let second = cb.fetch_keys(&user("alice")).await.unwrap();
    assert_eq!(second.identity_key, ea.identity_key());
    assert!(!second.fallback);
    assert_ne!(second.one_time_key.key, first.one_time_key.key);
    let third = cb.fetch_keys(&user("alice")).await.unwrap();
    assert!(
        third.fallback,
        "one-time keys exhausted: the fallback key comes next"
    );
    // A session started from the fallback key works end to end.
    let mut eb = pb.e2e().unwrap();
    eb.start_session(&third).unwrap();
    let sealed = eb.seal(&user("alice"), b"hello").unwrap();
    assert_eq!(ea.unseal(&user("bob"), &sealed).unwrap(), b"hello");
    match cb.fetch_keys(&user("nobody")).await {
        Err(cryptic_signal::Error::Server { code, .. }) => assert_eq!(code, ErrorCode::NoKeys),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}
