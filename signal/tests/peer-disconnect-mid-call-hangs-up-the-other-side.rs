#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! When a participant's connection drops, the other side receives
//! `call_hangup` (reason `peer_disconnected`) and the registry forgets the
//! call: at once for a ringing call, after the reconnection grace for an
//! answered one (the user may log in again and take the call over).

mod common;

use common::*;
use cryptic_signal::wire::{HangupReason, Message};

#[tokio::test]
async fn a_peer_that_disconnects_mid_call_triggers_call_hangup_to_the_other_side() {
    let mut limits = cryptic_signal::server::Limits::default();
    limits.reconnect_grace = std::time::Duration::from_secs(1);
    let server = TestServer::start_with(limits).await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    next_msg(&mut rb).await;
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    next_msg(&mut ra).await;
    assert_eq!(server.stats.calls(), 1);
    sb.close().await;
    drop(rb);
    // Not at once: bob has a second to come back.
    nothing_within(&mut ra, 500).await;
    match next_msg(&mut ra).await {
        Message::CallHangup(h) => {
            assert_eq!(h.call_id, id);
            assert_eq!(h.from_user.as_str(), "bob");
            assert_eq!(h.reason, Some(HangupReason::PeerDisconnected));
        }
        m => panic!("{m:?}"),
    }
    assert_eq!(server.stats.calls(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_caller_that_disconnects_while_ringing_stops_the_ring() {
    let server = TestServer::start().await;
    let (sa, ra) = server.client("alice").await.1.split();
    let (_sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    next_msg(&mut rb).await;
    sa.close().await;
    drop(ra);
    assert!(matches!(next_msg(&mut rb).await, Message::CallHangup(h) if h.call_id == id));
    server.stop().await;
}

#[tokio::test]
async fn a_new_login_replaces_the_old_connection_which_is_told_why() {
    let server = TestServer::start().await;
    let p = server.profile("alice");
    let (_s1, mut r1) = cryptic_signal::client::connect(&p.client_config().unwrap())
        .await
        .unwrap()
        .split();
    let (_s2, mut r2) = cryptic_signal::client::connect(&p.client_config().unwrap())
        .await
        .unwrap()
        .split();
    expect_error(&mut r1, cryptic_signal::wire::ErrorCode::SessionReplaced).await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), r1.recv())
        .await
        .unwrap();
    assert!(end.is_err());
    let (sb, _rb) = server.client("bob").await.1.split();
    let id = new_id();
    sb.send(&invite(id, "bob", "alice")).await.unwrap();
    assert_eq!(next_msg(&mut r2).await.call_id(), Some(id));
    server.stop().await;
}

#[tokio::test]
async fn a_peer_that_logs_in_again_within_the_grace_keeps_the_call() {
    let server = TestServer::start().await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    next_msg(&mut rb).await;
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    next_msg(&mut ra).await;
    sb.close().await;
    drop(rb);
    nothing_within(&mut ra, 500).await;
    // alice hangs up while bob is away: bob hears it on his next login.
    let hangup = Message::CallHangup(cryptic_signal::wire::CallHangup {
        call_id: id,
        from_user: user("alice"),
        to_user: user("bob"),
        reason: None,
    });
    sa.send(&hangup).await.unwrap();
    let (_sb, mut rb) = server.client("bob").await.1.split();
    match next_msg(&mut rb).await {
        Message::CallHangup(h) => assert_eq!((h.call_id, h.reason), (id, None)),
        m => panic!("{m:?}"),
    }
    assert_eq!(server.stats.calls(), 0);
    server.stop().await;
}
