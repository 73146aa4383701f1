//! The interactive mode, typed into by a script: alice types `call bob`, bob
//! is told who calls and types `accept`, both see the same SAS, alice mutes
//! (the status line says so), hangs up, and reads her history; both quit.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn two_shells_call_accept_mute_hang_up_and_quit() {
    let world = World::start("shell", &["alice", "bob"]);
    let shell = |user: &str, input: &str| {
        let profile = world.profile(user);
        let mut p = Proc::spawn_cmd(
            user,
            BIN,
            &[
                "shell",
                "--profile",
                profile.to_str().unwrap(),
                "--input",
                input,
                "--output",
                "null",
            ],
        );
        p.wait_for("signed in as", Duration::from_secs(20));
        p
    };
    let mut bob = shell("bob", "silence");
    let mut alice = shell("alice", "tone");
    alice.type_line("call bob");
    bob.wait_for("incoming call from alice", Duration::from_secs(20));
    bob.type_line("accept");
    let a = alice.wait_for("short authentication string", Duration::from_secs(20));
    let b = bob.wait_for("short authentication string", Duration::from_secs(20));
    assert_eq!(a.rsplit(": ").next(), b.rsplit(": ").next());
    alice.type_line("mute");
    alice.type_line("stats");
    alice.wait_for("mic=muted", Duration::from_secs(5));
    alice.type_line("hangup");
    alice.wait_for("call ended: completed", Duration::from_secs(5));
    bob.wait_for("call ended: completed", Duration::from_secs(5));
    alice.type_line("history");
    alice.wait_for("bob", Duration::from_secs(5));
    alice.type_line("quit");
    bob.type_line("quit");
    assert!(
        alice.wait_exit(Duration::from_secs(5)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(5)), "{}", bob.output());
}
