#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! An answered call is ended by the server after `max_call_duration` (both
//! sides get `call_hangup` with reason `timeout`), and relay frames of a
//! call are refused once the call has relayed for `max_relay_duration`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use cryptic_signal::client::Incoming;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::{ErrorCode, HangupReason, Message};

#[tokio::test]
async fn an_answered_call_is_hung_up_at_the_duration_cap() {
    let mut limits = Limits::default();
    limits.max_call_duration = Duration::from_millis(500);
    let server = TestServer::start_with(limits).await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    assert_eq!(next_msg(&mut rb).await.call_id(), Some(id));
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    assert_eq!(next_msg(&mut ra).await.call_id(), Some(id));
    let answered = Instant::now();
    for (me, rx) in [("alice", &mut ra), ("bob", &mut rb)] {
        match next_msg(rx).await {
            Message::CallHangup(h) => {
                assert_eq!(h.call_id, id);
                assert_eq!(h.to_user.as_str(), me);
                assert_eq!(h.reason, Some(HangupReason::Timeout));
            }
            m => panic!("{m:?}"),
        }
    }
    let after = answered.elapsed();
    // The sweep runs once a second.
    assert!(
        after >= Duration::from_millis(500) && after < Duration::from_secs(3),
        "{after:?}"
    );
    assert_eq!(server.stats.calls(), 0);
    // Relay frames for the ended call are refused.
    sa.send_relay(id, 0, b"late").await.unwrap();
    expect_error(&mut ra, ErrorCode::UnknownCall).await;
    drop(sb);
    server.stop().await;
}

#[tokio::test]
async fn relay_frames_are_refused_after_the_relay_session_cap() {
    let mut limits = Limits::default();
    limits.max_relay_duration = Duration::from_millis(500);
    let server = TestServer::start_with(limits).await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    assert_eq!(next_msg(&mut rb).await.call_id(), Some(id));
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    assert_eq!(next_msg(&mut ra).await.call_id(), Some(id));

    // One frame every 50 ms until the server refuses (at most 5 s).
    let first = Instant::now();
    let mut seq = 0;
    let refused_after = loop {
        assert!(first.elapsed() < Duration::from_secs(5), "never refused");
        sa.send_relay(id, seq, b"frame").await.unwrap();
        seq += 1;
        tokio::select! {
            m = rb.recv() => assert!(matches!(m.unwrap(), Incoming::Relay { .. })),
            m = ra.recv() => match m.unwrap() {
                Incoming::Message(Message::Error(e)) => {
                    assert_eq!(e.code, ErrorCode::RelayLimit);
                    break first.elapsed();
                }
                m => panic!("{m:?}"),
            },
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused_after >= Duration::from_millis(500),
        "{refused_after:?}"
    );
    // The call itself goes on: a hangup still reaches bob.
    sa.send(&Message::CallHangup(cryptic_signal::wire::CallHangup {
        call_id: id,
        from_user: user("alice"),
        to_user: user("bob"),
        reason: Some(HangupReason::Normal),
    }))
    .await
    .unwrap();
    assert!(matches!(next_msg(&mut rb).await, Message::CallHangup(_)));
    server.stop().await;
}
