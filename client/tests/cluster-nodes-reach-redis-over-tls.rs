//! Cluster mode over TLS to Redis: a private `redis-server` that speaks only
//! TLS (its certificate from the deployment's CA), two signaling nodes
//! started with `--cluster rediss://... --cluster-ca ca.crt`, and a call
//! between users on the two nodes routed through it.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::cluster::*;
use cryptic_signal::client::Incoming;
use cryptic_signal::wire::{CallAnswer, CallId, CallInvite, Message, Sealed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_route_a_call_through_redis_over_tls() {
    let Some(cluster) = Cluster::start_with("cluster-rediss", 2, true, &[]) else {
        return;
    };
    let (sa, mut ra) = cluster.login("alice", 0).await;
    let (sb, mut rb) = cluster.login("bob", 1).await;
    let id = CallId::random(&mut rand::rng());
    sa.send(&Message::CallInvite(CallInvite {
        call_id: id,
        from_user: user("alice"),
        to_user: user("bob"),
        encrypted_payload: Sealed::new(0, b"offer").unwrap(),
    }))
    .await
    .unwrap();
    let within = Duration::from_secs(5);
    match tokio::time::timeout(within, rb.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Incoming::Message(Message::CallInvite(i)) => assert_eq!(i.call_id, id),
        other => panic!("{other:?}"),
    }
    sb.send(&Message::CallAnswer(CallAnswer {
        call_id: id,
        from_user: user("bob"),
        to_user: user("alice"),
        encrypted_payload: Sealed::new(1, b"answer").unwrap(),
    }))
    .await
    .unwrap();
    match tokio::time::timeout(within, ra.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Incoming::Message(Message::CallAnswer(a)) => assert_eq!(a.call_id, id),
        other => panic!("{other:?}"),
    }
    sa.send_relay(id, 0, b"media").await.unwrap();
    assert!(matches!(
        tokio::time::timeout(within, rb.recv())
            .await
            .unwrap()
            .unwrap(),
        Incoming::Relay { .. }
    ));
}
