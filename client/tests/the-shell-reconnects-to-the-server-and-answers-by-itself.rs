//! The shell outlives its server: when the server goes away the shell says
//! so once, reconnects with backoff when it is back, says so once, and
//! takes calls again; with `--auto-answer` it answers them by itself. When
//! the server goes away during a call, the call goes on peer to peer, the
//! shell says so once and reconnects during the call (said once), and the
//! call ends normally.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_shell_reconnects_after_the_server_restarts_and_auto_answers() {
    let mut world = World::start("reconnect", &["alice", "bob"]);
    let profile = world.profile("bob");
    let mut bob = Proc::spawn_cmd(
        "bob",
        BIN,
        &[
            "shell",
            "--profile",
            profile.to_str().unwrap(),
            "--auto-answer",
            "--input",
            "silence",
            "--output",
            "null",
        ],
    );
    bob.wait_for("signed in as bob", Duration::from_secs(20));
    world.stop_server();
    bob.wait_for("lost the server", Duration::from_secs(15));
    // Down for a while: several attempts fail, none of them said.
    std::thread::sleep(Duration::from_secs(4));
    world.start_server();
    bob.wait_for("reconnected to the server", Duration::from_secs(40));
    // alice's call is answered with nobody typing.
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone", "--output", "null", "--duration", "1"],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    bob.wait_for(
        "call ended: completed (alice hung up)",
        Duration::from_secs(10),
    );

    // The server goes away during a call and comes back before it ends:
    // the call goes on peer to peer, the shell reconnects during the call
    // (said once each way), and the call ends as usual.
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone", "--output", "null", "--duration", "12"],
    );
    bob.wait_for("call secured", Duration::from_secs(20));
    world.stop_server();
    bob.wait_for("lost the server: reconnecting", Duration::from_secs(15));
    world.start_server();
    bob.wait_for("reconnected to the server", Duration::from_secs(20));
    assert_eq!(
        bob.output().matches("call ended").count(),
        1,
        "the second call goes on: {}",
        bob.output()
    );
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert!(
        alice.output().contains("reconnected to the server"),
        "{}",
        alice.output()
    );
    bob.wait_for(
        "call ended: completed (alice hung up)",
        Duration::from_secs(10),
    );
    // Connected already: nothing more to say after the call.
    std::thread::sleep(Duration::from_secs(2));
    bob.type_line("quit");
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    assert_eq!(bob.code, Some(0));
    let out = bob.output();
    assert_eq!(out.matches("lost the server").count(), 2, "{out}");
    assert_eq!(out.matches("reconnecting").count(), 2, "{out}");
    assert_eq!(out.matches("reconnected").count(), 2, "{out}");
}
