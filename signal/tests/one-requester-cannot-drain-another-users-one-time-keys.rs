#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! One requester fetching a user's bundle over and over gets at most
//! `key_fetches_per_target` one-time keys per window, then `rate_limited`;
//! several requesters together claim at most `one_time_keys_per_target`,
//! then get the fallback key. Either way the user's one-time keys stay.

mod common;

use common::*;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::ErrorCode;
use cryptic_signal::Error;

#[tokio::test]
async fn a_single_requester_cannot_drain_another_users_one_time_keys() {
    let limits = Limits::default();
    let per_target = limits.key_fetches_per_target;
    let server = TestServer::start_with(limits).await;
    let (pb, mut cb) = server.client("bob").await;
    let mut eb = pb.e2e().unwrap();
    assert_eq!(
        cb.publish_keys(eb.keys_to_publish(50).unwrap())
            .await
            .unwrap(),
        50
    );

    let (_pm, mut cm) = server.client("mallory").await;
    let (mut claimed, mut refused) = (0, 0);
    for _ in 0..60 {
        match cm.fetch_keys(&user("bob")).await {
            Ok(b) => {
                assert!(!b.fallback);
                claimed += 1;
            }
            Err(Error::Server { code, .. }) => {
                assert_eq!(code, ErrorCode::RateLimited);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((claimed, refused), (per_target, 60 - per_target));

    // Another caller still gets a one-time key of bob's.
    let (_pa, mut ca) = server.client("alice").await;
    assert!(!ca.fetch_keys(&user("bob")).await.unwrap().fallback);
    // Bob publishing nothing new learns how many are left: all but six.
    assert_eq!(
        cb.publish_keys(eb.keys_to_publish(0).unwrap())
            .await
            .unwrap(),
        50 - per_target - 1
    );
    server.stop().await;
}

#[tokio::test]
async fn several_requesters_together_get_the_fallback_key_beyond_the_targets_ration() {
    let mut limits = Limits::default();
    limits.one_time_keys_per_target = 6;
    let server = TestServer::start_with(limits).await;
    let (pb, mut cb) = server.client("bob").await;
    let mut eb = pb.e2e().unwrap();
    cb.publish_keys(eb.keys_to_publish(50).unwrap())
        .await
        .unwrap();
    let mut one_time = 0;
    let mut fallback = 0;
    for name in ["m1", "m2", "m3"] {
        let (_p, mut c) = server.client(name).await;
        for _ in 0..4 {
            if c.fetch_keys(&user("bob")).await.unwrap().fallback {
                fallback += 1;
            } else {
                one_time += 1;
            }
        }
    }
    assert_eq!((one_time, fallback), (6, 6));
    assert_eq!(
        cb.publish_keys(eb.keys_to_publish(0).unwrap())
            .await
            .unwrap(),
        44
    );
    server.stop().await;
}
