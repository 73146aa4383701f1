#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A `from_user` that differs from the certificate's identity is rejected
//! with `forged_sender` and nothing reaches the addressee.

mod common;

use common::*;
use cryptic_signal::wire::ErrorCode;

#[tokio::test]
async fn a_message_with_a_forged_from_user_is_rejected_and_not_delivered() {
    let server = TestServer::start().await;
    let (_, mallory) = server.client("mallory").await;
    let (_, carol) = server.client("carol").await;
    let (sm, mut rm) = mallory.split();
    let (_sc, mut rc) = carol.split();
    sm.send(&invite(new_id(), "bob", "carol")).await.unwrap();
    expect_error(&mut rm, ErrorCode::ForgedSender).await;
    nothing_within(&mut rc, 300).await;
    // The honest form goes through.
    let id = new_id();
    sm.send(&invite(id, "mallory", "carol")).await.unwrap();
    assert_eq!(next_msg(&mut rc).await.call_id(), Some(id));
    server.stop().await;
}
