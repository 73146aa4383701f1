//! A real sound server as the microphone: PulseAudio plays a WAV file into
//! a null sink whose monitor is the default source; our cpal capture
//! (ALSA `default` -> PulseAudio) must deliver the same waveform.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cryptic_audio::{Input, InputOptions, Read, SourceSpec};

#[test]
fn captured_audio_matches_the_wav_played_into_the_microphone() {
    let Some(pulse) = common::pulse_or_skip("capture") else {
        return;
    };
    pulse.route_alsa_here();

    let reference = common::noise_bursts(7, 48_000 * 2);
    let wav = pulse.dir().join("mic.wav");
    common::write_wav(&wav, &reference);

    let mut input = Input::open(&SourceSpec::Default, InputOptions::default()).unwrap();
    let mut captured: Vec<i16> = Vec::new();
    let mut frame = [0i16; 960];
    let mut drain = |input: &mut Input, captured: &mut Vec<i16>| {
        while input.read_frame(Instant::now(), &mut frame).unwrap() == Read::Frame {
            captured.extend_from_slice(&frame);
        }
        if let Some(e) = input.poll_event() {
            eprintln!("event: {e}");
        }
    };

    // let the stream settle, then feed the microphone in real time
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        drain(&mut input, &mut captured);
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut paplay = pulse
        .command("paplay")
        .arg("--device=micfeed")
        .arg(&wav)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut finished_at = None;
    while Instant::now() < deadline {
        drain(&mut input, &mut captured);
        if finished_at.is_none() && paplay.try_wait().unwrap().is_some() {
            finished_at = Some(Instant::now());
        }
        if finished_at.is_some_and(|t| t.elapsed() > Duration::from_millis(400)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = paplay.kill();
    let status = paplay.wait().unwrap();
    assert!(status.success(), "paplay failed: {status}");
    assert!(
        captured.len() >= reference.len(),
        "captured only {} samples",
        captured.len()
    );

    let (lag, ncc) = common::align(&reference, &captured, 48_000);
    eprintln!(
        "captured {} samples, WAV found at {:.1} ms, cross-correlation {ncc:.4}, stats {:?}",
        captured.len(),
        lag as f64 / 48.0,
        input.stats()
    );
    assert!(
        ncc > 0.9,
        "captured audio does not match the WAV: ncc {ncc:.4}"
    );
    // the capture may start a few milliseconds into the file, not later
    assert!(
        lag > -4_800,
        "capture missed the first {:.1} ms of the WAV",
        -lag as f64 / 48.0
    );
}
