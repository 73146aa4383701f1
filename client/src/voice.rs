//! The audio edge of a call: microphone (or file) to Opus to the session,
//! the session's play-out to Opus decode (FEC, PLC) to the speaker (or
//! file), one 20 ms tick at a time.

use std::time::Instant;

use cryptic_audio::stretch::stretch;
use cryptic_audio::{
    Decoder, Encoder, EncoderConfig, FrameDuration, Input, InputOptions, Output, OutputOptions,
    Pacing, Processing, ProcessingConfig, RateControl, Read, SinkSpec, SourceSpec,
    PROCESSING_FRAME,
};
use cryptic_jitter::{Playout, Stretch};

use crate::error::Error;
use crate::session::{CallSession, Sealer};

/// Frames of 20 ms at 48 kHz.
const FRAME: usize = 960;

/// The open devices and codec of one call.
pub(crate) struct Voice {
    input: Input,
    output: Output,
    encoder: Encoder,
    decoder: Decoder,
    /// Echo cancellation, noise suppression, gain control (when asked).
    processing: Option<Box<dyn Processing>>,
    /// Bitrate, FEC and expected loss from the peer's reports.
    rate: RateControl,
    /// What the speaker was given to play, not yet handed to the echo
    /// canceller.
    reference: Vec<i16>,
    pcm: [i16; FRAME],
    /// The last decoded frame, before any time-stretch.
    decoded: [i16; FRAME],
    /// Decoded audio waiting to be played, in whole or stretched frames.
    playout: Vec<i16>,
    /// Scratch for a stretched frame.
    stretched: Vec<i16>,
    packet: [u8; cryptic_audio::MAX_PACKET],
    quiet_in: u32,
    quiet_out: u32,
    ticks: u64,
    /// When sounds started (after 100 ms of silence) in what we sent.
    pub(crate) onsets_sent: Vec<Instant>,
    /// When sounds started in what we played.
    pub(crate) onsets_played: Vec<Instant>,
    /// The last frame's level sent and played, dBFS (the status meters).
    levels: (f32, f32),
}

impl Voice {
    /// Opens the input, the output and the codec.
    pub(crate) fn open(
        input: &SourceSpec,
        output: &SinkSpec,
        bitrate: u32,
        processing: ProcessingConfig,
    ) -> Result<Self, Error> {
        let input = Input::open(input, InputOptions::default().with_pacing(Pacing::RealTime))
            .map_err(|e| Error::Audio(format!("input: {e}")))?;
        let output = Output::open(output, OutputOptions::default())
            .map_err(|e| Error::Audio(format!("output: {e}")))?;
        let rate = RateControl::new(bitrate);
        let start = rate.decision();
        let encoder = Encoder::new(
            EncoderConfig::default()
                .with_bitrate(start.bitrate)
                .with_fec(start.fec)
                .with_expected_loss_percent(start.expected_loss_percent),
        )
        .map_err(|e| Error::Audio(e.to_string()))?;
        let decoder = Decoder::new(FrameDuration::Ms20).map_err(|e| Error::Audio(e.to_string()))?;
        let processing = cryptic_audio::processing(processing);
        if let Some(p) = &processing {
            tracing::info!("audio processing: {}", p.name());
        }
        Ok(Self {
            input,
            output,
            encoder,
            decoder,
            processing,
            rate,
            reference: Vec::new(),
            pcm: [0; FRAME],
            decoded: [0; FRAME],
            playout: Vec::with_capacity(3 * FRAME),
            stretched: Vec::with_capacity(2 * FRAME),
            packet: [0; cryptic_audio::MAX_PACKET],
            quiet_in: 0,
            quiet_out: 0,
            ticks: 0,
            onsets_sent: Vec::new(),
            onsets_played: Vec::new(),
            levels: (-120.0, -120.0),
        })
    }

