//! Calls that never become conversations, between real processes through a
//! real server: a declined call, a call to someone already in a call, and a
//! call the caller cancels before the answer. Both sides end promptly and
//! the history of each records the outcome.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_declined_call_ends_both_sides_as_rejected() {
    let world = World::start("reject", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--reject", "--input", "silence", "--output", "null"],
    );
    let mut alice = world.call("alice", "bob", &["--input", "silence", "--output", "null"]);
    assert!(
        alice.wait_exit(Duration::from_secs(20)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(2)), "{}", bob.output());
    assert!(
        alice.output().contains("call ended: rejected"),
        "{}",
        alice.output()
    );
    assert!(
        bob.output().contains("call ended: rejected"),
        "{}",
        bob.output()
    );
    assert!(world.last_history("alice").contains("rejected"));
    assert!(world.last_history("bob").contains("rejected"));
    // Exit codes tell scripts how it went (`cryptic-call --help`).
    assert_eq!((alice.code, bob.code), (Some(3), Some(3)));
    // In plain words, from each side.
    assert!(
        alice.output().contains("bob declined"),
        "{}",
        alice.output()
    );
    assert!(bob.output().contains("you declined"), "{}", bob.output());
}

#[test]
fn calling_someone_in_a_call_answers_busy() {
    let world = World::start("busy", &["alice", "bob", "carol"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone", "--output", "null", "--duration", "6"],
    );
    alice.wait_for("call secured", Duration::from_secs(20));
    let mut carol = world.call("carol", "bob", &["--input", "silence", "--output", "null"]);
    assert!(
        carol.wait_exit(Duration::from_secs(20)),
        "{}",
        carol.output()
    );
    assert!(
        carol.output().contains("call ended: busy"),
        "{}",
        carol.output()
    );
    assert!(world.last_history("carol").contains("busy"));
    assert_eq!(carol.code, Some(4));
    assert!(carol.output().contains("bob is busy"), "{}", carol.output());
    // The call in progress was not disturbed.
    assert!(alice.wait_exit(Duration::from_secs(20)));
    assert!(bob.wait_exit(Duration::from_secs(5)));
    assert!(
        alice.output().contains("call ended: completed"),
        "{}",
        alice.output()
    );
}

#[test]
fn a_call_cancelled_before_the_answer_ends_both_sides_as_cancelled() {
    let world = World::start("cancel", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &[
            "--accept-after",
            "30",
            "--input",
            "silence",
            "--output",
            "null",
        ],
    );
    let mut alice = world.call(
        "alice",
        "bob",
        &[
            "--input",
            "silence",
            "--output",
            "null",
            "--cancel-after",
            "1",
        ],
    );
    bob.wait_for("incoming call from alice", Duration::from_secs(20));
    assert!(
        alice.wait_exit(Duration::from_secs(20)),
        "{}",
        alice.output()
    );
    let alice_done = Instant::now();
    assert!(bob.wait_exit(Duration::from_secs(2)), "{}", bob.output());
    assert!(alice_done.elapsed() < Duration::from_secs(1) + Duration::from_millis(500));
    assert!(
        alice.output().contains("call ended: cancelled"),
        "{}",
        alice.output()
    );
    assert!(
        bob.output().contains("call ended: cancelled"),
        "{}",
        bob.output()
    );
    assert!(world.last_history("alice").contains("cancelled"));
    assert!(world.last_history("bob").contains("cancelled"));
    assert_eq!((alice.code, bob.code), (Some(6), Some(6)));
    assert!(
        alice.output().contains("you cancelled before bob answered"),
        "{}",
        alice.output()
    );
    assert!(
        bob.output().contains("alice cancelled the call"),
        "{}",
        bob.output()
    );
}
