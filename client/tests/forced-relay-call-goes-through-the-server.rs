//! With `--relay`, the same DTLS and SRTP datagrams travel inside
//! `call_relay_frame`s through the signaling server process: the call
//! secures with the same SAS on both sides, completes, says so in its
//! status, and the callee hears the caller's tone.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_relayed_call_secures_completes_and_carries_the_tone() {
    let world = World::start("relay", &["alice", "bob"]);
    let heard = world.path("bob-heard.wav");
    let mut bob = world.listen(
        "bob",
        &[
            "--auto-accept",
            "--relay",
            "--input",
            "silence",
            "--output",
            &format!("wav:{}", heard.display()),
        ],
    );
    let mut alice = world.call(
        "alice",
        "bob",
        &[
            "--relay",
            "--input",
            "tone:440",
            "--output",
            "null",
            "--duration",
            "3",
        ],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(40)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(5)), "{}", bob.output());
    println!("{}\n{}", alice.output(), bob.output());
    for p in [&alice, &bob] {
        assert!(p.output().contains("path=server-relay"), "{}", p.output());
        assert!(
            p.output().contains("call ended: completed"),
            "{}",
            p.output()
        );
    }
    let purity = cryptic_call::demo::tone_purity(&heard, 440).expect("bob heard audio");
    assert!(purity > 0.9, "tone purity {purity}");
    assert!(world.last_history("alice").contains("server-relay"));
}