    /// Checks that the input and output can be opened, before a call rings
    /// anyone: a missing file or device, or an output that cannot be
    /// written, is an error now rather than after the answer. Leaves no
    /// file behind.
    pub(crate) fn check(input: &SourceSpec, output: &SinkSpec) -> Result<(), Error> {
        drop(
            Input::open(input, InputOptions::default())
                .map_err(|e| Error::Audio(format!("input {input}: {e}")))?,
        );
        match output {
            SinkSpec::Wav(path) => {
                let existed = path.exists();
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::Audio(format!("output {}: {e}", path.display())))?;
                if !existed {
                    // Only made to check; the call writes it for real.
                    let _ = std::fs::remove_file(path);
                }
            }
            other => drop(
                Output::open(other, OutputOptions::default())
                    .map_err(|e| Error::Audio(format!("output {other}: {e}")))?,
            ),
        }
        Ok(())
    }

    /// One tick: send every captured frame that is ready, play one frame.
    pub(crate) fn tick<S: Sealer>(
        &mut self,
        session: &mut CallSession<S>,
        now: Instant,
    ) -> Result<(), Error> {
        self.capture(session, now)?;
        self.play(session, now)?;
        self.ticks += 1;
        if self.ticks.is_multiple_of(50) {
            self.adapt(session, now);
        }
        Ok(())
    }

    /// Once a second: the encoder follows the path's quality (see
    /// [`RateControl`]).
    fn adapt<S: Sealer>(&mut self, session: &CallSession<S>, now: Instant) {
        let Some(stats) = session.media_stats() else {
            return;
        };
        let Some(d) = self
            .rate
            .on_report(now, stats.loss_reported_by_peer, stats.rtt)
        else {
            return;
        };
        tracing::debug!(
            bitrate = d.bitrate,
            fec = d.fec,
            loss = d.expected_loss_percent,
            "encoder follows the path"
        );
        let applied = self
            .encoder
            .set_bitrate(d.bitrate)
            .and_then(|()| self.encoder.set_fec(d.fec))
            .and_then(|()| {
                self.encoder
                    .set_expected_loss_percent(d.expected_loss_percent)
            });
        if let Err(e) = applied {
            tracing::debug!("encoder refused a setting: {e}");
        }
    }

    fn capture<S: Sealer>(
        &mut self,
        session: &mut CallSession<S>,
        now: Instant,
    ) -> Result<(), Error> {
        loop {
            match self.input.read_frame(now, &mut self.pcm) {
                Ok(Read::Frame) => {
                    if let Some(p) = self.processing.as_mut() {
                        for half in self.pcm.chunks_exact_mut(PROCESSING_FRAME) {
                            if let Ok(half) = <&mut [i16; PROCESSING_FRAME]>::try_from(half) {
                                p.capture(half);
                            }
                        }
                    }
                    if session.muted() {
                        self.pcm.fill(0);
                    }
                    self.levels.0 = dbfs(&self.pcm);
                    if onset(&self.pcm, &mut self.quiet_in) {
                        self.onsets_sent.push(now);
                    }
                    self.send(session, now)?;
                }
                Ok(Read::End) => {
                    // The file ran out: keep sending silence at the same
                    // rate, so the packet flow says nothing.
                    self.pcm.fill(0);
                    return self.send(session, now);
                }
                Ok(_) => return Ok(()),
                Err(e) => return Err(Error::Audio(format!("input: {e}"))),
            }
        }
    }

    fn send<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) -> Result<(), Error> {
        let len = self
            .encoder
            .encode(&self.pcm, &mut self.packet)
            .map_err(|e| Error::Audio(format!("encoder: {e}")))?;
        session.send_audio(now, &self.packet[..len], false);
        Ok(())
    }

    fn play<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) -> Result<(), Error> {
        // A stretched frame is a period shorter or longer than 20 ms: decode
        // until a whole frame is queued (a shortened one makes the buffer
        // play out a little faster, as it asked).
        while self.playout.len() < FRAME {
            self.decode_next(session, now);
        }
        self.pcm.copy_from_slice(&self.playout[..FRAME]);
        self.playout.drain(..FRAME);
        self.levels.1 = dbfs(&self.pcm);
        if onset(&self.pcm, &mut self.quiet_out) {
            self.onsets_played.push(now);
        }
        self.output
            .write_frame(&self.pcm)
            .map_err(|e| Error::Audio(format!("output: {e}")))?;
        self.render_reference();
        Ok(())
    }

    /// Decodes (or conceals) the jitter buffer's next frame onto the
    /// play-out queue, shortened or lengthened by one pitch period when the
    /// buffer asks and the frame allows.
    fn decode_next<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) {
        let pcm = &mut self.decoded;
        let mut request = Stretch::None;
        let decoded = match session.poll_playout(now) {
            Some(Playout::Frame(f)) => {
                request = f.stretch;
                self.decoder
                    .decode(f.payload, pcm)
                    .or_else(|_| self.decoder.conceal(pcm))
            }
            Some(Playout::Conceal(c)) => match c.fec {
                Some(next) => self.decoder.decode_fec(next, pcm),
                None => self.decoder.conceal(pcm),
            },
            _ => {
                pcm.fill(0);
                Ok(())
            }
        };
        if decoded.is_err() {
            pcm.fill(0);
        }
        let shorten = match request {
            Stretch::Compress => true,
            Stretch::Expand => false,
            _ => {
                self.playout.extend_from_slice(pcm);
                return;
            }
        };
        stretch(pcm, shorten, &mut self.stretched);
        self.playout.extend_from_slice(&self.stretched);
    }

    /// Hands the echo canceller what the speaker was given: exactly what
    /// the device queued (after its trimming and drift correction) when it
    /// says, else the frame just written.
    fn render_reference(&mut self) {
        let Some(p) = self.processing.as_mut() else {
            return;
        };
        if !self.output.take_played(&mut self.reference) {
            self.reference.extend_from_slice(&self.pcm);
        }
        let whole = self.reference.len() / PROCESSING_FRAME * PROCESSING_FRAME;
        for chunk in self.reference[..whole].chunks_exact(PROCESSING_FRAME) {
            if let Ok(chunk) = <&[i16; PROCESSING_FRAME]>::try_from(chunk) {
                p.render(chunk);
            }
        }
        self.reference.drain(..whole);
    }

    /// The level of the last frame sent and of the last frame played, dBFS.
    pub(crate) fn levels(&self) -> (f32, f32) {
        self.levels
    }

    /// Finishes the output (a WAV file gets its final header).
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        self.output
            .finish()
            .map_err(|e| Error::Audio(format!("output: {e}")))
    }
}

/// The peak level of a frame in dBFS (-120 for digital silence).
fn dbfs(pcm: &[i16]) -> f32 {
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    if peak == 0 {
        return -120.0;
    }
    20.0 * (f32::from(peak) / 32768.0).log10()
}

/// Whether this frame starts a sound after at least 100 ms of quiet;
/// keeps the count of quiet frames in `quiet`.
fn onset(pcm: &[i16], quiet: &mut u32) -> bool {
    // RMS above about -50 dBFS.
    let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    if energy > 100 * 100 * pcm.len() as i64 {
        let started = *quiet >= 5;
        *quiet = 0;
        started
    } else {
        *quiet += 1;
        false
    }
}
