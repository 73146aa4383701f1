//! What catching up costs the listener: speech whose play-out must lose
//! 300 ms (the backlog a 300 ms delay spike leaves), either by dropping
//! whole 20 ms frames (one in four, as a buffer without time-stretch does)
//! or by playing frames one pitch period shorter (every frame that allows
//! it, as our buffer asks while it is a frame or more too deep), from the
//! third second on. Writes both, and the untouched speech, as 48 kHz WAVs
//! for `audio/quality/stretch-cost.sh` to score with PESQ.
//!
//! `stretch_cost IN.wav OUT_DIR`

use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptic_audio::stretch::{stretch, Stretched};
use cryptic_audio::{
    Input, InputOptions, Output, OutputOptions, Pacing, Read, SinkSpec, SourceSpec,
};

const FRAME: usize = 960;
/// The backlog to lose: 300 ms at 48 kHz.
const BACKLOG: usize = 14_400;
/// Catching up starts after this many frames (3 s).
const START: usize = 150;

fn write(path: &Path, pcm: &[i16]) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = Output::open(&SinkSpec::Wav(path.to_path_buf()), OutputOptions::default())?;
    for f in pcm.chunks_exact(FRAME) {
        out.write_frame(f)?;
    }
    out.finish()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: stretch_cost IN.wav OUT_DIR".into());
    }
    let dir = PathBuf::from(&args[2]);
    let opts = InputOptions::default().with_pacing(Pacing::AsFastAsPossible);
    let mut input = Input::open(&SourceSpec::Wav(PathBuf::from(&args[1])), opts)?;
    let mut frames = Vec::new();
    let mut pcm = [0i16; FRAME];
    while input.read_frame(Instant::now(), &mut pcm)? == Read::Frame {
        frames.push(pcm);
    }

    let (mut dropped, mut dropping) = (0, Vec::new());
    for (i, f) in frames.iter().enumerate() {
        if i >= START && dropped < BACKLOG && (i - START) % 4 == 3 {
            dropped += FRAME;
            continue;
        }
        dropping.extend_from_slice(f);
    }

    let (mut cut, mut stretched, mut out, mut ops) = (0, Vec::new(), Vec::new(), 0);
    for (i, f) in frames.iter().enumerate() {
        if i >= START && cut < BACKLOG {
            if let Stretched::Shortened(n) = stretch(f, true, &mut out) {
                cut += n;
                ops += 1;
            }
            stretched.extend_from_slice(&out);
        } else {
            stretched.extend_from_slice(f);
        }
    }
    // Whole frames for the WAV sink.
    stretched.resize(stretched.len() / FRAME * FRAME, 0);

    write(&dir.join("reference.wav"), frames.as_flattened())?;
    write(&dir.join("dropping.wav"), &dropping)?;
    write(&dir.join("stretching.wav"), &stretched)?;
    let ms = |n: usize| n * 1000 / 48_000;
    println!(
        "dropping: {} ms lost in {} frames; stretching: {} ms lost in {ops} frames over {} s",
        ms(dropped),
        dropped / FRAME,
        ms(cut),
        frames.len().saturating_sub(START) as f64 * 0.02
    );
    Ok(())
}
