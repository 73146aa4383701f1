//! A phone leaving Wi-Fi for a carrier network mid-call, between two real
//! `cryptic-call` processes in network namespaces: alice (10.77.1.2 on the
//! first router) and bob (10.77.2.2) talk; 4 s in, alice's first link goes
//! down with its address, and a new link comes up to a second router that
//! masquerades her (10.88.0.2 behind 10.77.5.2, a NAT). Nobody does
//! anything: her client sees the new address, rebinds and renominates; bob
//! learns her NAT mapping from her checks and follows. Both tones must be
//! heard again within 2 s of the change, both calls complete on the
//! direct path.
//!
//! Runs as root (CI does); skips with a reason elsewhere (fails under
//! `CRYPTIC_REQUIRE_ENV=1`).
//!
//! `cargo test -p cryptic-call --test caller-moving-behind-a-second-router-with-nat-is-heard-again -- --nocapture`

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn the_caller_behind_a_new_router_and_nat_is_heard_again_within_2s() {
    let Some(mut lab) = Lab::build() else { return };
    let (router, alice_ns) = (lab.ns("r"), lab.ns("a"));
    let carrier = lab.lab.host("c");
    lab.lab.forwarding(&carrier);
    let dir = TempDir::new("carrier");
    let _server = lab.start_server(&dir.0, &["alice", "bob"]);
    let bob_heard = dir.0.join("bob-heard.wav");
    let alice_heard = dir.0.join("alice-heard.wav");
    let mut bob = lab.listen(
        &dir.0,
        "bob",
        "b",
        &[
            "--auto-accept",
            "--input",
            "tone:660",
            "--output",
            &format!("wav:{}", bob_heard.display()),
        ],
    );
    let mut alice = lab.call(
        &dir.0,
        "alice",
        "a",
        "bob",
        &[
            "--input",
            "tone:440",
            "--output",
            &format!("wav:{}", alice_heard.display()),
            "--duration",
            "12",
        ],
    );
    alice.wait_for("time=0:04", Duration::from_secs(20));
    let moved = Instant::now();
    // The first link goes with its address.
    lab.lab
        .sh(&["ip", "-n", &alice_ns, "addr", "flush", "dev", "eth0"]);
    lab.lab
        .sh(&["ip", "-n", &alice_ns, "link", "set", "eth0", "down"]);
    // The carrier: alice's new link to a NAT router upstream of the first.
    lab.lab.veth(
        (&alice_ns, "eth1", Some("10.88.0.2/24")),
        (&carrier, "lan0", Some("10.88.0.1/24")),
    );
    lab.lab.veth(
        (&carrier, "wan0", Some("10.77.5.2/24")),
        (&router, "c0", Some("10.77.5.1/24")),
    );
    lab.lab.default_route(&carrier, "10.77.5.1");
    lab.lab.nat(&carrier, "10.88.0.0/24", "lan0", "wan0", false);
    lab.lab.default_route(&alice_ns, "10.88.0.1");
    let set_up = moved.elapsed();
    alice.wait_for("network changed", Duration::from_secs(10));
    let seen = moved.elapsed();
    alice.wait_for("back on direct", Duration::from_secs(10));
    let back = moved.elapsed();

    assert!(
        alice.wait_exit(Duration::from_secs(40)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(40)), "{}", bob.output());
    println!("{}\n{}", alice.output(), bob.output());
    for p in [&alice, &bob] {
        let out = p.output();
        assert!(out.contains("call ended: completed"), "{out}");
        let last = out
            .lines()
            .rfind(|l| l.contains("path="))
            .unwrap_or_default();
        assert!(last.contains("path=direct"), "{out}");
    }
    let (gap_alice, gap_bob) = (longest_silence(&alice_heard), longest_silence(&bob_heard));
    println!(
        "caller moved behind a NAT: new link up {set_up:?} after the old one went, seen \
         {seen:?}, back on direct {back:?}; longest silence heard: alice {gap_alice:?}, \
         bob {gap_bob:?}"
    );
    for g in [gap_alice, gap_bob] {
        assert!(g <= Duration::from_secs(2), "silent {g:?}");
    }
}
