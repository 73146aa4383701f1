//! The devices wake the call's loop after every period they capture or
//! play ([`DeviceWaker`]), through a real sound server (ALSA `default` ->
//! PulseAudio null sink and its monitor): a writer and reader woken only by
//! them keep pace with both devices, with no fast poll.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use cryptic_audio::{
    DeviceWaker, Input, InputOptions, Output, OutputOptions, Read, SinkSpec, SourceSpec,
};

/// The devices wake their reader and writer after every period, so a call
/// needs no fast poll: once the sound server has settled, a writer that
/// sleeps until woken (never on a timer) keeps the speaker fed at its own
/// pace, and the microphone's frames are read as they complete.
#[test]
fn the_devices_wake_the_writer_and_the_reader_after_every_period() {
    let Some(pulse) = common::pulse_or_skip("device-waker") else {
        return;
    };
    pulse.route_alsa_here();
    let mut output = Output::open(&SinkSpec::Default, OutputOptions::default()).unwrap();
    let mut input = Input::open(&SourceSpec::Default, InputOptions::default()).unwrap();
    let (tx, rx) = mpsc::sync_channel::<()>(1);
    let wakes = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&wakes);
    let waker = DeviceWaker::new(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        // Never blocks the audio thread: a full channel already wakes us.
        let _ = tx.try_send(());
    });
    output.set_waker(waker.clone());
    input.set_waker(waker);
    let mut pcm = vec![0i16; input.frame_samples()];
    let (mut written, mut read) = (0u64, 0u64);
    // An idle null sink renders far ahead and its monitor delivers
    // nothing for a while: settle, polling, until the sink's latency is low
    // (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(8);
    while pulse.sink_latency_usec("spk").is_none_or(|l| l >= 100_000)
        || output.stats().queued_samples > 30 * 48
    {
        let _ = rx.recv_timeout(Duration::from_millis(2));
        let (w, r) = turn(&mut output, &mut input, &mut pcm);
        (written, read) = (written + w, read + r);
        assert!(
            Instant::now() < deadline,
            "the null sink never reached a low latency"
        );
    }
    let (before, written_before, read_before) = (wakes.load(Ordering::Relaxed), written, read);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        // Only the devices wake us now (the timeout is a fuse: a loaded
        // machine's sound server has stalled both streams for 200 ms).
        assert!(
            rx.recv_timeout(Duration::from_secs(1)).is_ok(),
            "no device woke the loop for a second, {:?} in",
            start.elapsed()
        );
        let (w, r) = turn(&mut output, &mut input, &mut pcm);
        (written, read) = (written + w, read + r);
    }
    let wakes = wakes.load(Ordering::Relaxed) - before;
    let (written, read) = (written - written_before, read - read_before);
    eprintln!(
        "3 s woken only by the devices: {wakes} wake-ups, {written} frames written, {read} read, underruns {}",
        output.stats().underruns
    );
    // Two streams of 5 ms periods: about 1 200 wake-ups in 3 s.
    assert!(wakes >= 600, "{wakes} wake-ups");
    // 3 s of 20 ms frames each way, paced by the devices alone.
    assert!((130..=170).contains(&written), "wrote {written} frames");
    assert!((130..=170).contains(&read), "read {read} frames");
}

/// Feeds the speaker what it wants and reads every complete frame:
/// (frames written, frames read).
fn turn(output: &mut Output, input: &mut Input, pcm: &mut [i16]) -> (u64, u64) {
    let frame = [0i16; 960];
    let (mut written, mut read) = (0, 0);
    while written < 4 && output.wants_frame() == Some(true) {
        output.write_frame(&frame).unwrap();
        written += 1;
    }
    while input.read_frame(Instant::now(), pcm).unwrap() == Read::Frame {
        read += 1;
    }
    (written, read)
}
