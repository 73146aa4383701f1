//! SPEC security property 4: at constant bitrate every packet has the same
//! size whatever is said, including silence; DTX and VBR would leak.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use cryptic_audio::{Encoder, EncoderConfig, MAX_PACKET};

fn sizes(config: EncoderConfig, pcm: &[i16]) -> Vec<usize> {
    let mut enc = Encoder::new(config).unwrap();
    let mut buf = [0u8; MAX_PACKET];
    pcm.chunks_exact(960)
        .map(|f| enc.encode(f, &mut buf).unwrap())
        .collect()
}

fn talk_then_silence() -> Vec<i16> {
    let mut pcm = common::voiced(48_000 * 2);
    pcm.extend(std::iter::repeat_n(0i16, 48_000));
    pcm.extend(common::noise_bursts(3, 48_000));
    pcm
}

#[test]
fn every_packet_has_the_same_size_at_16_24_and_32_kbits() {
    let pcm = talk_then_silence();
    for bitrate in [16_000, 24_000, 32_000] {
        let config = EncoderConfig::default().with_bitrate(bitrate);
        let s = sizes(config, &pcm);
        assert!(
            s.iter().all(|&n| n == config.cbr_packet_bytes()),
            "{bitrate} bit/s: sizes {:?}",
            s.iter().collect::<std::collections::BTreeSet<_>>()
        );
    }
}

#[test]
fn dtx_and_vbr_would_reveal_the_pauses() {
    let pcm = talk_then_silence();
    let dtx = sizes(EncoderConfig::default().with_dtx(true), &pcm);
    let silent = &dtx[100..150];
    assert!(
        silent.iter().any(|&n| n <= 3),
        "DTX sends tiny packets in silence"
    );
    let vbr = sizes(EncoderConfig::default().with_constant_bitrate(false), &pcm);
    let distinct: std::collections::BTreeSet<_> = vbr.iter().collect();
    assert!(distinct.len() > 5, "VBR sizes vary with the signal");
}
