//! A phone changing networks mid-call, between two real `cryptic-call`
//! processes in network namespaces: alice (10.77.1.2) calls bob
//! (10.77.2.2) through one router; 4 s into the call alice's address is
//! removed and a new one on another network (10.77.4.2/24, the router
//! answering on 10.77.4.1) is added with its default route. Nobody does
//! anything: alice's client sees the new address, moves its ICE agent
//! there and renominates; bob follows. Both tones must be heard again
//! within 2 s of the change, measured in the audio each side recorded, and
//! both calls complete on the direct path.
//!
//! Alice's TCP connection to the signaling server dies with her old address
//! (nothing tells her so yet): the path comes back over UDP alone.
//!
//! Runs as root (CI does); skips with a reason elsewhere (fails under
//! `CRYPTIC_REQUIRE_ENV=1`).
//!
//! `cargo test -p cryptic-call --test caller-changing-address-mid-call-is-heard-again -- --nocapture`

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn the_callers_new_address_is_heard_again_within_2s_with_nothing_to_do() {
    let Some(lab) = Lab::build() else { return };
    let (router, alice_ns) = (lab.ns("r"), lab.ns("a"));
    let dir = TempDir::new("roam");
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
    alice.wait_for("call secured", Duration::from_secs(20));
    // Right after alice's status line of the 4th second: her client reads
    // its addresses on the same one-second clock, so the change waits
    // almost a whole period to be seen (the worst case).
    alice.wait_for("time=0:04", Duration::from_secs(15));
    let moved = Instant::now();
    // The move: the old address goes (and with it the routes), a new
    // network comes.
    lab.lab.sh(&[
        "ip",
        "-n",
        &router,
        "addr",
        "add",
        "10.77.4.1/24",
        "dev",
        "a0",
    ]);
    lab.lab.sh(&[
        "ip",
        "-n",
        &alice_ns,
        "addr",
        "del",
        "10.77.1.2/24",
        "dev",
        "eth0",
    ]);
    lab.lab.sh(&[
        "ip",
        "-n",
        &alice_ns,
        "addr",
        "add",
        "10.77.4.2/24",
        "dev",
        "eth0",
    ]);
    lab.lab.default_route(&alice_ns, "10.77.4.1");
    alice.wait_for("network changed", Duration::from_secs(10));
    let seen = moved.elapsed();
    alice.wait_for("back on direct", Duration::from_secs(10));
    let back = moved.elapsed();
    println!("alice saw the change {seen:?} after it, back on direct after {back:?}");

    assert!(
        alice.wait_exit(Duration::from_secs(40)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(40)), "{}", bob.output());
    println!("{}\n{}", alice.output(), bob.output());
    for p in [&alice, &bob] {
        assert!(
            p.output().contains("call ended: completed"),
            "{}",
            p.output()
        );
    }
    assert!(
        alice.output().contains("network changed, trying relay"),
        "{}",
        alice.output()
    );
    let last_path = |p: &Proc| {
        p.output()
            .lines()
            .rfind(|l| l.contains("path="))
            .unwrap_or_default()
            .to_string()
    };
    for p in [&alice, &bob] {
        assert!(last_path(p).contains("path=direct"), "{}", p.output());
    }
    let (gap_bob, gap_alice) = (longest_silence(&bob_heard), longest_silence(&alice_heard));
    println!(
        "caller moved: back on direct {back:?} after the change; longest silence heard: \
         bob {gap_bob:?}, alice {gap_alice:?}"
    );
    assert!(
        gap_bob <= Duration::from_secs(2),
        "bob heard nothing for {gap_bob:?}"
    );
    assert!(
        gap_alice <= Duration::from_secs(2),
        "alice heard nothing for {gap_alice:?}"
    );
}
