//! Offline Opus round trip for the quality figures: reads a WAV, encodes
//! it at a constant bitrate, loses frames at random (seeded), rebuilds them
//! with FEC from the next packet when it arrived or conceals them, and
//! writes the decoded 48 kHz mono WAV.
//!
//! `opus_quality IN.wav OUT.wav BITRATE LOSS_PERCENT SEED [plc-only]`
//!
//! The encoder's settings to compare, from the environment:
//! `OPUS_TUNING=fidelity` (Opus's AUDIO application, as GStreamer's
//! `opusenc`, and the client's since this stop; default voice),
//! `OPUS_COMPLEXITY=0..10` (default 9),
//! `OPUS_FEC=0` (no in-band FEC even when frames are lost),
//! `OPUS_CBR=0` (constrained VBR, as GStreamer's default; ours is hard
//! CBR so that sizes do not leak speech), `OPUS_PLAN_LOSS=N` (the loss the encoder plans FEC for; default the
//! loss applied), `OPUS_CAP=BYTES` (the largest packet the encoder may
//! write: with `OPUS_CBR=0`, variable-bitrate frames capped at the
//! constant-bitrate size, to test whether padding such frames would beat
//! hard CBR; it does not: 3.21 against 3.18 at 24 kbit/s). Prints the
//! smallest, median and largest packet size. `OPUS_FRAME_MS=10` encodes
//! 10 ms frames (a microphone's in a call); `OPUS_TUNING=lowdelay` is
//! Opus's RESTRICTED_LOWDELAY application.

#[path = "shared/mod.rs"]
mod shared;

use std::path::PathBuf;
use std::time::Instant;

use cryptic_audio::{
    Encoder, EncoderConfig, FrameDuration, Input, InputOptions, Pacing, Read, SourceSpec, Tuning,
    MAX_PACKET,
};
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        return Err(
            "usage: opus_quality IN.wav OUT.wav BITRATE LOSS_PERCENT SEED [plc-only]".into(),
        );
    }
    let bitrate: u32 = args[3].parse()?;
    let loss: u8 = args[4].parse()?;
    let seed: u64 = args[5].parse()?;
    let use_fec = args.get(6).map(String::as_str) != Some("plc-only");
    let tuning = match std::env::var("OPUS_TUNING").as_deref() {
        Ok("fidelity") => Tuning::Fidelity,
        Ok("lowdelay") => Tuning::LowDelay,
        _ => Tuning::Voice,
    };
    let complexity: u8 = std::env::var("OPUS_COMPLEXITY")
        .ok()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(9);
    let fec = use_fec && std::env::var("OPUS_FEC").as_deref() != Ok("0");
    let plan: u8 = std::env::var("OPUS_PLAN_LOSS")
        .ok()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(loss);

    let frame = match std::env::var("OPUS_FRAME_MS").as_deref() {
        Ok("10") => FrameDuration::Ms10,
        _ => FrameDuration::Ms20,
    };
    let opts = InputOptions::default()
        .with_pacing(Pacing::AsFastAsPossible)
        .with_frame(frame);
    let mut input = Input::open(&SourceSpec::Wav(PathBuf::from(&args[1])), opts)?;
    let config = EncoderConfig::default()
        .with_bitrate(bitrate)
        .with_frame(frame)
        .with_fec(fec)
        .with_expected_loss_percent(plan)
        .with_tuning(tuning)
        .with_constant_bitrate(std::env::var("OPUS_CBR").as_deref() != Ok("0"))
        .with_complexity(complexity);
    let mut enc = Encoder::new(config)?;
    let mut packets = Vec::new();
    let mut frame_buf = [0i16; 960];
    let pcm = &mut frame_buf[..frame.samples()];
    let mut buf = [0u8; MAX_PACKET];
    let cap: usize = std::env::var("OPUS_CAP")
        .ok()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(MAX_PACKET);
    let mut sizes = Vec::new();
    while input.read_frame(Instant::now(), pcm)? == Read::Frame {
        let n = enc.encode(pcm, &mut buf[..cap])?;
        sizes.push(n);
        packets.push(buf[..n].to_vec());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let lost: Vec<bool> = packets
        .iter()
        .map(|_| rng.random_range(0..100u32) < u32::from(loss))
        .collect();

    let (fec_frames, plc_frames) =
        shared::lossy_decode::decode_with_losses(&packets, &lost, use_fec, frame, &args[2])?;
    sizes.sort_unstable();
    eprintln!(
        "sizes min {} median {} max {}",
        sizes[0],
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );
    eprintln!(
        "{} frames at {bitrate} bit/s, {} bytes each; lost {} ({fec_frames} by FEC, {plc_frames} by PLC)",
        packets.len(),
        config.cbr_packet_bytes(),
        fec_frames + plc_frames
    );
    Ok(())
}
