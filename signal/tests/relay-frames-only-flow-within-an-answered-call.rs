#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Relay frames for an unknown call, an unanswered call or someone else's
//! call are dropped; within an answered call they flow, within the per-call cap.

mod common;

use common::*;
use cryptic_signal::client::Incoming;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::ErrorCode;

#[tokio::test]
async fn relay_frames_are_dropped_unless_the_call_is_answered_and_the_sender_takes_part() {
    let mut limits = Limits::default();
    limits.relay_frames_per_second = 100;
    let server = TestServer::start_with(limits).await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let (sc, mut rc) = server.client("carol").await.1.split();

    // Unknown call.
    sa.send_relay(new_id(), 0, b"x").await.unwrap();
    expect_error(&mut ra, ErrorCode::UnknownCall).await;

    // Unanswered call.
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    assert_eq!(next_msg(&mut rb).await.call_id(), Some(id));
    sa.send_relay(id, 0, b"early").await.unwrap();
    expect_error(&mut ra, ErrorCode::CallNotActive).await;
    nothing_within(&mut rb, 200).await;

    // Someone else's call.
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    assert_eq!(next_msg(&mut ra).await.call_id(), Some(id));
    sc.send_relay(id, 0, b"intruder").await.unwrap();
    expect_error(&mut rc, ErrorCode::NotParticipant).await;
    nothing_within(&mut ra, 200).await;
    nothing_within(&mut rb, 10).await;

    // Answered and ours: flows, up to the cap (100 frames per second, bucket of 100).
    for seq in 0..400u64 {
        sa.send_relay(id, seq, &[1; 100]).await.unwrap();
    }
    let mut got = 0;
    let mut limited = 0;
    while let Ok(Ok(m)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), rb.recv()).await
    {
        assert!(matches!(m, Incoming::Relay { call_id, .. } if call_id == id));
        got += 1;
    }
    while let Ok(Ok(Incoming::Message(cryptic_signal::wire::Message::Error(e)))) =
        tokio::time::timeout(std::time::Duration::from_millis(100), ra.recv()).await
    {
        assert_eq!(e.code, ErrorCode::RelayLimit);
        limited += 1;
    }
    // At least the bucket goes through; sending 400 frames takes far less
    // than the 3 s it would take the cap to let them all pass.
    assert!(
        got >= 100 && limited > 0,
        "forwarded {got}, limited {limited}"
    );
    assert_eq!(got + limited, 400);
    server.stop().await;
}
