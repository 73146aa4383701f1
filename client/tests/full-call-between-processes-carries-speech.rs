//! A full call between separate processes of the real binary, through a
//! real mTLS signaling server process on loopback: speech WAV in on alice's
//! side, WAV out on bob's. After alignment, bob's audio follows alice's
//! speech (envelope cross-correlation above 0.9, aligned per second); both
//! record the call.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn speech_goes_from_alice_to_bob_and_both_record_the_call() {
    let world = World::start("full-call", &["alice", "bob"]);
    let Some(speech) = speech_wav(&world.dir.0) else {
        return;
    };
    let heard = world.path("bob-heard.wav");
    let mut bob = world.listen(
        "bob",
        &[
            "--auto-accept",
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
            "--input",
            &format!("wav:{}", speech.display()),
            "--output",
            "null",
            "--duration",
            "8",
        ],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(40)),
        "alice:\n{}",
        alice.output()
    );
    assert!(
        bob.wait_exit(Duration::from_secs(10)),
        "bob:\n{}",
        bob.output()
    );
    println!("alice:\n{}\nbob:\n{}", alice.output(), bob.output());
    assert!(alice.output().contains("call ended: completed"));
    assert!(bob.output().contains("call ended: completed"));

    // The same SAS on both sides.
    let sas = |out: &str| {
        out.lines()
            .find_map(|l| l.split("short authentication string with ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .map(str::to_string)
    };
    assert_eq!(sas(&alice.output()), sas(&bob.output()));
    assert!(sas(&alice.output()).is_some());

    let sent = cryptic_audio::read_wav_48k_mono(&speech).unwrap();
    let got = cryptic_audio::read_wav_48k_mono(&heard).unwrap();
    let (a, b) = (envelope(&sent), envelope(&got));
    let (r, lag) = best_alignment(&a, &b, 300);
    println!(
        "whole-file envelope correlation {r:.3} at a lag of {} ms",
        lag * 10
    );
    // The jitter buffer adapts its delay early in the call (it drops or
    // inserts a frame while it settles), so align each second on its own,
    // near the global lag, and average: the received audio must follow
    // the sent speech second by second.
    let (mean, per_second) = segment_alignment(&a, &b, lag, 100, 10);
    println!("per-second envelope correlation: mean {mean:.3}, {per_second:?}");
    assert!(
        mean > 0.9,
        "bob's audio does not follow alice's speech: {mean}"
    );
    println!(
        "bob's recording lags alice's file by about {} ms (stack delay plus the offset between the two files' starts)",
        lag * 10
    );

    assert!(world.last_history("alice").contains("bob"));
    assert!(world.last_history("alice").contains("completed"));
    assert!(world.last_history("bob").contains("alice"));
}
