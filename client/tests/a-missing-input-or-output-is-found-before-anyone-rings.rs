//! A bad `--input` or `--output` (a missing file, a directory that cannot
//! be written, a sound device that is not there) is an error before the
//! invite leaves: the caller exits with code 2 and one line naming it
//! (ALSA's own complaints stay off the terminal), and the callee's phone
//! never rings for that attempt.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_missing_input_file_or_unwritable_output_fails_before_the_invite() {
    let world = World::start("precheck", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let missing = world.path("no-such-file.wav");
    let unwritable = world.path("no-such-dir").join("out.wav");
    for (args, what) in [
        (
            vec!["--input", missing.to_str().unwrap(), "--output", "null"],
            "input",
        ),
        (
            vec![
                "--input",
                "silence",
                "--output",
                unwritable.to_str().unwrap(),
            ],
            "output",
        ),
    ] {
        let mut alice = world.call("alice", "bob", &args);
        assert!(
            alice.wait_exit(Duration::from_secs(20)),
            "{}",
            alice.output()
        );
        assert_eq!(alice.code, Some(2), "{}", alice.output());
        assert!(alice.output().contains(what), "{}", alice.output());
    }
    // Mistakes about the peer are named too.
    for (peer, words) in [
        ("alice", "you cannot call yourself"),
        ("zed", "no such user, or zed never signed in"),
    ] {
        let mut alice = world.call("alice", peer, &["--input", "silence", "--output", "null"]);
        assert!(
            alice.wait_exit(Duration::from_secs(20)),
            "{}",
            alice.output()
        );
        assert_eq!(alice.code, Some(2), "{}", alice.output());
        assert!(alice.output().contains(words), "{}", alice.output());
    }
    // Bob rings for the first good call only.
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
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    assert_eq!(
        bob.output().matches("incoming call from alice").count(),
        1,
        "{}",
        bob.output()
    );
}

#[test]
fn a_missing_sound_device_is_one_line_without_alsa_noise() {
    let world = World::start("nodevice", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "silence", "--output", "null"],
    );
    let profile = world.profile("alice");
    let profile = profile.to_str().unwrap();
    // A PulseAudio that is not there stands for a machine with no sound
    // card (Debian's ALSA `default` goes to PulseAudio); and a device
    // name that does not exist.
    for (args, words) in [
        (
            vec!["call", "bob", "--profile", profile, "--output", "null"],
            "no usable microphone (default)",
        ),
        (
            vec!["call", "bob", "--profile", profile, "--input", "silence"],
            "no usable speaker (default)",
        ),
        (
            vec![
                "call",
                "bob",
                "--profile",
                profile,
                "--input",
                "device:no-such-card",
                "--output",
                "null",
            ],
            "no usable microphone (device:no-such-card)",
        ),
    ] {
        let mut alice = Proc::start_with(
            "alice",
            BIN,
            &args,
            cryptic_tests::Spawn {
                env: &[("PULSE_SERVER", "unix:/nonexistent/pulse")],
                ..Default::default()
            },
        );
        assert!(
            alice.wait_exit(Duration::from_secs(20)),
            "{}",
            alice.output()
        );
        if alice.code == Some(0) {
            cryptic_tests::skip("this machine has a sound card: the default device opened");
            return;
        }
        let out = alice.output();
        assert_eq!(alice.code, Some(2), "{out}");
        assert!(out.contains(words), "{out}");
        assert!(!out.contains("ALSA lib"), "ALSA's noise shown: {out}");
        assert_eq!(out.lines().count(), 1, "one line: {out}");
    }
    bob.kill();
    assert!(
        !bob.output().contains("incoming call"),
        "bob rang: {}",
        bob.output()
    );
}
