//! `input NAME` and `output NAME` in the shell take effect at once during a
//! call (before, they applied from the next call): the new device opens
//! first and replaces the old one; a name that is no device is refused in
//! one line and the call goes on. Real processes, the real server:
//!
//! - the speaker switches from `null` to a WAV file mid-call, and the file
//!   holds the peer's tone from then to the end without a gap;
//! - with the private PulseAudio daemon of the test kit, the speaker
//!   switches from `null` to the sound card (`default`, the null sink
//!   `spk`), and the peer's tone is recorded from `spk.monitor`.
//!
//! `cargo test -p cryptic-call --test the-shell-switches-devices-mid-call -- --nocapture`

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// bob's shell with `--auto-answer`, silent microphone, no speaker.
fn bob_shell(world: &World, env: &[(&str, &str)]) -> Proc {
    let profile = world.profile("bob");
    let mut bob = Proc::start_with(
        "bob",
        BIN,
        &[
            "shell",
            "--profile",
            profile.to_str().unwrap(),
            "--auto-answer",
            "--input",
            "silence",
            "--output",
            "null",
        ],
        cryptic_tests::Spawn {
            env,
            ..Default::default()
        },
    );
    bob.wait_for("signed in as bob", Duration::from_secs(20));
    bob
}

fn rms(samples: &[i16]) -> f64 {
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64)
        .sqrt()
}

#[test]
fn the_speaker_switches_to_a_file_at_once_and_a_bad_name_is_refused_in_one_line() {
    let world = World::start("switch-file", &["alice", "bob"]);
    let mut bob = bob_shell(&world, &[]);
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone:440", "--output", "null", "--duration", "8"],
    );
    bob.wait_for("call secured", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));

    bob.type_line("output no-such-speaker");
    let refused = bob.wait_for("no-such-speaker", Duration::from_secs(5));
    assert!(refused.contains("(the call goes on)"), "{refused}");

    let wav = world.path("switched.wav");
    bob.type_line(&format!("output wav:{}", wav.display()));
    bob.wait_for("[bob] speaker: wav:", Duration::from_secs(5));
    let switched = Instant::now();
    bob.type_line("input tone:880");
    bob.wait_for("[bob] microphone: tone:880", Duration::from_secs(5));

    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    let ended = bob.wait_for("call ended", Duration::from_secs(10));
    let played = switched.elapsed();
    assert!(ended.contains("completed (alice hung up)"), "{ended}");
    let samples = cryptic_audio::read_wav_48k_mono(&wav).unwrap();
    let secs = samples.len() as f64 / 48_000.0;
    let gap = longest_silence(&wav);
    println!(
        "the file got {secs:.2} s of audio ({:?} from the switch to the end), RMS {:.0}, longest gap {gap:?}",
        played,
        rms(&samples)
    );
    assert!(secs >= 4.0 && secs <= played.as_secs_f64() + 0.5, "{secs}");
    assert!(rms(&samples) > 1000.0);
    assert!(gap <= Duration::from_millis(200), "{gap:?}");
    // The choice is kept for the next calls, in config.toml.
    let config = std::fs::read_to_string(world.profile("bob").join("config.toml")).unwrap();
    assert!(
        config.contains("switched.wav") && config.contains("tone:880"),
        "{config}"
    );
    let out = bob.output();
    assert_eq!(out.matches("no-such-speaker").count(), 1, "{out}");
    assert!(!out.contains("not during a call"), "{out}");
}

#[test]
fn the_speaker_switches_to_the_sound_card_mid_call() {
    let Some(pulse) = cryptic_tests::pulse::pulse_or_skip("switch-card") else {
        return;
    };
    let world = World::start("switch-card", &["alice", "bob"]);
    let home = pulse.dir().join("home");
    let run = pulse.dir().join("run");
    let env = [
        ("PULSE_SERVER", pulse.server.as_str()),
        ("HOME", home.to_str().unwrap()),
        ("XDG_RUNTIME_DIR", run.to_str().unwrap()),
    ];
    let mut bob = bob_shell(&world, &env);
    let mut alice = world.call(
        "alice",
        "bob",
        &["--input", "tone:440", "--output", "null", "--duration", "8"],
    );
    bob.wait_for("call secured", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));

    let record = |name: &str| {
        let path = pulse.dir().join(name);
        let child = pulse
            .command("parecord")
            .args([
                "--device=spk.monitor",
                "--raw",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=10",
            ])
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        (path, child)
    };
    let stop = |(path, mut child): (std::path::PathBuf, std::process::Child)| {
        std::thread::sleep(Duration::from_secs(2));
        let _ = child.kill();
        let _ = child.wait();
        let bytes = std::fs::read(path).unwrap();
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        rms(&samples)
    };
    // Before the switch the sound card plays nothing.
    let before = stop(record("before.raw"));
    bob.type_line("output default");
    bob.wait_for("[bob] speaker: ", Duration::from_secs(5));
    let after = stop(record("after.raw"));
    println!("spk.monitor RMS before the switch {before:.0}, after {after:.0}");
    assert!(before < 100.0, "{before}");
    assert!(after > 1000.0, "{after}");

    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    let ended = bob.wait_for("call ended", Duration::from_secs(10));
    assert!(ended.contains("completed (alice hung up)"), "{ended}");
}
