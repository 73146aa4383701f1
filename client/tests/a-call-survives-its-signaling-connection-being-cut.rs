//! The caller's connection to the signaling server is cut mid-call (a TCP
//! forwarder on loopback between her client and the server closes it and
//! refuses new ones for a while), with real processes, the real server and
//! real TLS:
//!
//! - the audio goes on peer to peer through the cut (bob's recording of
//!   alice's tone has no gap), the server keeps the answered call for its
//!   reconnection grace, alice's client says "lost the server:
//!   reconnecting", connects again once the forwarder lets it through,
//!   says "reconnected to the server", and the server gives her the call
//!   back; then bob hangs up and alice's call ends "bob hung up", with
//!   history saying completed;
//! - when the cut lasts past the grace (3 s here), the server ends the call
//!   on bob's side (`peer_disconnected`) within about a second of it;
//! - when the connection goes silent instead (open, carrying nothing, so
//!   the server does not notice), alice's client finds it dead after 8 s
//!   without a pong, signs in again, and the server hands the answered
//!   call to that newer login (it replaces the old connection rather than
//!   ending the call); bob's hang-up then reaches her.
//!
//! `cargo test -p cryptic-call --test a-call-survives-its-signaling-connection-being-cut -- --nocapture`

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn the_caller_reconnects_mid_call_and_hears_the_callee_hang_up() {
    let mut world = World::start("cut", &["alice", "bob"]);
    let cutter = Cutter::start(&world.addr);
    set_profile_server(&world.profile("alice"), &cutter.addr);
    let wav = world.path("bob-heard.wav");
    let mut bob = world.listen(
        "bob",
        &[
            "--auto-accept",
            "--input",
            "tone:660",
            "--output",
            wav.to_str().unwrap(),
            "--duration",
            "14",
        ],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone:440", "--output", "null"]);
    alice.wait_for("call secured", Duration::from_secs(20));
    alice.wait_for("time=0:02", Duration::from_secs(10));

    cutter.cut();
    let cut = Instant::now();
    let line = alice.wait_for("lost the server: reconnecting", Duration::from_secs(15));
    println!("alice, {:?} after the cut: {line}", cut.elapsed());
    // Down for 3 s: her attempts meanwhile are closed by the forwarder.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !bob.output().contains("call ended"),
        "bob's call must outlive alice's connection: {}",
        bob.output()
    );
    cutter.restore();
    let restored = Instant::now();
    alice.wait_for("reconnected to the server", Duration::from_secs(15));
    let took = restored.elapsed();
    println!(
        "alice reconnected {took:?} after the forwarder let her through ({:?} after the cut)",
        cut.elapsed()
    );
    assert!(took <= Duration::from_secs(6), "{took:?}");
    world
        .server
        .wait_for("logged in again within the grace", Duration::from_secs(5));

    // bob hangs up after his 14 s: alice hears of it.
    assert!(bob.wait_exit(Duration::from_secs(30)), "{}", bob.output());
    assert_eq!(bob.code, Some(0), "{}", bob.output());
    let ended = alice.wait_for("call ended", Duration::from_secs(5));
    assert!(ended.contains("completed (bob hung up)"), "{ended}");
    assert!(
        alice.wait_exit(Duration::from_secs(10)),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    let out = alice.output();
    assert_eq!(out.matches("lost the server").count(), 1, "{out}");
    assert_eq!(out.matches("reconnected to the server").count(), 1, "{out}");
    assert!(world.last_history("alice").contains("completed"));
    // The server routed bob's hang-up (not a disconnect).
    let logged = world.server.wait_for("call ended", Duration::from_secs(5));
    assert!(logged.contains("hung up"), "{logged}");
    // The audio went on through the cut: bob heard alice's tone throughout.
    let gap = longest_silence(&wav);
    let heard = cryptic_audio::read_wav_48k_mono(&wav).unwrap().len() as f64 / 48_000.0;
    println!("bob recorded {heard:.1} s; longest gap in alice's tone: {gap:?}");
    assert!(heard >= 12.0, "{heard}");
    assert!(gap <= Duration::from_millis(200), "{gap:?}");
}

#[test]
fn a_caller_cut_off_past_the_grace_is_hung_up_on_with_peer_disconnected() {
    let mut world =
        World::start_with_server_flags("cut-grace", &["alice", "bob"], &["--reconnect-grace", "3"]);
    let cutter = Cutter::start(&world.addr);
    set_profile_server(&world.profile("alice"), &cutter.addr);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "tone:660", "--output", "null"],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone:440", "--output", "null"]);
    alice.wait_for("call secured", Duration::from_secs(20));
    bob.wait_for("time=0:01", Duration::from_secs(10));

    cutter.cut();
    let cut = Instant::now();
    let ended = bob.wait_for("call ended", Duration::from_secs(15));
    let after = cut.elapsed();
    println!("bob's call ended {after:?} after the cut: {ended}");
    assert!(
        after >= Duration::from_millis(2500) && after <= Duration::from_secs(6),
        "{after:?}"
    );
    world
        .server
        .wait_for("reconnection grace over", Duration::from_secs(2));
    world
        .server
        .wait_for("participant disconnected", Duration::from_secs(2));
    assert!(
        ended.contains("alice's connection to the server was lost"),
        "{ended}"
    );
    // alice, still cut off, learns it from bob's media (RTCP BYE).
    assert!(
        alice.wait_exit(Duration::from_secs(20)),
        "{}",
        alice.output()
    );
    assert!(alice.output().contains("call ended"), "{}", alice.output());
}

#[test]
fn a_silent_connection_is_replaced_by_a_new_login_that_keeps_the_call() {
    let mut world = World::start("cut-silent", &["alice", "bob"]);
    let cutter = Cutter::start(&world.addr);
    set_profile_server(&world.profile("alice"), &cutter.addr);
    let mut bob = world.listen(
        "bob",
        &[
            "--auto-accept",
            "--input",
            "tone:660",
            "--output",
            "null",
            "--duration",
            "16",
        ],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone:440", "--output", "null"]);
    alice.wait_for("call secured", Duration::from_secs(20));
    alice.wait_for("time=0:01", Duration::from_secs(10));

    cutter.freeze();
    let frozen = Instant::now();
    let line = alice.wait_for("lost the server: reconnecting", Duration::from_secs(15));
    println!("alice, {:?} after the freeze: {line}", frozen.elapsed());
    assert!(line.contains("not even a pong"), "{line}");
    alice.wait_for("reconnected to the server", Duration::from_secs(10));
    println!("alice reconnected {:?} after the freeze", frozen.elapsed());
    world.server.wait_for(
        "answered calls carried to the new connection",
        Duration::from_secs(5),
    );
    assert!(!bob.output().contains("call ended"), "{}", bob.output());

    assert!(bob.wait_exit(Duration::from_secs(30)), "{}", bob.output());
    let ended = alice.wait_for("call ended", Duration::from_secs(5));
    assert!(ended.contains("completed (bob hung up)"), "{ended}");
    assert!(
        alice.wait_exit(Duration::from_secs(10)),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    let logged = world.server.wait_for("call ended", Duration::from_secs(5));
    assert!(logged.contains("hung up"), "{logged}");
}
