//! A room with an echo path, through real sound devices: alice's client
//! plays and records through a private PulseAudio daemon in which what her
//! speaker plays comes back into her microphone 60 ms later at about
//! -18 dB (`module-loopback`, see `../shared/TESTING.md`). Bob talks (a
//! speech WAV) and records what he hears.
//!
//! With the canceller (on by default with a microphone) bob does not hear
//! himself: what comes back is at least 40 dB under his own speech. With
//! `--no-aec` the same room sends his voice back at about -20 dB, which
//! shows the echo path is real. And alice's own voice, spoken into her
//! microphone, still reaches bob.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use cryptic_tests::pulse::pulse_or_skip_with;

/// Energy of `x` over energy of `reference`, in dB.
fn level_db(x: &[i16], reference: &[i16]) -> f64 {
    let e = |s: &[i16]| s.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
    10.0 * (e(x).max(1.0) / e(reference).max(1.0)).log10()
}

/// Who talks in a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Talker {
    /// Bob (a speech WAV); alice's room only sends his echo back.
    Bob,
    /// Alice, into her microphone; bob is silent.
    Alice,
}

/// One call between bob and alice in her room; returns how loud bob's
/// recording is relative to the speech that was said.
fn heard_by_bob_db(
    world: &World,
    pulse: &cryptic_tests::pulse::Pulse,
    talker: Talker,
    alice_flags: &[&str],
) -> f64 {
    let speech = speech_wav(&world.dir.0).expect("speech (checked before)");
    let heard = world.path("bob-heard.wav");
    let _ = std::fs::remove_file(&heard);
    let input = match talker {
        Talker::Bob => format!("wav:{}", speech.display()),
        Talker::Alice => "silence".to_string(),
    };
    let output = format!("wav:{}", heard.display());
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", &input, "--output", &output],
    );
    let profile = world.profile("alice");
    let mut args = vec![
        "call",
        "bob",
        "--profile",
        profile.to_str().unwrap(),
        "--input",
        "default",
        "--output",
        "default",
        "--duration",
        "9",
    ];
    args.extend_from_slice(alice_flags);
    let home = pulse.dir().join("home");
    let run = pulse.dir().join("run");
    let env = [
        ("PULSE_SERVER", pulse.server.as_str()),
        ("HOME", home.to_str().unwrap()),
        ("XDG_RUNTIME_DIR", run.to_str().unwrap()),
    ];
    let how = cryptic_tests::Spawn {
        env: &env,
        ..cryptic_tests::Spawn::default()
    };
    let mut alice = Proc::start_with("alice", BIN, &args, how);
    let mut voice = (talker == Talker::Alice).then(|| {
        alice.wait_for("call secured", Duration::from_secs(20));
        pulse
            .command("paplay")
            .arg("--device=micfeed")
            .arg(&speech)
            .spawn()
            .unwrap()
    });
    assert!(
        alice.wait_exit(Duration::from_secs(60)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(20)), "{}", bob.output());
    if let Some(v) = voice.as_mut() {
        assert!(
            matches!(v.try_wait(), Ok(Some(s)) if s.success()),
            "paplay played alice's voice into her microphone"
        );
    }
    for (who, p) in [("alice", &alice), ("bob", &bob)] {
        assert!(
            p.output().contains("call ended: completed"),
            "{who}: {}",
            p.output()
        );
    }
    let said = cryptic_audio::read_wav_48k_mono(&speech).unwrap();
    let got = cryptic_audio::read_wav_48k_mono(&heard).unwrap();
    level_db(&got, &said)
}

#[test]
fn with_the_echo_canceller_bob_does_not_hear_himself_through_alices_room() {
    // The echo path: alice's speaker back into her microphone.
    let echo = "load-module module-loopback source=spk.monitor sink=micfeed latency_msec=60 \
                source_dont_move=true sink_dont_move=true\n";
    let Some(pulse) = pulse_or_skip_with("echo-room", echo) else {
        return;
    };
    let inputs = pulse
        .pactl(&["list", "short", "sink-inputs"])
        .unwrap_or_default();
    let loopback = inputs
        .lines()
        .find(|l| l.contains("module-loopback"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the loopback's sink input")
        .to_string();
    assert!(pulse
        .pactl(&["set-sink-input-volume", &loopback, "50%"])
        .is_some());
    let world = World::start("echo-room", &["alice", "bob"]);
    if speech_wav(&world.dir.0).is_none() {
        return;
    }
    let without = heard_by_bob_db(&world, &pulse, Talker::Bob, &["--no-aec"]);
    let with = heard_by_bob_db(&world, &pulse, Talker::Bob, &[]);
    let alice_voice = heard_by_bob_db(&world, &pulse, Talker::Alice, &[]);
    println!(
        "bob hears himself at {without:.1} dB without the canceller, {with:.1} dB with it; \
         alice's own voice reaches him at {alice_voice:.1} dB with it"
    );
    assert!(
        without > -30.0,
        "the room's echo path carries bob's voice back ({without:.1} dB)"
    );
    assert!(
        with < -40.0,
        "with the canceller bob's voice comes back at {with:.1} dB"
    );
    assert!(
        alice_voice > -15.0,
        "the canceller lets alice's own voice through ({alice_voice:.1} dB)"
    );
}
