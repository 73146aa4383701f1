//! The speaker paces playback: a writer that gives the device a frame only
//! when [`Output::wants_frame`] says so (as a call does) keeps the device's
//! queue at most one callback period, a little slack and one frame deep,
//! through a real sound server (ALSA `default` -> PulseAudio null sink), so
//! no standing queue adds to mouth-to-ear delay.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use cryptic_audio::{Output, OutputOptions, SinkSpec};

#[test]
fn the_playback_queue_stays_within_a_period_and_a_frame_when_the_device_asks() {
    let Some(pulse) = common::pulse_or_skip("paced-playback") else {
        return;
    };
    pulse.route_alsa_here();
    let mut output = Output::open(&SinkSpec::Default, OutputOptions::default()).unwrap();
    assert_eq!(
        output.wants_frame(),
        Some(true),
        "a device that has not started playing wants frames"
    );
    let frame = [0i16; 960];
    // Written only when asked, polled every 2 ms as a call does.
    let feed = |output: &mut Output| {
        let mut n = 0u64;
        while n < 4 && output.wants_frame() == Some(true) {
            output.write_frame(&frame).unwrap();
            n += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
        n
    };
    // An idle null sink renders up to 2 s ahead; once low-latency clients
    // are attached it catches up (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut polls = 0u64;
    loop {
        feed(&mut output);
        polls += 1;
        // ... and the device is playing from the ring: before that it is
        // primed with a frame and a half (two frames written, 40 ms), which
        // a loaded machine can stretch into the measured window.
        let playing = output.stats().queued_samples < 30 * 48;
        if polls.is_multiple_of(10)
            && playing
            && pulse.sink_latency_usec("spk").is_some_and(|l| l < 100_000)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the null sink never reached a low latency"
        );
    }
    let start = Instant::now();
    let (mut max_queued, mut written, mut polls) = (0usize, 0u64, 0u64);
    while start.elapsed() < Duration::from_secs(3) {
        written += feed(&mut output);
        max_queued = max_queued.max(output.stats().queued_samples);
        polls += 1;
    }
    let stats = output.stats();
    eprintln!(
        "written {written} frames, most queued {max_queued} samples ({:.1} ms) over {polls} polls, underruns {}",
        max_queued as f64 / 48.0,
        stats.underruns
    );
    // Three seconds of 20 ms frames: the device asked at its own pace.
    assert!((130..=170).contains(&written), "wrote {written} frames");
    // One period (5 ms), the slack (4 ms) and the frame just written
    // (20 ms), at 48 kHz, with a period's room for a late poll.
    assert!(
        max_queued <= (5 + 4 + 20 + 5) * 48,
        "the queue grew to {max_queued} samples"
    );
}
