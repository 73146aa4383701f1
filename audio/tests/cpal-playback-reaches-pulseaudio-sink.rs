//! A real sound server as the speaker: what we play through cpal (ALSA
//! `default` -> PulseAudio null sink) must reach the sink, as recorded from
//! its monitor by parecord.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cryptic_audio::{FrameClock, Output, OutputOptions, SinkSpec};

#[test]
fn audio_played_through_cpal_reaches_the_pulseaudio_sink() {
    let Some(pulse) = common::pulse_or_skip("playback") else {
        return;
    };
    pulse.route_alsa_here();

    let raw = pulse.dir().join("spk.raw");
    let mut parecord = pulse
        .command("parecord")
        .args([
            "--device=spk.monitor",
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=1",
            "--latency-msec=20",
        ])
        .arg(&raw)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // wait (bounded) until the recorder is attached to the monitor
    let deadline = Instant::now() + Duration::from_secs(5);
    while pulse
        .pactl(&["list", "short", "source-outputs"])
        .is_none_or(|s| s.trim().is_empty())
    {
        assert!(Instant::now() < deadline, "parecord never attached");
        std::thread::sleep(Duration::from_millis(20));
    }

    let reference = common::noise_bursts(11, 48_000 * 2);
    let mut output = Output::open(&SinkSpec::Default, OutputOptions::default()).unwrap();
    let silence = [0i16; 960];
    let frames: Vec<&[i16]> = reference
        .chunks_exact(960)
        .chain(std::iter::repeat_n(&silence[..], 25))
        .collect();
    // play in real time, one frame per 20 ms as the jitter buffer would
    let mut clock = FrameClock::new(Duration::from_millis(20));
    // An idle null sink renders up to 2 s ahead; once low-latency clients
    // are attached it catches up. Feed silence (bounded) until it has.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if clock.take(Instant::now()) {
            output.write_frame(&silence).unwrap();
            if clock.frames().is_multiple_of(5)
                && pulse.sink_latency_usec("spk").is_some_and(|l| l < 100_000)
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the null sink never reached a low latency"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let our queue drain (the silence queued during the stall), then
    // start the signal on a fresh clock.
    let deadline = Instant::now() + Duration::from_secs(1);
    while output.stats().queued_samples > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut clock = FrameClock::new(Duration::from_millis(20));
    let before = output.stats();
    let mut next = frames.iter();
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let now = Instant::now();
        assert!(now < deadline, "playback loop overran");
        if clock.take(now) {
            let Some(f) = next.next() else { break };
            output.write_frame(f).unwrap();
        }
        while let Some(e) = output.poll_event() {
            eprintln!("event: {e}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let stats = output.stats();
    eprintln!("before the signal: {before:?}");
    drop(output);
    // SIGTERM by process id lets parecord flush what it buffered
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &parecord.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while parecord.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = parecord.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let bytes = std::fs::read(&raw).unwrap();
    let recorded: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(
        recorded.len() > reference.len(),
        "sink recorded only {} samples; {stats:?}",
        recorded.len()
    );
    let max_lag = recorded.len() - reference.len();
    let (lag, ncc) = common::align(&reference, &recorded, max_lag);
    eprintln!(
        "sink recorded {} samples; our audio found at {:.1} ms, cross-correlation {ncc:.4}; {stats:?}",
        recorded.len(),
        lag as f64 / 48.0
    );
    assert!(lag >= 0, "alignment before the recording started: {lag}");
    // A glitch of the sound server (an underrun on a loaded machine) shifts
    // what follows it: judge 200 ms pieces, each aligned on its own.
    let pieces = common::align_pieces(&reference, &recorded, max_lag);
    let good = pieces.iter().filter(|&&c| c > 0.9).count();
    eprintln!("pieces matching above 0.9: {good} of {}", pieces.len());
    assert!(
        ncc > 0.9 || good * 10 >= pieces.len() * 8,
        "what reached the sink does not match what we played: ncc {ncc:.4}, pieces {pieces:.3?}"
    );
}
