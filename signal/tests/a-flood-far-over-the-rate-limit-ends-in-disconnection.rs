#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Messages refused by the rate limit are answered, and once a client has
//! been refused more than `rate_strike_multiple × message_burst` of them
//! without pausing, each further one is a strike: the flood ends with
//! `too_many_errors` and a closed connection. The same for relay frames
//! refused by the per-call cap beyond `relay_strike_multiple ×
//! relay_frames_per_second` within a second.

mod common;

use std::time::Duration;

use common::*;
use cryptic_signal::client::{Incoming, Receiver};
use cryptic_signal::server::Limits;
use cryptic_signal::wire::{ErrorCode, KeysFetch, Message};

#[tokio::test]
async fn a_flood_far_over_the_rate_limit_ends_in_disconnection() {
    let mut limits = Limits::default();
    limits.messages_per_second = 10;
    limits.message_burst = 10;
    limits.rate_strike_multiple = 2;
    limits.max_errors = 5;
    let server = TestServer::start_with(limits).await;
    let (s, mut r) = server.client("chatty").await.1.split();
    let fetch = Message::KeysFetch(KeysFetch {
        user: user("nobody"),
    });
    for _ in 0..200 {
        if s.send(&fetch).await.is_err() {
            break;
        }
    }
    let (mut limited, mut closed_with) = (0, None);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match r.recv().await {
                Ok(Incoming::Message(Message::Error(e))) => match e.code {
                    ErrorCode::RateLimited => limited += 1,
                    ErrorCode::NoKeys => {}
                    c => closed_with = Some(c),
                },
                Ok(m) => panic!("unexpected {m:?}"),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was never closed");
    assert_eq!(closed_with, Some(ErrorCode::TooManyErrors));
    // 20 refusals are forgiven, then 5 strikes close the connection.
    assert!((20..=40).contains(&limited), "limited {limited}");
    server.stop().await;
}

/// Reads until the connection ends (at most 10 s): the relay frames
/// received, the `relay_limit` errors, and the last other error code.
async fn read_to_end(r: &mut Receiver) -> (usize, usize, Option<ErrorCode>) {
    let (mut frames, mut limited, mut last) = (0, 0, None);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match r.recv().await {
                Ok(Incoming::Message(Message::Error(e))) if e.code == ErrorCode::RelayLimit => {
                    limited += 1
                }
                Ok(Incoming::Message(Message::Error(e))) => last = Some(e.code),
                Ok(Incoming::Relay { .. }) => frames += 1,
                Ok(m) => panic!("unexpected {m:?}"),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was never closed");
    (frames, limited, last)
}

#[tokio::test]
async fn a_relay_flood_far_over_the_call_cap_ends_in_disconnection() {
    let mut limits = Limits::default();
    limits.relay_frames_per_second = 10;
    limits.relay_strike_multiple = 2;
    limits.max_errors = 5;
    let server = TestServer::start_with(limits).await;
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    assert_eq!(next_msg(&mut rb).await.call_id(), Some(id));
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    assert_eq!(next_msg(&mut ra).await.call_id(), Some(id));
    for seq in 0..200 {
        if sa.send_relay(id, seq, b"frame").await.is_err() {
            break;
        }
    }
    let (_, limited, closed_with) = read_to_end(&mut ra).await;
    assert_eq!(closed_with, Some(ErrorCode::TooManyErrors));
    // 20 refusals are tolerated within the second, then 5 strikes.
    assert!((20..=40).contains(&limited), "limited {limited}");
    // Bob got the frames within the cap, then alice's hangup.
    let mut frames = 0;
    loop {
        match next(&mut rb).await {
            Incoming::Relay { .. } => frames += 1,
            Incoming::Message(Message::CallHangup(_)) => break,
            m => panic!("{m:?}"),
        }
    }
    assert!((10..=12).contains(&frames), "forwarded {frames}");
    server.stop().await;
}
