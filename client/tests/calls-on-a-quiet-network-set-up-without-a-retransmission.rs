//! Set-up outliers (issue 13 item 6), on a virtual clock: calls over a
//! network that loses nothing and delays every datagram by the same 1 ms
//! (as loopback does) set up within a few round trips every time; none
//! waits for a DTLS retransmission (400 ms) or a STUN one (500 ms), which
//! would mean a first flight was dropped somewhere in the session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;

use std::time::Duration;

use cryptic_signal::call::CallState;
use kit::{Action, NetConfig, Users, When, World};

const ALICE: usize = 0;
const BOB: usize = 1;

fn setup_time(seed: u64, answer_ms: u64) -> Duration {
    let mut users = Users::new(&["alice", "bob"]);
    let net = NetConfig {
        delay: Duration::from_millis(1),
        ..NetConfig::default()
    };
    let mut w = World::new(&mut users, net, seed, |_, c| c);
    w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
    w.at(
        BOB,
        When::After(CallState::Ringing, Duration::from_millis(answer_ms)),
        Action::Accept,
    );
    w.at(
        ALICE,
        When::After(CallState::Active, Duration::from_secs(2)),
        Action::Hangup,
    );
    w.run(Duration::from_secs(30));
    let bob = w.report(BOB);
    let answered = bob.answered.expect("bob answered");
    let played = bob.first_played.expect("bob heard the first frame");
    played - answered
}

#[test]
fn fifty_quiet_calls_hear_the_first_frame_without_a_retransmission() {
    let mut times = Vec::new();
    for seed in 0..50 {
        let t = setup_time(seed, seed % 7);
        times.push((t, seed));
    }
    times.sort();
    eprintln!(
        "answer -> first frame heard (virtual, 1 ms each way): p50 {:?}, p95 {:?}, max {:?} (seed {})",
        times[24].0, times[47].0, times[49].0, times[49].1
    );
    for (t, seed) in &times {
        assert!(
            *t < Duration::from_millis(300),
            "seed {seed}: the first frame came {t:?} after the answer"
        );
    }
}
