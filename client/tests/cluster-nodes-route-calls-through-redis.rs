//! Cluster mode between real processes: a private `redis-server` and three
//! signaling nodes (`server --cluster redis://...`) on loopback. Users on
//! different nodes call each other (invite, answer, candidates, relay
//! frames both ways, hangup); a user offline everywhere is reported
//! offline; a second login on another node ends the first one; a node
//! killed mid-call ends a relayed call on the other side with
//! `peer_disconnected` (its users log in again elsewhere), while a
//! peer-to-peer call between real processes goes on; one-time keys are
//! handed out once across nodes; the nodes survive a Redis restart; a user
//! whose connection drops mid-call and who signs in on the peer's node
//! keeps the call there (the old node lets it go without a word).

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use cryptic_signal::client::{connect, Incoming, Receiver, Sender};
use cryptic_signal::profile::Profile;
use cryptic_signal::wire::{
    CallAnswer, CallHangup, CallId, CallInvite, ErrorCode, HangupReason, Message, Sealed,
};

fn invite(id: CallId, from: &str, to: &str) -> Message {
    Message::CallInvite(CallInvite {
        call_id: id,
        from_user: user(from),
        to_user: user(to),
        encrypted_payload: Sealed::new(0, b"offer").unwrap(),
    })
}

fn answer(id: CallId, from: &str, to: &str) -> Message {
    Message::CallAnswer(CallAnswer {
        call_id: id,
        from_user: user(from),
        to_user: user(to),
        encrypted_payload: Sealed::new(1, b"answer").unwrap(),
    })
}

async fn next(rx: &mut Receiver, within: Duration) -> Incoming {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("timed out waiting for a message")
        .unwrap()
}

