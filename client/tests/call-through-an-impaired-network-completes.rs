//! A call over a bad network: alice and bob on two namespace hosts whose
//! router pushes every datagram between them through an impairment relay
//! (5% loss, 40 ms +- 10 ms one-way delay with jitter, seeded). The call
//! completes and its quality figures are reported: loss, jitter, RTT, and
//! how closely bob's audio follows alice's speech. Runs as root (CI does);
//! skips with a reason elsewhere.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn speech_over_5pct_loss_and_40ms_jitter_gets_through_with_reported_quality() {
    if Command::new("python3").arg("--version").output().is_err() {
        cryptic_tests::skip("python3 is needed for the impairment relay");
        return;
    }
    let Some(lab) = Lab::build() else { return };
    assert!(
        lab.redirect_udp_between_peers(),
        "iptables in the router namespace"
    );
    let dir = TempDir::new("impaired");
    let Some(speech) = speech_wav(&dir.0) else {
        return;
    };
    let mut impairment = lab.impairment_relay("0.05", "40", "10", "7", "60");

    let _server = lab.start_server(&dir.0, &["alice", "bob"]);
    let heard = dir.0.join("bob-heard.wav");
    let bob_out = format!("wav:{}", heard.display());
    let mut bob = lab.listen(
        &dir.0,
        "bob",
        "b",
        &["--auto-accept", "--input", "silence", "--output", &bob_out],
    );
    let alice_in = format!("wav:{}", speech.display());
    let mut alice = lab.call(
        &dir.0,
        "alice",
        "a",
        "bob",
        &["--input", &alice_in, "--output", "null", "--duration", "8"],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(60)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    impairment.wait_exit_or_kill();
    let last_status = |p: &Proc| {
        p.output()
            .lines()
            .rfind(|l| l.contains("rtt="))
            .unwrap_or_default()
            .to_string()
    };
    println!(
        "alice: {}\nbob:   {}",
        last_status(&alice),
        last_status(&bob)
    );
    for p in [&alice, &bob] {
        assert!(
            p.output().contains("call ended: completed"),
            "{}",
            p.output()
        );
        assert!(p.output().contains("path=direct"), "{}", p.output());
    }
    let field = |line: &str, key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_end_matches(|c: char| !c.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let bob_line = last_status(&bob);
    let loss = field(&bob_line, "loss=");
    let rtt = field(&last_status(&alice), "rtt=");
    assert!((1.0..=12.0).contains(&loss), "bob's measured loss {loss}%");
    assert!(
        (60.0..=150.0).contains(&rtt),
        "alice's measured RTT {rtt} ms"
    );

    let sent = cryptic_audio::read_wav_48k_mono(&speech).unwrap();
    let got = cryptic_audio::read_wav_48k_mono(&heard).unwrap();
    let (a, b) = (envelope(&sent), envelope(&got));
    let (_, lag) = best_alignment(&a, &b, 400);
    let (mean, per_second) = segment_alignment(&a, &b, lag, 100, 15);
    println!("quality: loss {loss}%, rtt {rtt} ms, per-second envelope correlation {mean:.3} {per_second:?}");
    assert!(mean > 0.8, "speech barely got through: {mean}");
    println!("{}", impairment.output());
}
