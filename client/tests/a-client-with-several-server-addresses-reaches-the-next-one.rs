//! A profile may name several server addresses (`ca issue --server A,B`,
//! or `servers` in config.toml): the client signs in at the first that
//! answers, and when its connection is lost during a call it tries the
//! next ones (as a client of a cluster whose node died would), with real
//! processes, the real server and real TLS on loopback.
//!
//! `cargo test -p cryptic-call --test a-client-with-several-server-addresses-reaches-the-next-one -- --nocapture`

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A loopback port where nothing listens.
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    drop(l);
    a
}

#[test]
fn ca_issue_writes_every_address_given() {
    let world = World::start("several-issue", &["alice"]);
    let ca = world.path("ca");
    let out = world.path("carol");
    run_ok(&[
        "ca",
        "issue",
        "carol",
        "--dir",
        ca.to_str().unwrap(),
        "--server",
        "a.example:8443,b.example:8443",
        "--server",
        "c.example:8443",
        "--out",
        out.to_str().unwrap(),
    ]);
    let p = cryptic_signal::profile::Profile::load(&out).unwrap();
    assert_eq!(p.server, "a.example:8443,b.example:8443,c.example:8443");
    assert_eq!(p.server_name, "a.example");
}

#[test]
fn a_dead_first_address_is_passed_over_at_sign_in() {
    let world = World::start("several-start", &["alice", "bob"]);
    set_profile_server(
        &world.profile("alice"),
        &format!("{},{}", dead_address(), world.addr),
    );
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "tone:660", "--output", "null"],
    );
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone:440", "--output", "null", "--duration", "2"],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    assert!(
        bob.output()
            .contains("call ended: completed (alice hung up)"),
        "{}",
        bob.output()
    );
}

#[test]
fn a_connection_lost_mid_call_is_made_again_at_the_next_address() {
    let mut world = World::start("several-move", &["alice", "bob"]);
    let first = Cutter::start(&world.addr);
    set_profile_server(
        &world.profile("alice"),
        &format!("{},{}", first.addr, world.addr),
    );
    let mut bob = world.listen(
        "bob",
        &[
            "--auto-accept",
            "--input",
            "tone:660",
            "--output",
            "null",
            "--duration",
            "8",
        ],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone:440", "--output", "null"]);
    alice.wait_for("call secured", Duration::from_secs(20));
    alice.wait_for("time=0:02", Duration::from_secs(10));
    // The first address goes away for good.
    first.cut();
    let cut = Instant::now();
    alice.wait_for("lost the server: reconnecting", Duration::from_secs(10));
    alice.wait_for("reconnected to the server", Duration::from_secs(10));
    println!(
        "alice reconnected at the second address {:?} after the cut",
        cut.elapsed()
    );
    world
        .server
        .wait_for("logged in again within the grace", Duration::from_secs(5));
    assert!(bob.wait_exit(Duration::from_secs(20)), "{}", bob.output());
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
