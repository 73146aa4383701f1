//! Verifying people, not only calls, between real processes: the safety
//! number is the same on both sides and `verify` marks the peer verified,
//! which later calls show; a changed key is refused with a message naming
//! `trust`, which shows the old and new keys, accepts the new one and
//! leaves the peer unverified; two processes never share a profile.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn one_call(world: &World, caller: &str, callee: &str) -> (String, String) {
    let quiet = ["--input", "silence", "--output", "null"];
    let mut b = world.listen(callee, &[&quiet[..], &["--auto-accept"]].concat());
    let mut a = world.call(caller, callee, &[&quiet[..], &["--duration", "1"]].concat());
    assert!(a.wait_exit(Duration::from_secs(30)), "{}", a.output());
    assert!(b.wait_exit(Duration::from_secs(10)), "{}", b.output());
    (a.output(), b.output())
}

#[test]
fn verify_marks_the_peer_and_trust_accepts_a_changed_key() {
    let world = World::start("keys", &["alice", "bob"]);
    let (alice, bob) = (world.profile("alice"), world.profile("bob"));
    let (alice, bob) = (alice.to_str().unwrap(), bob.to_str().unwrap());

    let (a, _) = one_call(&world, "alice", "bob");
    assert!(a.contains("bob is not verified"), "{a}");

    // The same safety number on both sides; verify marks the peer.
    let (ok, va) = cli(&["verify", "bob", "--profile", alice, "--yes"]);
    assert!(ok && va.contains("bob is verified."), "{va}");
    let (ok, vb) = cli(&["verify", "alice", "--profile", bob, "--yes"]);
    assert!(ok, "{vb}");
    let digits = |t: &str| t.lines().nth(1).unwrap().trim().to_string();
    assert_eq!(digits(&va), digits(&vb));
    println!("safety number on both sides: {}", digits(&va));
    let (a, _) = one_call(&world, "alice", "bob");
    assert!(a.contains("bob is verified"), "{a}");
    let (ok, keys) = cli(&["keys", "--profile", alice]);
    assert!(ok && keys.contains("alice's identity key:"), "{keys}");

    // Bob reinstalls: a new profile, a new key, the same user name.
    let ca = world.path("ca");
    let bob2 = world.path("bob2");
    run_ok(&[
        "ca",
        "issue",
        "bob",
        "--dir",
        ca.to_str().unwrap(),
        "--server",
        &world.addr,
        "--out",
        bob2.to_str().unwrap(),
    ]);
    let mut listener = world.listen(
        "alice",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let mut b2 = Proc::spawn(
        "bob2",
        &[
            "call",
            "alice",
            "--profile",
            bob2.to_str().unwrap(),
            "--input",
            "silence",
            "--output",
            "null",
            "--cancel-after",
            "2",
        ],
    );
    let refused = listener.wait_for("refused a call from bob", Duration::from_secs(20));
    assert!(refused.contains("cryptic-call trust bob"), "{refused}");
    assert!(b2.wait_exit(Duration::from_secs(20)), "{}", b2.output());
    listener.kill();

    // Trust shows both keys and accepts the new one; bob is unverified.
    let (ok, t) = cli(&["trust", "bob", "--profile", alice, "--yes"]);
    assert!(ok && t.contains("old key") && t.contains("new key"), "{t}");
    assert!(t.contains("bob is not verified"), "{t}");
    let mut listener = world.listen(
        "alice",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let mut b2 = Proc::spawn(
        "bob2",
        &[
            "call",
            "alice",
            "--profile",
            bob2.to_str().unwrap(),
            "--input",
            "silence",
            "--output",
            "null",
            "--duration",
            "1",
        ],
    );
    assert!(b2.wait_exit(Duration::from_secs(30)), "{}", b2.output());
    assert!(
        listener.wait_exit(Duration::from_secs(10)),
        "{}",
        listener.output()
    );
    assert!(
        b2.output().contains("call ended: completed"),
        "{}",
        b2.output()
    );
    assert!(
        listener.output().contains("bob is not verified"),
        "{}",
        listener.output()
    );
}

#[test]
fn a_second_process_on_a_profile_is_refused_and_changes_nothing() {
    let world = World::start("lock", &["alice", "bob"]);
    let mut first = world.listen(
        "bob",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let store = world.profile("bob").join("e2e.json");
    let before = std::fs::read(&store).unwrap();
    let profile = world.profile("bob");
    let (ok, out) = cli(&[
        "listen",
        "--profile",
        profile.to_str().unwrap(),
        "--auto-accept",
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("in use by another cryptic-call process"),
        "{out}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), before, "the store changed");
    first.kill();
}
