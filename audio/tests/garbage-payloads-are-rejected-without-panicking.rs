//! Bad input from the network: random and truncated payloads are refused
//! or concealed, never panic, and leave the decoder able to decode.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use rand::{Rng, SeedableRng};

use cryptic_audio::{Decoder, Encoder, EncoderConfig, Error, FrameDuration, MAX_PACKET};

#[test]
fn random_bytes_never_panic_and_decoding_goes_on() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut dec = Decoder::new(FrameDuration::Ms20).unwrap();
    let mut out = [0i16; 960];
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..3_000 {
        let len = rng.random_range(0..400);
        let payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let r = if rng.random_bool(0.5) {
            dec.decode(&payload, &mut out)
        } else {
            dec.decode_fec(&payload, &mut out)
        };
        match r {
            Ok(()) => ok += 1,
            Err(Error::InvalidPacket | Error::PacketDuration { .. }) => refused += 1,
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    eprintln!("{ok} random payloads decoded as noise, {refused} refused");
    assert!(refused > 0);

    // a genuine packet still decodes
    let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
    let mut pkt = [0u8; MAX_PACKET];
    let tone: Vec<i16> = (0..960)
        .map(|i| ((i as f32 * 0.05).sin() * 9000.0) as i16)
        .collect();
    let n = enc.encode(&tone, &mut pkt).unwrap();
    dec.decode(&pkt[..n], &mut out).unwrap();
}

#[test]
fn truncated_packets_are_refused() {
    let mut enc = Encoder::new(EncoderConfig::default()).unwrap();
    let mut dec = Decoder::new(FrameDuration::Ms20).unwrap();
    let mut pkt = [0u8; MAX_PACKET];
    let tone: Vec<i16> = (0..960)
        .map(|i| ((i as f32 * 0.05).sin() * 9000.0) as i16)
        .collect();
    let n = enc.encode(&tone, &mut pkt).unwrap();
    let mut out = [0i16; 960];
    // a code-3 (multi-frame) header cut short is invalid
    assert!(matches!(
        dec.decode(&[0x03], &mut out),
        Err(Error::InvalidPacket)
    ));
    // cutting a CBR packet leaves a valid but shorter frame: it still decodes one frame or is refused
    for cut in 1..n {
        match dec.decode(&pkt[..cut], &mut out) {
            Ok(()) | Err(Error::InvalidPacket) => {}
            Err(e) => panic!("cut at {cut}: {e}"),
        }
    }
    cryptic_audio::fuzzing::opus_decode(&[0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 1, 2, 3]);
}
