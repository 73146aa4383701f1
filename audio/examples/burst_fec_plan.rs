//! Offline figure for issue 16: how much loss the encoder should plan FEC
//! for under burst loss. Encodes a WAV at 40 kbit/s CBR (where calls on a
//! lossy link settle) with Opus's AUDIO application, loses frames by a
//! seeded Gilbert-Elliott chain (good to bad `P`, bad to good `R`,
//! everything lost while bad), and once a second sets FEC and the planned
//! loss from the loss of the second before, as a receiver report would:
//!
//! - `report`: the planned loss is that one report, rounded (0 after a
//!   second without loss, which turns Opus's redundancy off);
//! - `control`: [`RateControl`]'s decision (the bitrate it picks is
//!   ignored here, only its FEC and planned loss are used).
//!
//! Lost frames are rebuilt from the next packet's FEC when it arrived, else
//! concealed, as by a jitter buffer that always has the next packet.
//!
//! `burst_fec_plan IN.wav OUT.wav report|control P R SEED`

#[path = "shared/mod.rs"]
mod shared;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cryptic_audio::{
    Encoder, EncoderConfig, FrameDuration, Input, InputOptions, Pacing, RateControl, Read,
    SourceSpec, Tuning, MAX_PACKET,
};
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 7 {
        return Err("usage: burst_fec_plan IN.wav OUT.wav report|control P R SEED".into());
    }
    let from_control = match args[3].as_str() {
        "report" => false,
        "control" => true,
        other => return Err(format!("unknown plan {other}").into()),
    };
    let p: f64 = args[4].parse()?;
    let r: f64 = args[5].parse()?;
    let seed: u64 = args[6].parse()?;

    let opts = InputOptions::default().with_pacing(Pacing::AsFastAsPossible);
    let mut input = Input::open(&SourceSpec::Wav(PathBuf::from(&args[1])), opts)?;
    let mut rate = RateControl::new(40_000);
    let start = rate.decision();
    let config = EncoderConfig::default()
        .with_bitrate(40_000)
        .with_fec(start.fec)
        .with_expected_loss_percent(start.expected_loss_percent)
        .with_tuning(Tuning::Fidelity)
        .with_constant_bitrate(true);
    let mut enc = Encoder::new(config)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut bad = false;
    let (mut packets, mut lost) = (Vec::new(), Vec::new());
    let mut pcm = [0i16; 960];
    let mut buf = [0u8; MAX_PACKET];
    let t0 = Instant::now();
    let mut lost_this_second = 0u32;
    while input.read_frame(Instant::now(), &mut pcm)? == Read::Frame {
        let k = packets.len();
        if k > 0 && k % 50 == 0 {
            let loss = f64::from(lost_this_second) / 50.0;
            lost_this_second = 0;
            let now = t0 + Duration::from_secs(k as u64 / 50);
            rate.on_report(now, loss, Some(Duration::from_millis(90)));
            let d = rate.decision();
            let plan = if from_control {
                d.expected_loss_percent
            } else {
                (loss * 100.0).round() as u8
            };
            enc.set_fec(d.fec)?;
            enc.set_expected_loss_percent(plan)?;
        }
        let n = enc.encode(&pcm, &mut buf)?;
        packets.push(buf[..n].to_vec());
        bad = if bad {
            rng.random::<f64>() >= r
        } else {
            rng.random::<f64>() < p
        };
        lost.push(bad);
        lost_this_second += u32::from(bad);
    }

    let (fec_frames, plc_frames) = shared::lossy_decode::decode_with_losses(
        &packets,
        &lost,
        true,
        FrameDuration::Ms20,
        &args[2],
    )?;
    eprintln!(
        "{} frames, lost {} ({fec_frames} from the next packet, {plc_frames} concealed)",
        packets.len(),
        fec_frames + plc_frames
    );
    Ok(())
}
