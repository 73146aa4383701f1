//! The sound server dies mid-call: our capture and playback must report it
//! as events or errors, never panic or hang.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use cryptic_audio::{
    AudioEvent, Direction, Error, Input, InputOptions, Output, OutputOptions, Read, SinkSpec,
};

#[test]
fn killing_the_sound_server_mid_stream_is_reported_without_panicking() {
    let Some(mut pulse) = common::pulse_or_skip("loss") else {
        return;
    };
    pulse.route_alsa_here();
    // the PulseAudio PCM is listed, and opens by name
    let devices = cryptic_audio::list_devices().unwrap();
    eprintln!("devices: {devices:?}");
    assert!(
        devices
            .iter()
            .any(|d| d.id == "pulse" && d.input && d.output),
        "ALSA's pulse device is not listed"
    );
    let mut input = Input::open(&"device:pulse".parse().unwrap(), InputOptions::default()).unwrap();
    let mut output = Output::open(&SinkSpec::Default, OutputOptions::default()).unwrap();
    let mut frame = [0i16; 960];

    // audio flows: the microphone delivers frames
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    while got < 5 {
        assert!(
            Instant::now() < deadline,
            "no capture before the server died"
        );
        if input.read_frame(Instant::now(), &mut frame).unwrap() == Read::Frame {
            got += 1;
            output.write_frame(&frame).unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pulse.kill();

    // within a bounded time (errors with no audio for 3 s mean dead), both
    // directions tell us
    let mut events = Vec::new();
    let (mut input_told, mut output_told) = (false, false);
    let (mut input_failed, mut output_failed) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(8);
    while !(input_told && output_told && input_failed && output_failed) && Instant::now() < deadline
    {
        match input.read_frame(Instant::now(), &mut frame) {
            Err(Error::DeviceLost) => input_failed = true,
            Err(e) => panic!("unexpected capture error: {e}"),
            Ok(_) => {}
        }
        match output.write_frame(&[0; 960]) {
            Err(Error::DeviceLost) => output_failed = true,
            Err(e) => panic!("unexpected playback error: {e}"),
            Ok(()) => {}
        }
        while let Some(e) = input.poll_event().or_else(|| output.poll_event()) {
            if let AudioEvent::DeviceFailed { direction, .. } = &e {
                match direction {
                    Direction::Capture => input_told = true,
                    Direction::Playback => output_told = true,
                    _ => {}
                }
            }
            if !events.contains(&e) {
                events.push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("events after the server died: {events:?}");
    assert!(input_told, "capture sent no DeviceFailed event");
    assert!(output_told, "playback sent no DeviceFailed event");
    assert!(input_failed, "read_frame did not answer DeviceLost");
    assert!(output_failed, "write_frame did not answer DeviceLost");
}
