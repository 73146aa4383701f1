//! Audio per-frame costs: Opus encode and decode of one 20 ms frame (48 kHz
//! mono, 24 kbit/s CBR with FEC, as in a call) and resampling of one frame
//! between 44.1 kHz devices and 48 kHz. Each group carries its reference:
//! a plain copy of the same frame, the floor any per-frame step pays.
//! One frame is 20 ms of real time: time per iteration / 20 ms is the share
//! of one core the step costs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cryptic_audio::{
    CaptureResampler, Decoder, Encoder, EncoderConfig, FrameDuration, PlaybackResampler, MAX_PACKET,
};

fn speechlike(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            let phase = std::f32::consts::TAU * (140.0 + 40.0 * (t * 1.3).sin()) * t;
            let env = (std::f32::consts::PI * t * 4.0).sin().abs();
            ((phase.sin() + 0.5 * (2.0 * phase).sin() + 0.3 * (3.0 * phase).sin()) * env * 6_000.0)
                as i16
        })
        .collect()
}

fn opus(c: &mut Criterion) {
    let pcm = speechlike(48_000);
    let frames: Vec<&[i16]> = pcm.chunks_exact(960).collect();
    let config = EncoderConfig::default();
    let mut g = c.benchmark_group("opus_20ms_frame");
    g.throughput(Throughput::Elements(1));

    // reference: copying the frame
    let mut copy = [0i16; 960];
    let mut k = 0;
    g.bench_function("copy_frame_reference", |b| {
        b.iter(|| {
            copy.copy_from_slice(black_box(frames[k % frames.len()]));
            k += 1;
            black_box(&copy);
        })
    });

    let mut enc = Encoder::new(config).expect("valid config");
    let mut packet = [0u8; MAX_PACKET];
    let mut k = 0;
    g.bench_function("encode_24k_cbr_fec", |b| {
        b.iter(|| {
            let n = enc
                .encode(black_box(frames[k % frames.len()]), &mut packet)
                .expect("encode");
            k += 1;
            black_box(n)
        })
    });

    // the same at complexity 5: the cost of the default (9)
    let mut enc5 = Encoder::new(config.with_complexity(5)).expect("valid config");
    let mut k = 0;
    g.bench_function("encode_24k_cbr_fec_complexity5", |b| {
        b.iter(|| {
            let n = enc5
                .encode(black_box(frames[k % frames.len()]), &mut packet)
                .expect("encode");
            k += 1;
            black_box(n)
        })
    });

    // packets to decode
    let mut enc = Encoder::new(config).expect("valid config");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            let n = enc.encode(f, &mut packet).expect("encode");
            packet[..n].to_vec()
        })
        .collect();
    let mut dec = Decoder::new(FrameDuration::Ms20).expect("decoder");
    let mut out = [0i16; 960];
    let mut k = 0;
    g.bench_function("decode", |b| {
        b.iter(|| {
            dec.decode(black_box(&packets[k % packets.len()]), &mut out)
                .expect("decode");
            k += 1;
            black_box(&out);
        })
    });
    let mut k = 0;
    g.bench_function("decode_fec", |b| {
        b.iter(|| {
            dec.decode_fec(black_box(&packets[k % packets.len()]), &mut out)
                .expect("fec");
            k += 1;
            black_box(&out);
        })
    });
    g.bench_function("conceal", |b| {
        b.iter(|| {
            dec.conceal(&mut out).expect("plc");
            black_box(&out);
        })
    });

    let mut enc = Encoder::new(config).expect("valid config");
    let mut dec = Decoder::new(FrameDuration::Ms20).expect("decoder");
    let mut k = 0;
    g.bench_function("encode_plus_decode", |b| {
        b.iter(|| {
            let n = enc
                .encode(black_box(frames[k % frames.len()]), &mut packet)
                .expect("encode");
            dec.decode(&packet[..n], &mut out).expect("decode");
            k += 1;
            black_box(&out);
        })
    });
    g.finish();
}

fn resample(c: &mut Criterion) {
    let pcm: Vec<f32> = speechlike(48_000)
        .iter()
        .map(|&s| f32::from(s) / 32_768.0)
        .collect();
    let mut g = c.benchmark_group("resample_20ms_frame");
    g.throughput(Throughput::Elements(1));

    let mut copy = [0.0f32; 960];
    g.bench_function("copy_frame_reference", |b| {
        b.iter(|| {
            copy.copy_from_slice(black_box(&pcm[..960]));
            black_box(&copy);
        })
    });

    let mut up = CaptureResampler::new(44_100, 960).expect("resampler");
    let mut frame = vec![0.0f32; 960];
    let mut pos = 0;
    g.bench_function("capture_44100_to_48000", |b| {
        b.iter(|| {
            let need = up.input_needed();
            if pos + need > pcm.len() {
                pos = 0;
            }
            up.process(black_box(&pcm[pos..pos + need]), &mut frame)
                .expect("resample");
            pos += need;
            black_box(&frame);
        })
    });

    let mut down = PlaybackResampler::new(44_100, 960).expect("resampler");
    let mut out = vec![0.0f32; down.output_max()];
    let mut k = 0;
    g.bench_function("playback_48000_to_44100", |b| {
        b.iter(|| {
            let f = &pcm[(k % 50) * 960..(k % 50 + 1) * 960];
            let n = down.process(black_box(f), &mut out).expect("resample");
            k += 1;
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, opus, resample);
criterion_main!(benches);
