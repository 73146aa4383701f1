//! Shared by the offline quality examples (`opus_quality`,
//! `burst_fec_plan`): decoding a packet sequence with some packets lost.

use std::path::PathBuf;

use cryptic_audio::{Decoder, FrameDuration, Output, OutputOptions, SinkSpec};

/// Decodes `packets` (frames of `frame`) into the WAV at `out`; a lost packet is rebuilt from
/// the next packet's FEC when `use_fec` and that one arrived, else
/// concealed. Returns (frames rebuilt by FEC, frames concealed).
pub(crate) fn decode_with_losses(
    packets: &[Vec<u8>],
    lost: &[bool],
    use_fec: bool,
    frame: FrameDuration,
    out: &str,
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let mut buf = [0i16; 960];
    let pcm = &mut buf[..frame.samples()];
    let mut dec = Decoder::new(frame)?;
    let mut output = Output::open(
        &SinkSpec::Wav(PathBuf::from(out)),
        OutputOptions::default().with_frame(frame),
    )?;
    let (mut fec_frames, mut plc_frames) = (0, 0);
    for (i, packet) in packets.iter().enumerate() {
        if lost[i] {
            match packets.get(i + 1) {
                Some(next) if use_fec && !lost[i + 1] => {
                    dec.decode_fec(next, pcm)?;
                    fec_frames += 1;
                }
                _ => {
                    dec.conceal(pcm)?;
                    plc_frames += 1;
                }
            }
        } else {
            dec.decode(packet, pcm)?;
        }
        output.write_frame(pcm)?;
    }
    output.finish()?;
    Ok((fec_frames, plc_frames))
}
