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
    let _server = lab.start_server(&dir.0, &["alice", "bob"]);
    let mut bob = lab.listen(
        &dir.0,
        "bob",
        "b",
        &["--auto-accept", "--input", "tone:440", "--output", "null"],
    );
    let mut alice = lab.call(
        &dir.0,
        "alice",
        "a",
        "bob",
        &["--input", "tone:440", "--output", "null", "--duration", "3"],
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
