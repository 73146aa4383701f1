//! Mid-call failures, between real processes: the signaling server is killed
//! and the peer-to-peer audio goes on; then the callee is killed and the
//! caller notices through ICE consent freshness (RFC 7675: no answer for
//! 30 s) and ends the call.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

fn received(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("rx="))
        .and_then(|n| n.parse().ok())
}

#[test]
fn audio_survives_the_server_and_consent_freshness_ends_a_call_whose_peer_died() {
    let mut world = World::start("dying", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "tone:440", "--output", "null"],
    );
    let mut alice = world.call("alice", "bob", &["--input", "tone:440", "--output", "null"]);
    alice.wait_for("call secured", Duration::from_secs(20));
    let before = loop {
        let line = alice.wait_for("rx=", Duration::from_secs(10));
        match received(&line) {
            Some(n) if n >= 50 => break n,
            _ => continue,
        }
    };

    // The server dies; both sides carry on peer to peer.
    world.server.kill();
    alice.wait_for("lost the server: reconnecting", Duration::from_secs(10));
    bob.wait_for("lost the server: reconnecting", Duration::from_secs(10));
    let after = loop {
        let line = alice.wait_for("rx=", Duration::from_secs(10));
        match received(&line) {
            Some(n) if n >= before + 100 => break n,
            _ => continue,
        }
    };
    println!(
        "alice received {before} packets before the server died and {after} after two more seconds"
    );

    // Bob dies without a word; alice's consent checks go unanswered.
    bob.kill();
    let killed = Instant::now();
    assert!(
        alice.wait_exit(Duration::from_secs(45)),
        "{}",
        alice.output()
    );
    let noticed = killed.elapsed();
    println!("alice ended the call {noticed:?} after bob died");
    assert!(
        alice.output().contains("consent expired"),
        "{}",
        alice.output()
    );
    assert!(
        noticed >= Duration::from_secs(20) && noticed <= Duration::from_secs(40),
        "{noticed:?}"
    );
}
