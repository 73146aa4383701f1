#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! While a call only rings, each participant gets at most
//! `max_ringing_candidates` candidates forwarded; more are refused with
//! `rate_limited`. Once the call is answered, candidates flow again.

mod common;

use common::*;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::{CallIceCandidate, CallId, ErrorCode, Message, Sealed};

fn candidate(id: CallId, from: &str, to: &str) -> Message {
    Message::CallIceCandidate(CallIceCandidate {
        call_id: id,
        from_user: user(from),
        to_user: user(to),
        encrypted_candidate: Sealed::new(0, b"candidate").unwrap(),
    })
}

#[tokio::test]
async fn candidates_beyond_the_ringing_cap_are_refused_until_the_answer() {
    let limits = Limits::default();
    let cap = limits.max_ringing_candidates as usize;
    assert_eq!(cap, 20, "default");
    let server = TestServer::start_with(limits).await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    assert_eq!(next_msg(&mut rb).await.call_id(), Some(id));

    for _ in 0..cap + 10 {
        sa.send(&candidate(id, "alice", "bob")).await.unwrap();
    }
    for _ in 0..cap {
        assert!(matches!(
            next_msg(&mut rb).await,
            Message::CallIceCandidate(_)
        ));
    }
    for _ in 0..10 {
        match next_msg(&mut ra).await {
            Message::Error(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                assert_eq!(e.call_id, Some(id));
            }
            m => panic!("{m:?}"),
        }
    }
    nothing_within(&mut rb, 200).await;

    // The callee has its own share while ringing.
    sb.send(&candidate(id, "bob", "alice")).await.unwrap();
    assert!(matches!(
        next_msg(&mut ra).await,
        Message::CallIceCandidate(_)
    ));

    // Answered: no cap on candidates any more.
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    assert!(matches!(next_msg(&mut ra).await, Message::CallAnswer(_)));
    for _ in 0..10 {
        sa.send(&candidate(id, "alice", "bob")).await.unwrap();
    }
    for _ in 0..10 {
        assert!(matches!(
            next_msg(&mut rb).await,
            Message::CallIceCandidate(_)
        ));
    }
    nothing_within(&mut ra, 100).await;
    server.stop().await;
}
