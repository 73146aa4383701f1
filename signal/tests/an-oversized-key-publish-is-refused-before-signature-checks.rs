#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A `keys_publish` with more one-time keys than one publish may carry is
//! refused for its count, before any signature is checked (its signatures
//! here are all invalid: checking them first would answer differently).
//! Publishes beyond `key_publishes_per_user` per window are refused too.

mod common;

use common::*;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::{B64Bytes, ErrorCode};
use cryptic_signal::Error;

#[tokio::test]
async fn too_many_one_time_keys_are_refused_before_signatures_are_checked() {
    let server = TestServer::start().await;
    let (pa, mut ca) = server.client("alice").await;
    let mut ea = pa.e2e().unwrap();
    let mut p = ea.keys_to_publish(100).unwrap();
    let extra = p.one_time_keys[0].clone();
    p.one_time_keys.push(extra);
    for k in &mut p.one_time_keys {
        k.signature = B64Bytes([0; 64]);
    }
    match ca.publish_keys(p).await {
        Err(Error::Server { code, message }) => {
            assert_eq!(code, ErrorCode::InvalidValue);
            assert_eq!(message, "too many one-time keys in one publish");
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn publishes_beyond_the_quota_are_refused() {
    let mut limits = Limits::default();
    limits.key_publishes_per_user = 3;
    let server = TestServer::start_with(limits).await;
    let (pa, mut ca) = server.client("alice").await;
    let mut ea = pa.e2e().unwrap();
    for _ in 0..3 {
        ca.publish_keys(ea.keys_to_publish(1).unwrap())
            .await
            .unwrap();
    }
    match ca.publish_keys(ea.keys_to_publish(1).unwrap()).await {
        Err(Error::Server { code, .. }) => assert_eq!(code, ErrorCode::RateLimited),
        other => panic!("{other:?}"),
    }
    server.stop().await;
}
