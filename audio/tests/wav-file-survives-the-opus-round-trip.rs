//! Headless use, as fast as possible: a 44.1 kHz stereo WAV goes in, is
//! converted to 48 kHz mono, Opus encoded and decoded, and comes out as a
//! 48 kHz mono WAV that matches the input.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Instant;

use cryptic_audio::{
    read_wav_48k_mono, Decoder, Encoder, EncoderConfig, FrameDuration, Input, InputOptions, Output,
    OutputOptions, Pacing, Read, SinkSpec, SourceSpec, MAX_PACKET,
};

#[test]
fn a_stereo_44100_wav_comes_out_as_matching_48k_mono_after_opus() {
    let dir = std::env::temp_dir().join(format!("cryptic-audio-wav-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input_path = dir.join("in.wav");
    let output_path = dir.join("out.wav");

    // the same voice on both channels, at 44.1 kHz
    let voice48 = common::voiced(48_000 * 2);
    let voice44: Vec<i16> = (0..44_100 * 2)
        .map(|i| voice48[(i as f64 * 48_000.0 / 44_100.0) as usize])
        .collect();
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&input_path, spec).unwrap();
    for &s in &voice44 {
        w.write_sample(s).unwrap();
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();

    let opts = InputOptions::default().with_pacing(Pacing::AsFastAsPossible);
    let mut input = Input::open(&SourceSpec::Wav(input_path.clone()), opts).unwrap();
    let mut output = Output::open(
        &SinkSpec::Wav(output_path.clone()),
        OutputOptions::default(),
    )
    .unwrap();
    let mut enc = Encoder::new(EncoderConfig::default().with_bitrate(32_000)).unwrap();
    let mut dec = Decoder::new(FrameDuration::Ms20).unwrap();
    let (mut pcm, mut packet) = ([0i16; 960], [0u8; MAX_PACKET]);
    let now = Instant::now();
    let mut frames = 0;
    while input.read_frame(now, &mut pcm).unwrap() == Read::Frame {
        let n = enc.encode(&pcm, &mut packet).unwrap();
        dec.decode(&packet[..n], &mut pcm).unwrap();
        output.write_frame(&pcm).unwrap();
        frames += 1;
        assert!(frames < 1_000, "the file never ended");
    }
    output.finish().unwrap();
    assert_eq!(frames, 100, "2 s of audio is 100 frames of 20 ms");

    let reference = read_wav_48k_mono(&input_path).unwrap();
    let decoded = read_wav_48k_mono(&output_path).unwrap();
    assert_eq!(decoded.len(), 96_000);
    let lookahead = enc.lookahead().unwrap();
    let (lag, ncc) = common::align(&reference, &decoded, 2_000);
    eprintln!("decoded matches at lag {lag} (encoder look-ahead {lookahead}), ncc {ncc:.4}");
    // Opus keeps the waveform only roughly at 32 kbit/s; a lost or
    // misplaced frame would pull this far below
    assert!(ncc > 0.85, "decoded audio does not match: {ncc:.4}");
    // the only delay is the codec's own (about its look-ahead), no frame
    // lost or repeated
    assert!(
        (0..=lookahead as isize + 48).contains(&lag),
        "delay {lag} samples"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