async fn next_msg(rx: &mut Receiver) -> Message {
    match next(rx, Duration::from_secs(5)).await {
        Incoming::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Alice calls bob (each on their own node) until the call is answered.
async fn answered_call(a: &mut (Sender, Receiver), b: &mut (Sender, Receiver)) -> CallId {
    let id = CallId::random(&mut rand::rng());
    a.0.send(&invite(id, "alice", "bob")).await.unwrap();
    match next_msg(&mut b.1).await {
        Message::CallInvite(i) => assert_eq!((i.call_id, i.from_user.as_str()), (id, "alice")),
        m => panic!("{m:?}"),
    }
    b.0.send(&answer(id, "bob", "alice")).await.unwrap();
    match next_msg(&mut a.1).await {
        Message::CallAnswer(x) => assert_eq!(x.call_id, id),
        m => panic!("{m:?}"),
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_between_users_on_different_nodes_carries_messages_and_relay_frames() {
    let Some(cluster) = Cluster::start("cluster-call", 3) else {
        return;
    };
    let mut a = cluster.login("alice", 0).await;
    let mut b = cluster.login("bob", 1).await;
    let (sc, mut rc) = cluster.login("carol", 2).await;

    let t0 = Instant::now();
    let id = answered_call(&mut a, &mut b).await;
    println!("cross-node invite + answer: {:?}", t0.elapsed());

    // Candidates and relay frames both ways, through Redis.
    let cand = Message::CallIceCandidate(cryptic_signal::wire::CallIceCandidate {
        call_id: id,
        from_user: user("bob"),
        to_user: user("alice"),
        encrypted_candidate: Sealed::new(1, b"candidate").unwrap(),
    });
    b.0.send(&cand).await.unwrap();
    assert!(matches!(
        next_msg(&mut a.1).await,
        Message::CallIceCandidate(_)
    ));
    let t0 = Instant::now();
    for seq in 0..200u64 {
        a.0.send_relay(id, seq, &[7; 160]).await.unwrap();
        b.0.send_relay(id, seq, &[9; 160]).await.unwrap();
    }
    for (rx, byte) in [(&mut b.1, 7u8), (&mut a.1, 9u8)] {
        for seq in 0..200u64 {
            match next(rx, Duration::from_secs(5)).await {
                Incoming::Relay {
                    call_id,
                    seq: s,
                    frame,
                } => {
                    assert_eq!((call_id, s), (id, seq));
                    assert_eq!(&frame[..], &[byte; 160][..]);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    println!("400 relay frames across nodes: {:?}", t0.elapsed());

    // Carol (third node) cannot inject frames into their call.
    sc.send_relay(id, 0, b"intruder").await.unwrap();

    // Hangup from alice reaches bob.
    a.0.send(&Message::CallHangup(CallHangup {
        call_id: id,
        from_user: user("alice"),
        to_user: user("bob"),
        reason: None,
    }))
    .await
    .unwrap();
    match next_msg(&mut b.1).await {
        Message::CallHangup(h) => assert_eq!(h.call_id, id),
        m => panic!("{m:?}"),
    }
    match next_msg(&mut rc).await {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::UnknownCall),
        m => panic!("carol: {m:?}"),
    }

    // Nobody called dave: offline, on every node.
    let id2 = CallId::random(&mut rand::rng());
    a.0.send(&invite(id2, "alice", "dave")).await.unwrap();
    match next_msg(&mut a.1).await {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::UserOffline),
        m => panic!("{m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_login_on_another_node_ends_the_older_one() {
    let Some(cluster) = Cluster::start("cluster-replace", 2) else {
        return;
    };
    let (_s0, mut r0) = cluster.login("alice", 0).await;
    let t0 = Instant::now();
    let mut a1 = cluster.login("alice", 1).await;
    match next_msg(&mut r0).await {
        Message::Error(e) => assert_eq!(e.code, ErrorCode::SessionReplaced),
        m => panic!("{m:?}"),
    }
    println!("old login ended {:?} after the new one", t0.elapsed());
    // The newer login is the one calls reach.
    let b = cluster.login("bob", 0).await;
    let id = CallId::random(&mut rand::rng());
    b.0.send(&invite(id, "bob", "alice")).await.unwrap();
    assert!(matches!(next_msg(&mut a1.1).await, Message::CallInvite(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_call_ends_a_relayed_call_on_the_other_side() {
    let Some(mut cluster) = Cluster::start("cluster-loss", 2) else {
        return;
    };
    let mut a = cluster.login("alice", 0).await;
    let mut b = cluster.login("bob", 1).await;
    let id = answered_call(&mut a, &mut b).await;
    // The call is relayed: its media depends on the dead node.
    a.0.send_relay(id, 0, b"media").await.unwrap();
    assert!(matches!(
        next(&mut b.1, Duration::from_secs(5)).await,
        Incoming::Relay { .. }
    ));

    let t0 = Instant::now();
    cluster.nodes[0].0.kill();
    // bob's media keeps going through the relay (to nowhere now), 50
    // frames a second for at most 10 s: the call is still relayed when
    // node 1 finds node 0 gone.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sender = b.0;
    let media = tokio::spawn(async move {
        for seq in 1..=500 {
            if stopped.try_recv().is_ok() {
                break;
            }
            // Refusals (none expected) come back to the receiver.
            let _ = sender.send_relay(id, seq, b"media").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sender
    });
    let deadline = Duration::from_secs(10);
    loop {
        match next(&mut b.1, deadline).await {
            Incoming::Message(Message::CallHangup(h)) => {
                assert_eq!(h.call_id, id);
                assert_eq!(h.reason, Some(HangupReason::PeerDisconnected));
                break;
            }
            Incoming::Message(Message::Pong(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    let lost = t0.elapsed();
    let _ = stop.send(());
    b.0 = media.await.unwrap();
    println!("bob told of the node loss {lost:?} after the kill");
    assert!(lost < Duration::from_secs(6), "{lost:?}");

    // Alice logs in on the surviving node and can call bob again.
    let mut a = login(&cluster.profile("alice", 1)).await;
    answered_call(&mut a, &mut b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_keys_are_handed_out_once_under_concurrent_fetches_from_two_nodes() {
    let Some(cluster) = Cluster::start("cluster-keys", 2) else {
        return;
    };
    let bob = Profile::load(&cluster.profile("bob", 0)).unwrap();
    let mut cb = connect(&bob.client_config().unwrap()).await.unwrap();
    let mut eb = bob.e2e().unwrap();
    assert_eq!(
        cb.publish_keys(eb.keys_to_publish(20).unwrap())
            .await
            .unwrap(),
        20
    );

    // Ten requesters, five on each node, three fetches each, all at once.
    let mut conns = Vec::new();
    for i in 0..10 {
        let p = Profile::load(&cluster.profile(&format!("r{i}"), i % 2)).unwrap();
        conns.push(connect(&p.client_config().unwrap()).await.unwrap());
    }
    let fetches = conns.into_iter().map(|mut c| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                let b = c.fetch_keys(&user("bob")).await.unwrap();
                got.push((b.one_time_key.key.to_base64(), b.fallback));
            }
            got
        })
    });
    let mut one_time = Vec::new();
    let mut fallback = 0;
    for f in fetches {
        for (key, is_fallback) in f.await.unwrap() {
            if is_fallback {
                fallback += 1;
            } else {
                one_time.push(key);
            }
        }
    }
    let n = one_time.len();
    one_time.sort();
    one_time.dedup();
    assert_eq!(
        (n, one_time.len(), fallback),
        (20, 20, 10),
        "each one-time key once"
    );
    assert_eq!(
        cb.publish_keys(eb.keys_to_publish(0).unwrap())
            .await
            .unwrap(),
        0
    );
}

#[test]
fn a_real_call_between_processes_on_two_nodes_completes() {
    let Some(cluster) = Cluster::start("cluster-cli", 2) else {
        return;
    };
    let quiet = ["--input", "silence", "--output", "null"];
    let bob = cluster.profile("bob", 1);
    let alice = cluster.profile("alice", 0);
    let mut b = Proc::spawn(
        "bob",
        &[
            &[
                "listen",
                "--profile",
                bob.to_str().unwrap(),
                "--auto-accept",
            ][..],
            &quiet,
        ]
        .concat(),
    );
    b.wait_for("waiting for a call", Duration::from_secs(20));
    let mut a = Proc::spawn(
        "alice",
        &[
            &[
                "call",
                "bob",
                "--profile",
                alice.to_str().unwrap(),
                "--duration",
                "1",
            ][..],
            &quiet,
        ]
        .concat(),
    );
    assert!(a.wait_exit(Duration::from_secs(30)), "{}", a.output());
    assert!(b.wait_exit(Duration::from_secs(10)), "{}", b.output());
    assert_eq!(a.code, Some(0), "{}", a.output());
    assert_eq!(b.code, Some(0), "{}", b.output());
    println!("{}", a.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_redis_restart_and_route_again() {
    let Some(mut cluster) = Cluster::start("cluster-redis-restart", 2) else {
        return;
    };
    let mut a = cluster.login("alice", 0).await;
    let mut b = cluster.login("bob", 1).await;
    // Redis goes away and comes back empty (no persistence in this test).
    cluster.redis.kill();
    let t0 = Instant::now();
    cluster.redis = redis(cluster.redis_port).unwrap();
    // Once the nodes have reconnected and recorded their users' presence
    // again, a call between the nodes is routed (polled, bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tries = 0;
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let id = loop {
        poll.tick().await;
        tries += 1;
        let id = CallId::random(&mut rand::rng());
        a.0.send(&invite(id, "alice", "bob")).await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(300), a.1.recv()).await;
        match got {
            Ok(Ok(Incoming::Message(Message::Error(e)))) if e.code == ErrorCode::UserOffline => {
                assert!(
                    Instant::now() < deadline,
                    "still offline after {tries} tries"
                );
            }
            Err(_) => break id, // no refusal: the invite went through
            other => panic!("after {tries} tries: {other:?}"),
        }
    };
    match next_msg(&mut b.1).await {
        Message::CallInvite(i) => assert_eq!(i.call_id, id),
        m => panic!("{m:?}"),
    }
    println!(
        "routing again {:?} after Redis restarted ({tries} tries)",
        t0.elapsed()
    );
    for (p, _) in &mut cluster.nodes {
        p.wait_exit_or_kill();
        assert!(!p.output().contains("panicked"), "{}", p.output());
    }
}

fn received(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("rx="))
        .and_then(|n| n.parse().ok())
}

/// Waits (bounded) until `p` reports at least `n` packets received.
fn received_at_least(p: &mut Proc, n: u64) -> u64 {
    loop {
        let line = p.wait_for("rx=", Duration::from_secs(10));
        if let Some(got) = received(&line).filter(|&got| got >= n) {
            return got;
        }
    }
}

#[test]
fn a_peer_to_peer_call_goes_on_when_the_callers_node_dies() {
    let Some(mut cluster) = Cluster::start("cluster-p2p", 2) else {
        return;
    };
    let (alice, bob) = (cluster.profile("alice", 0), cluster.profile("bob", 1));
    let tone = ["--input", "tone:440", "--output", "null"];
    let mut b = Proc::spawn(
        "bob",
        &[
            &[
                "listen",
                "--profile",
                bob.to_str().unwrap(),
                "--auto-accept",
            ][..],
            &tone,
        ]
        .concat(),
    );
    b.wait_for("waiting for a call", Duration::from_secs(20));
    let mut a = Proc::spawn(
        "alice",
        &[
            &["call", "bob", "--profile", alice.to_str().unwrap()][..],
            &tone,
        ]
        .concat(),
    );
    a.wait_for("call secured", Duration::from_secs(20));
    let before = received_at_least(&mut b, 50);

    cluster.nodes[0].0.kill();
    a.wait_for("lost the server: reconnecting", Duration::from_secs(10));
    // Bob's node learns of the loss within seconds and does not end the call.
    let after = received_at_least(&mut b, before + 300);
    assert!(!b.output().contains("call ended"), "{}", b.output());
    println!("bob received {before} packets before alice's node died, {after} well after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_comes_back_on_the_peers_node_keeps_the_call() {
    let Some(mut cluster) =
        Cluster::start_with("cluster-move", 2, false, &["--reconnect-grace", "2"])
    else {
        return;
    };
    let mut a = cluster.login("alice", 0).await;
    let mut b = cluster.login("bob", 1).await;
    let id = answered_call(&mut a, &mut b).await;
    // alice's connection to node 0 drops; she signs in on node 1 (bob's).
    a.0.close().await;
    drop(a);
    cluster.nodes[0]
        .0
        .wait_for("connection lost during a call", Duration::from_secs(5));
    let mut a1 = cluster.login("alice", 1).await;
    cluster.nodes[0]
        .0
        .wait_for("signed in on another node", Duration::from_secs(5));
    // Node 0's grace (2 s) ends without a word to bob.
    let quiet_until = Instant::now() + Duration::from_secs(4);
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, b.1.recv()).await {
            Err(_) => break,
            Ok(Ok(Incoming::Message(Message::Pong(_)))) => {}
            Ok(other) => panic!("bob should hear nothing: {other:?}"),
        }
    }
    // The call lives on node 1: bob's hang-up reaches alice there.
    let hangup = Message::CallHangup(CallHangup {
        call_id: id,
        from_user: user("bob"),
        to_user: user("alice"),
        reason: None,
    });
    b.0.send(&hangup).await.unwrap();
    loop {
        match next(&mut a1.1, Duration::from_secs(5)).await {
            Incoming::Message(Message::CallHangup(h)) => {
                assert_eq!((h.call_id, h.reason), (id, None));
                break;
            }
            Incoming::Message(Message::Pong(_) | Message::Presence(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
