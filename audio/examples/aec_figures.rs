//! Echo cancellation figures on one recording, for each engine in the same
//! run: a room where what the speaker plays comes back into the microphone
//! 60 ms later at -18 dB with a short reverberant tail.
//!
//! The far end talks alone for 6 s (echo only in the microphone), then both
//! talk for 6 s. Prints per engine: ERLE in far-end single talk after 2 s
//! (echo energy in / out), the CPU per 10 ms frame (render + capture), and
//! writes the double-talk section (processed) as `OUT/<engine>-dt.wav`,
//! beside `OUT/near-dt.wav` (near-end speech alone) and `OUT/mic-dt.wav`
//! (the microphone unprocessed), for PESQ by `audio/quality/aec.sh`.
//!
//! Usage: `aec_figures FAR.wav NEAR.wav OUT_DIR` (48 kHz mono; any WAV is
//! converted). Build with `--features webrtc-apm` to measure PulseAudio's
//! library beside sonora.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use cryptic_audio::{
    read_wav_48k_mono, Processing, ProcessingConfig, Sonora, PROCESSING_FRAME, WAV_SPEC,
};

const RATE: usize = 48_000;
const PHASE: usize = 6 * RATE;
const FRAMES: usize = 2 * PHASE / PROCESSING_FRAME;

/// The room: (delay in ms, gain) taps, the direct echo at -18 dB.
const ROOM: [(usize, f64); 4] = [(60, 0.126), (67, 0.06), (79, 0.03), (95, 0.015)];

fn echo_of(far: &[i16]) -> Vec<f64> {
    let mut out = vec![0.0; far.len()];
    for (ms, g) in ROOM {
        let d = ms * RATE / 1000;
        for (i, o) in out.iter_mut().enumerate().skip(d) {
            *o += g * f64::from(far[i - d]);
        }
    }
    out
}

/// `n` samples of `x`, repeated as needed.
fn looped(x: &[i16], n: usize) -> Vec<i16> {
    x.iter().copied().cycle().take(n).collect()
}

struct Figures {
    erle_db: f64,
    cpu_per_frame: Duration,
    double_talk: Vec<i16>,
}

fn run(p: &mut dyn Processing, far: &[i16], mic: &[i16]) -> Figures {
    let (mut e_in, mut e_out) = (0.0, 0.0);
    let mut out = Vec::with_capacity(mic.len());
    let mut busy = Duration::ZERO;
    for f in 0..FRAMES {
        let at = f * PROCESSING_FRAME;
        let mut render = [0i16; PROCESSING_FRAME];
        render.copy_from_slice(&far[at..at + PROCESSING_FRAME]);
        let mut near = [0i16; PROCESSING_FRAME];
        near.copy_from_slice(&mic[at..at + PROCESSING_FRAME]);
        let before: f64 = near.iter().map(|&s| f64::from(s).powi(2)).sum();
        let t = Instant::now();
        p.render(&render);
        p.capture(&mut near);
        busy += t.elapsed();
        // Far-end single talk, after the first two seconds.
        if (2 * RATE..PHASE).contains(&at) {
            e_in += before;
            e_out += near.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
        out.extend_from_slice(&near);
    }
    Figures {
        erle_db: 10.0 * (e_in / e_out.max(1.0)).log10(),
        cpu_per_frame: busy / FRAMES as u32,
        double_talk: out[PHASE..].to_vec(),
    }
}

fn write(path: &Path, samples: &[i16]) {
    let mut w = hound::WavWriter::create(path, WAV_SPEC).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: aec_figures FAR.wav NEAR.wav OUT_DIR");
        std::process::exit(2);
    }
    let far = looped(&read_wav_48k_mono(Path::new(&args[1])).unwrap(), 2 * PHASE);
    let near_speech = looped(&read_wav_48k_mono(Path::new(&args[2])).unwrap(), PHASE);
    let out = Path::new(&args[3]);
    let echo = echo_of(&far);
    let mic: Vec<i16> = (0..2 * PHASE)
        .map(|i| {
            let near = if i >= PHASE {
                f64::from(near_speech[i - PHASE])
            } else {
                0.0
            };
            (echo[i] + near).clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    write(&out.join("near-dt.wav"), &near_speech);
    write(&out.join("mic-dt.wav"), &mic[PHASE..]);
    let echo_level = {
        let e: f64 = echo[..PHASE].iter().map(|s| s * s).sum();
        let f: f64 = far[..PHASE].iter().map(|&s| f64::from(s).powi(2)).sum();
        10.0 * (e / f).log10()
    };
    println!("echo path: {echo_level:.1} dB of the far end, direct at 60 ms");
    let mut engines: Vec<(&str, Box<dyn Processing>)> = vec![(
        "sonora",
        Box::new(Sonora::new(
            ProcessingConfig::none().with_echo_cancellation(true),
        )),
    )];
    #[cfg(feature = "webrtc-apm")]
    engines.push((
        "webrtc",
        Box::new(
            cryptic_audio::processing::WebRtcApm::new(
                ProcessingConfig::none().with_echo_cancellation(true),
            )
            .unwrap(),
        ),
    ));
    for (name, engine) in &mut engines {
        let f = run(engine.as_mut(), &far, &mic);
        println!(
            "{name:<7} {:<45} ERLE after 2 s {:>5.1} dB, CPU {:>4} us per 10 ms frame",
            engine.name(),
            f.erle_db,
            f.cpu_per_frame.as_micros()
        );
        write(&out.join(format!("{name}-dt.wav")), &f.double_talk);
    }
}
