//! The sound-device floor of mouth to ear: the default microphone straight
//! to the default speaker, 10 ms frames (a microphone's in a call), paced
//! like a call (woken by the devices after every period: the microphone
//! read as soon as a frame is complete, the speaker fed when it wants a
//! frame, 10 ms at a time), with no codec, network or jitter buffer in
//! between.
//!
//! `audio/quality/device-latency.sh` runs it with `PASSTHROUGH=1`, to split
//! a call's mouth-to-ear delay into the devices' share and the stack's.
//! Usage: `cargo run --release -p cryptic-audio --example device_passthrough -- SECONDS [FRAME_MS]`
//! (FRAME_MS 10, the default, or 20: the frame the microphone is read in).

use std::time::{Duration, Instant};

use cryptic_audio::{
    DeviceWaker, FrameDuration, Input, InputOptions, Output, OutputOptions, Read, SinkSpec,
    SourceSpec,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let frame = match std::env::args().nth(2).as_deref() {
        Some("20") => FrameDuration::Ms20,
        _ => FrameDuration::Ms10,
    };
    let mut input = Input::open(
        &SourceSpec::Default,
        InputOptions::default().with_frame(frame),
    )?;
    // The speaker is fed 10 ms at a time, as a call feeds it.
    let mut output = Output::open(
        &SinkSpec::Default,
        OutputOptions::default().with_frame(FrameDuration::Ms10),
    )?;
    // The devices wake this thread after every period, as they wake a
    // call's loop; 10 ms is the fallback, as a call's.
    let me = std::thread::current();
    let waker = DeviceWaker::new(move || me.unpark());
    input.set_waker(waker.clone());
    output.set_waker(waker);
    let half = output.frame_samples();
    let mut pcm = vec![0i16; input.frame_samples()];
    let mut queue: Vec<i16> = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    // Where the time goes, averaged over the polls: the sound system's own
    // latency each way, and our two rings.
    let mut sums = [0f64; 4];
    let mut polls = 0u32;
    while Instant::now() < end {
        let now = Instant::now();
        while input.read_frame(now, &mut pcm)? == Read::Frame {
            queue.extend_from_slice(&pcm);
        }
        while output.wants_frame() == Some(true) {
            if queue.len() >= half {
                output.write_frame(&queue[..half])?;
                queue.drain(..half);
            } else {
                output.write_frame(&vec![0; half])?;
            }
        }
        let (i, o) = (input.stats(), output.stats());
        let ms = |samples: usize, rate: u32| samples as f64 * 1000.0 / f64::from(rate.max(1));
        for (sum, v) in sums.iter_mut().zip([
            i.device_latency.as_secs_f64() * 1000.0,
            ms(i.queued_samples, i.device_rate),
            ms(o.queued_samples, o.device_rate),
            o.device_latency.as_secs_f64() * 1000.0,
        ]) {
            *sum += v;
        }
        polls += 1;
        // Whatever the speaker does not want yet waits at most a frame.
        if queue.len() > 2 * pcm.len() {
            queue.drain(..pcm.len());
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let (i, o) = (input.stats(), output.stats());
    let [cap, cap_ring, play_ring, play] = sums.map(|s| s / f64::from(polls.max(1)));
    eprintln!(
        "mean over the run: capture device {cap:.1} ms, capture ring {cap_ring:.1} ms, \
         playback ring {play_ring:.1} ms, playback device {play:.1} ms ({} Hz)",
        o.device_rate
    );
    eprintln!(
        "capture: {} frames, {} dropped; playback: {} frames, {} underruns",
        i.frames, i.dropped_samples, o.frames, o.underruns
    );
    Ok(())
}
