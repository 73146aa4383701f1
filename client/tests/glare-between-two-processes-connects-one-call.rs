//! Glare between real processes: alice and bob call each other at the same
//! moment, five times over. Each time one call survives (the call machine
//! keeps the smaller call id on both sides), the side whose call lost
//! answers the other at once, and both users talk and hang up normally.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn five_simultaneous_calls_each_way_all_connect() {
    let world = World::start("glare", &["alice", "bob"]);
    // First contact: both have signed in and published keys, as two users
    // who already know each other have.
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "silence", "--output", "null", "--duration", "1"],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    let mut raced = 0;
    for round in 1..=5 {
        let args = ["--input", "tone", "--output", "null", "--duration", "2"];
        // Both processes start at once; one's invite can reach the server
        // before the other has signed in ("... is offline"): no glare then,
        // so that round is run again (at most three times in all).
        let (alice, bob) = loop {
            let mut alice = world.call("alice", "bob", &args);
            let mut bob = world.call("bob", "alice", &args);
            assert!(
                alice.wait_exit(Duration::from_secs(30)),
                "round {round}: {}",
                alice.output()
            );
            assert!(
                bob.wait_exit(Duration::from_secs(30)),
                "round {round}: {}",
                bob.output()
            );
            let offline = |p: &Proc| p.output().contains("is offline");
            if (offline(&alice) || offline(&bob)) && raced < 3 {
                raced += 1;
                println!("round {round}: one invite left before the other user signed in; again");
                continue;
            }
            break (alice, bob);
        };
        for (who, p) in [("alice", &alice), ("bob", &bob)] {
            let out = p.output();
            assert!(out.contains("call secured"), "round {round}, {who}: {out}");
            assert!(
                out.contains("call ended: completed"),
                "round {round}, {who}: {out}"
            );
        }
        let sas = |out: String| {
            out.lines()
                .find(|l| l.contains("short authentication string"))
                .and_then(|l| l.rsplit(": ").next())
                .map(str::to_string)
        };
        assert_eq!(sas(alice.output()), sas(bob.output()), "round {round}");
        println!("round {round}: one call survived the glare and completed on both sides");
    }
}
