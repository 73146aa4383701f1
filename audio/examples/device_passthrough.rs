//! The sound-device floor of mouth to ear: the default microphone straight
//! to the default speaker, 20 ms frames, paced like a call (the microphone
//! read as soon as a frame is complete, the speaker fed when it wants a
//! frame), with no codec, network or jitter buffer in between.
//!
//! `audio/quality/device-latency.sh` runs it with `PASSTHROUGH=1`, to split
//! a call's mouth-to-ear delay into the devices' share and the stack's.
//! Usage: `cargo run --release -p cryptic-audio --example device_passthrough -- SECONDS [POLL_MS]`
//! (POLL_MS, default 2: how often the rings are looked at; to weigh the
//! polling's CPU cost against the device stack's).

use std::time::{Duration, Instant};

use cryptic_audio::{Input, InputOptions, Output, OutputOptions, Read, SinkSpec, SourceSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let poll_ms: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2);
    let mut input = Input::open(&SourceSpec::Default, InputOptions::default())?;
    let mut output = Output::open(&SinkSpec::Default, OutputOptions::default())?;
    let mut pcm = vec![0i16; input.frame_samples()];
    let mut queue: Vec<i16> = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let now = Instant::now();
        while input.read_frame(now, &mut pcm)? == Read::Frame {
            queue.extend_from_slice(&pcm);
        }
        while output.wants_frame() == Some(true) {
            if queue.len() >= pcm.len() {
                output.write_frame(&queue[..pcm.len()])?;
                queue.drain(..pcm.len());
            } else {
                output.write_frame(&vec![0; pcm.len()])?;
            }
        }
        // Whatever the speaker does not want yet waits at most a frame.
        if queue.len() > 2 * pcm.len() {
            queue.drain(..pcm.len());
        }
        std::thread::sleep(Duration::from_millis(poll_ms));
    }
    let (i, o) = (input.stats(), output.stats());
    eprintln!(
        "capture: {} frames, {} dropped; playback: {} frames, {} underruns",
        i.frames, i.dropped_samples, o.frames, o.underruns
    );
    Ok(())
}
