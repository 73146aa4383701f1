//! A whole encrypted call with both users on real sound devices: one
//! private PulseAudio daemon holds alice's room (the default speaker `spk`
//! and microphone `mic`) and bob's (`bobspk`, `bobmic`, chosen for bob's
//! client with `PULSE_SINK`/`PULSE_SOURCE`). Both clients run
//! `--input default --output default`, so audio processing (echo canceller,
//! noise suppression, gain control) is on at both ends, as for a user. No
//! other flag: a microphone sends 10 ms frames by default, and alice's
//! jitter buffer, playing bob's frames, trims pauses by just its excess.
//!
//! Noise bursts go into bob's microphone; one stereo recording holds what
//! was said (left, bob's microphone feed) and what alice's speaker played
//! (right), through two loopbacks of equal latency. Every burst must reach
//! alice's speaker; the mouth-to-ear delay of each (device buffers
//! included) is printed, not asserted: `audio/quality/device-latency.sh`
//! is where it is measured.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const RATE: usize = 48_000;
/// Bursts said into bob's microphone, one a second.
const BURSTS: usize = 8;

/// Bob's room, and the recorder of both ends, beside alice's default one.
const ROOMS: &str = "\
load-module module-null-sink sink_name=bobspk format=s16le rate=48000 channels=1
load-module module-null-sink sink_name=bobfeed format=s16le rate=48000 channels=1
load-module module-remap-source master=bobfeed.monitor source_name=bobmic
load-module module-null-sink sink_name=rec format=s16le rate=48000 channels=2 channel_map=front-left,front-right
load-module module-loopback source=bobfeed.monitor sink=rec latency_msec=20 channels=1 channel_map=front-left source_dont_move=true sink_dont_move=true
load-module module-loopback source=spk.monitor sink=rec latency_msec=20 channels=1 channel_map=front-right source_dont_move=true sink_dont_move=true
";

/// 30 ms of noise once a second, after half a second of quiet (raw s16le).
fn bursts() -> Vec<u8> {
    let mut x = vec![0i16; RATE * (BURSTS + 1)];
    let mut seed = 0x2545_f491_u32;
    for b in 0..BURSTS {
        let at = RATE / 2 + b * RATE;
        for s in &mut x[at..at + RATE * 3 / 100] {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *s = ((seed >> 16) as i16) / 3;
        }
    }
    x.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Starts of sounds (RMS of a 1 ms window above about -30 dBFS after at
/// least 300 ms of quiet), in samples.
fn onsets(x: &[i16]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut quiet = usize::MAX / 2;
    for (i, w) in x.chunks_exact(RATE / 1000).enumerate() {
        let energy = w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64;
        if energy > 1000.0 * 1000.0 {
            if quiet >= 300 {
                out.push(i * RATE / 1000);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    out
}

#[test]
fn bobs_voice_reaches_alices_speaker_with_both_on_real_devices() {
    let Some(pulse) = cryptic_tests::pulse::pulse_or_skip_with("two-rooms", ROOMS) else {
        return;
    };
    let world = World::start("two-rooms", &["alice", "bob"]);
    let home = pulse.dir().join("home");
    let run = pulse.dir().join("run");
    let room = |sink: Option<&'static str>, source: Option<&'static str>| {
        let mut env = vec![
            ("PULSE_SERVER", pulse.server.clone()),
            ("HOME", home.to_str().unwrap().to_string()),
            ("XDG_RUNTIME_DIR", run.to_str().unwrap().to_string()),
        ];
        env.extend(sink.map(|s| ("PULSE_SINK", s.to_string())));
        env.extend(source.map(|s| ("PULSE_SOURCE", s.to_string())));
        env
    };
    let devices = ["--input", "default", "--output", "default"];
    let bob_env = room(Some("bobspk"), Some("bobmic"));
    let bob_env: Vec<(&str, &str)> = bob_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bob_profile = world.profile("bob");
    let mut bob_args = vec![
        "listen",
        "--profile",
        bob_profile.to_str().unwrap(),
        "--auto-accept",
    ];
    bob_args.extend_from_slice(&devices);
    let mut bob = Proc::start_with(
        "bob",
        BIN,
        &bob_args,
        cryptic_tests::Spawn {
            env: &bob_env,
            ..cryptic_tests::Spawn::default()
        },
    );
    bob.wait_for("waiting for a call", Duration::from_secs(20));

    let alice_env = room(None, None);
    let alice_env: Vec<(&str, &str)> = alice_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let alice_profile = world.profile("alice");
    let mut alice_args = vec!["call", "bob", "--profile", alice_profile.to_str().unwrap()];
    alice_args.extend_from_slice(&devices);
    alice_args.extend_from_slice(&["--duration", "12"]);
    let mut alice = Proc::start_with(
        "alice",
        BIN,
        &alice_args,
        cryptic_tests::Spawn {
            env: &alice_env,
            ..cryptic_tests::Spawn::default()
        },
    );
    alice.wait_for("call secured", Duration::from_secs(20));

    let recording = pulse.dir().join("rooms.raw");
    let mut parecord = pulse
        .command("parecord")
        .args([
            "--device=rec.monitor",
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=2",
            "--latency-msec=10",
        ])
        .arg(&recording)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // A second for both clients' devices and the null sinks to settle.
    std::thread::sleep(Duration::from_secs(1));
    let mut paplay = pulse
        .command("paplay")
        .args([
            "--device=bobfeed",
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=1",
            "--latency-msec=10",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    paplay.stdin.take().unwrap().write_all(&bursts()).unwrap();
    assert!(
        paplay.wait().unwrap().success(),
        "paplay fed bob's microphone"
    );
    std::thread::sleep(Duration::from_secs(1));
    let _ = parecord.kill();
    let _ = parecord.wait();

    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(20)), "{}", bob.output());
    for (who, p) in [("alice", &alice), ("bob", &bob)] {
        assert!(
            p.output().contains("call ended: completed"),
            "{who}: {}",
            p.output()
        );
    }
    let raw = std::fs::read(&recording).unwrap();
    let samples: Vec<i16> = raw
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let said: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let heard: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let (said, heard) = (onsets(&said), onsets(&heard));
    let mut delays: Vec<usize> = said
        .iter()
        .filter_map(|&s| {
            heard
                .iter()
                .find(|&&h| h > s && h < s + RATE / 2)
                .map(|h| (h - s) * 1000 / RATE)
        })
        .collect();
    delays.sort_unstable();
    println!(
        "{} bursts said into bob's microphone, {} heard from alice's speaker; mouth to ear \
         through both rooms' devices: {delays:?} ms (median {} ms)",
        said.len(),
        delays.len(),
        delays.get(delays.len() / 2).copied().unwrap_or(0)
    );
    assert_eq!(said.len(), BURSTS, "the recording holds every burst said");
    assert!(
        delays.len() >= BURSTS - 1,
        "bob's bursts reached alice's speaker: {} of {BURSTS}",
        delays.len()
    );
}
