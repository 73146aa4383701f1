//! Hanging up, from the caller or from the callee, ends the call on both
//! sides within a second, and both histories record a completed call.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

fn check(hanging_up: &mut Proc, other: &mut Proc) {
    assert!(
        hanging_up.wait_exit(Duration::from_secs(30)),
        "{}",
        hanging_up.output()
    );
    let first = Instant::now();
    assert!(
        other.wait_exit(Duration::from_secs(2)),
        "{}",
        other.output()
    );
    let gap = first.elapsed();
    println!("{} ended {gap:?} after {}", other.name, hanging_up.name);
    assert!(gap < Duration::from_secs(1), "{gap:?}");
    for p in [hanging_up, other] {
        assert!(
            p.output().contains("call ended: completed"),
            "{}",
            p.output()
        );
    }
}

#[test]
fn the_caller_hanging_up_ends_the_callee_within_a_second() {
    let world = World::start("hangup-caller", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "tone", "--output", "null"],
    );
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone", "--output", "null", "--duration", "2"],
    );
    check(&mut alice, &mut bob);
    assert!(world.last_history("alice").contains("completed"));
    assert!(world.last_history("bob").contains("completed"));
}

#[test]
fn the_callee_hanging_up_ends_the_caller_within_a_second() {
    let world = World::start("hangup-callee", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &[
            "--auto-accept",
            "--input",
            "tone",
            "--output",
            "null",
            "--duration",
            "2",
        ],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone", "--output", "null"]);
    check(&mut bob, &mut alice);
    assert!(world.last_history("alice").contains("completed"));
    assert!(world.last_history("bob").contains("completed"));
}
