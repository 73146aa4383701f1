//! A client whose connection the server replaced with a newer login of the
//! same user ("signed in elsewhere") during a call ends that call and does
//! not connect again: it would replace the newer login in turn. Real
//! processes and the real server; the newer login is a plain signaling
//! client of the test.
//!
//! `cargo test -p cryptic-call --test a-client-signed-in-elsewhere-does-not-reconnect -- --nocapture`

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;
use cryptic_signal::client::{connect, Incoming};
use cryptic_signal::wire::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_client_ends_its_call_and_leaves_the_newer_login_alone() {
    let world = World::start("elsewhere", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "tone:660", "--output", "null"],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone:440", "--output", "null"]);
    let mut alice = tokio::task::spawn_blocking(move || {
        alice.wait_for("call secured", Duration::from_secs(20));
        alice
    })
    .await
    .unwrap();

    // alice signs in elsewhere.
    let profile = cryptic_signal::profile::Profile::load(&world.profile("alice")).unwrap();
    let newer = connect(&profile.client_config().unwrap()).await.unwrap();
    let (_s, mut r) = newer.split();
    let alice = tokio::task::spawn_blocking(move || {
        let line = alice.wait_for("call ended", Duration::from_secs(10));
        assert!(line.contains("signed in elsewhere"), "{line}");
        assert!(
            alice.wait_exit(Duration::from_secs(10)),
            "{}",
            alice.output()
        );
        alice
    })
    .await
    .unwrap();
    assert!(
        !alice.output().contains("reconnected to the server"),
        "{}",
        alice.output()
    );
    // The newer login is left alone: nothing replaces it.
    let quiet = tokio::time::Instant::now() + Duration::from_secs(4);
    loop {
        match tokio::time::timeout_at(quiet, r.recv()).await {
            Err(_) => break,
            Ok(Ok(Incoming::Message(Message::Error(e)))) => {
                panic!("the newer login was told {:?}: {}", e.code, e.message)
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("the newer login was lost: {e}"),
        }
    }
    // bob's call ends too (alice's media says goodbye).
    tokio::task::spawn_blocking(move || {
        assert!(bob.wait_exit(Duration::from_secs(40)), "{}", bob.output());
    })
    .await
    .unwrap();
}
