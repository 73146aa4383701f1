//! How a call that did not happen ended, in plain words, on both sides,
//! with the exit code `--help` documents: the callee is offline (8); the
//! caller tries again too soon ("wait N s before calling bob again"); the
//! callee is busy (4), and is told who tried; nobody answered (5), and the
//! callee reads when it was missed; and a second sign-in elsewhere signs
//! the first shell out with words, not a reconnection loop.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

const QUIET: &[&str] = &["--input", "silence", "--output", "null"];
const QUIET_ACCEPT: &[&str] = &["--auto-accept", "--input", "silence", "--output", "null"];

fn ended(p: &mut Proc, within: u64) {
    assert!(p.wait_exit(Duration::from_secs(within)), "{}", p.output());
}

#[test]
fn an_offline_callee_and_a_second_invite_too_soon_are_said_plainly() {
    let world = World::start("offline", &["alice", "bob"]);
    // bob signs in once (his keys are on the server), then goes away.
    let mut bob = world.listen("bob", &[&["--reject"][..], QUIET].concat());
    bob.kill();
    let mut alice = world.call("alice", "bob", QUIET);
    ended(&mut alice, 20);
    assert!(
        alice.output().contains("bob is offline"),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(8), "{}", alice.output());
    assert!(world.last_history("alice").contains("offline"));

    // In the shell (one connection): an unanswered invite (bob rings,
    // alice cancels), then at once another. The server's interval (10 s)
    // is not over, and alice is told how long to wait.
    let mut bob = world.listen("bob", &[&["--accept-after", "30"][..], QUIET].concat());
    let profile = world.profile("alice");
    let mut alice = Proc::spawn_cmd(
        "alice",
        BIN,
        &[
            &["shell", "--profile", profile.to_str().unwrap()][..],
            QUIET,
        ]
        .concat(),
    );
    alice.wait_for("signed in as alice", Duration::from_secs(20));
    alice.type_line("call bob");
    bob.wait_for("incoming call from alice", Duration::from_secs(20));
    alice.type_line("hangup");
    alice.wait_for("call ended: cancelled", Duration::from_secs(10));
    ended(&mut bob, 10);
    alice.type_line("call bob");
    let line = alice.wait_for("before calling bob again", Duration::from_secs(10));
    let secs: u32 = line
        .split("wait ")
        .nth(1)
        .and_then(|r| r.split(" s ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number of seconds: {line}"));
    assert!((1..=10).contains(&secs), "{line}");
    alice.type_line("quit");
    ended(&mut alice, 10);
}

#[test]
fn a_busy_callee_is_told_who_tried_and_a_missed_call_says_when() {
    let world = World::start("busywords", &["alice", "bob", "carol"]);
    let mut bob = world.listen("bob", &[&["--auto-accept"][..], QUIET].concat());
    let mut alice = world.call("alice", "bob", &[&["--duration", "5"][..], QUIET].concat());
    alice.wait_for("call secured", Duration::from_secs(20));
    let mut carol = world.call("carol", "bob", QUIET);
    ended(&mut carol, 20);
    assert!(carol.output().contains("bob is busy"), "{}", carol.output());
    assert_eq!(carol.code, Some(4));
    bob.wait_for("carol tried to call you (busy)", Duration::from_secs(10));
    ended(&mut alice, 20);
    ended(&mut bob, 10);
    assert_eq!((alice.code, bob.code), (Some(0), Some(0)));
    assert!(bob.output().contains("alice hung up"), "{}", bob.output());

    // Nobody answers carol's call: carol's ring times out, bob reads when.
    let mut bob = world.listen("bob", &[&["--accept-after", "30"][..], QUIET].concat());
    let mut carol = world.call(
        "carol",
        "bob",
        &[&["--ring-timeout", "2"][..], QUIET].concat(),
    );
    ended(&mut carol, 20);
    ended(&mut bob, 10);
    assert!(
        carol.output().contains("bob did not answer"),
        "{}",
        carol.output()
    );
    assert_eq!((carol.code, bob.code), (Some(5), Some(5)));
    let out = bob.output();
    let at = out
        .split("missed call from carol at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no time of the missed call: {out}"));
    let hhmm: Vec<&str> = at.get(..5).unwrap_or_default().split(':').collect();
    assert!(
        hhmm.len() == 2 && hhmm.iter().all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
        "{out}"
    );
    assert!(world.last_history("bob").contains("missed call from carol"));
}

#[test]
fn signing_in_elsewhere_signs_the_first_shell_out_in_words() {
    let world = World::start("elsewhere", &["bob"]);
    let shell = |dir: &std::path::Path| {
        let mut p = Proc::spawn_cmd(
            "bob",
            BIN,
            &[&["shell", "--profile", dir.to_str().unwrap()][..], QUIET].concat(),
        );
        p.wait_for("signed in as bob", Duration::from_secs(20));
        p
    };
    let mut first = shell(&world.profile("bob"));
    // The same profile copied to a second device.
    let copy = world.path("bob-laptop");
    std::fs::create_dir_all(&copy).unwrap();
    for f in std::fs::read_dir(world.profile("bob")).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() && f.file_name() != ".lock" {
            std::fs::copy(f.path(), copy.join(f.file_name())).unwrap();
        }
    }
    let mut second = shell(&copy);
    first.wait_for("signed in elsewhere", Duration::from_secs(10));
    ended(&mut first, 10);
    assert_eq!(first.code, Some(2), "{}", first.output());
    assert!(!first.output().contains("reconnect"), "{}", first.output());
    second.type_line("quit");
    ended(&mut second, 10);
    // `listen` says the same, and a listener stopped by SIGTERM while
    // it waits leaves.
    let mut listener = world.listen("bob", QUIET_ACCEPT);
    let mut other = Proc::spawn(
        "bob",
        &[
            &["listen", "--profile", copy.to_str().unwrap()][..],
            QUIET_ACCEPT,
        ]
        .concat(),
    );
    other.wait_for("waiting for a call", Duration::from_secs(20));
    ended(&mut listener, 10);
    assert!(
        listener.output().contains("signed in elsewhere"),
        "{}",
        listener.output()
    );
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &other.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    ended(&mut other, 10);
    assert_ne!(other.code, Some(0));
}
