#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Messages refused by the rate limit are answered, and once a client has
//! been refused more than `rate_strike_multiple × message_burst` of them
//! without pausing, each further one is a strike: the flood ends with
//! `too_many_errors` and a closed connection.

mod common;

use std::time::Duration;

use common::*;
use cryptic_signal::client::Incoming;
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
