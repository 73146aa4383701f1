//! Alice and bob on two hosts whose router drops every UDP datagram between
//! them (network namespaces made by the test; TCP to the signaling server
//! on a third host still flows): ICE finds no path, the call falls back to
//! the server relay on its own, secures and completes, and the status line
//! says so. Runs as root (CI does); skips with a reason elsewhere.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_call_between_hosts_without_udp_completes_through_the_relay() {
    let Some(lab) = Lab::build() else { return };
    assert!(
        lab.block_udp_between_peers(),
        "iptables in the router namespace"
    );
    let dir = TempDir::new("udp-blocked");
    let ca = dir.0.join("ca");
    run_ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
    let server_addr = "10.77.3.2:8443";
    for u in ["alice", "bob"] {
        run_ok(&[
            "ca",
            "issue",
            u,
            "--dir",
            ca.to_str().unwrap(),
            "--server",
            server_addr,
            "--server-name",
            "10.77.3.2",
            "--out",
            dir.0.join(u).to_str().unwrap(),
        ]);
    }
    let mut server = Proc::spawn_in(
        &lab.ns("s"),
        "server",
        &[
            "server",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            "10.77.3.2",
            "--listen",
            server_addr,
            "--data",
            dir.0.join("server-data").to_str().unwrap(),
        ],
    );
    server.wait_for("listening on", Duration::from_secs(20));
    let bob_profile = dir.0.join("bob");
    let mut bob = Proc::spawn_in(
        &lab.ns("b"),
        "bob",
        &[
            "listen",
            "--profile",
            bob_profile.to_str().unwrap(),
            "--auto-accept",
            "--input",
            "tone:440",
            "--output",
            "null",
        ],
    );
    bob.wait_for("waiting for a call", Duration::from_secs(20));
    let alice_profile = dir.0.join("alice");
    let mut alice = Proc::spawn_in(
        &lab.ns("a"),
        "alice",
        &[
            "call",
            "bob",
            "--profile",
            alice_profile.to_str().unwrap(),
            "--input",
            "tone:440",
            "--output",
            "null",
            "--duration",
            "3",
        ],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(60)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(5)), "{}", bob.output());
    println!("{}\n{}", alice.output(), bob.output());
    for p in [&alice, &bob] {
        assert!(
            p.output().contains("media goes through the server relay"),
            "{}",
            p.output()
        );
        assert!(p.output().contains("path=server-relay"), "{}", p.output());
        assert!(
            p.output().contains("call ended: completed"),
            "{}",
            p.output()
        );
    }
}
