//! The audio edge of a call: microphone (or file) to Opus to the session,
//! the session's play-out to Opus decode (FEC, PLC) to the speaker (or
//! file), a frame at a time: 20 ms, or 10 ms when asked (10 ms less mouth
//! to ear, lower quality at the same bitrate; see [`CallOptions::frame`]).

use std::time::{Duration, Instant};

use cryptic_audio::stretch::{is_quiet, stretch};
use cryptic_audio::{
    Decoder, DeviceWaker, Encoder, EncoderConfig, FrameDuration, Input, InputOptions, Output,
    OutputOptions, Pacing, Processing, RateControl, Read, SinkSpec, SourceSpec, Tuning,
    PROCESSING_FRAME,
};
use cryptic_jitter::{Playout, Stretch};

use crate::call::CallOptions;
use crate::error::Error;
use crate::session::{CallSession, Sealer};

/// The longest frame, 20 ms at 48 kHz: the size of the frame buffers.
const FRAME: usize = 960;
/// What an output is given at a time, a speaker or a file: 10 ms. A
/// speaker keeps half a decoded 20 ms frame less in its queue; a file is
/// written by the clock every 10 ms, so the peer's 10 ms frames are asked
/// for one at a time, as they come (written 20 ms at a time, the second
/// of each pair was asked for 10 ms before it was due, and a buffer held
/// at its target concealed up to 4 % of a clean call's frames).
const OUT_FRAME: FrameDuration = FrameDuration::Ms10;
/// The period of a frame played to a file (by the clock).
const FRAME_TIME: Duration = OUT_FRAME.as_duration();
/// Whole frames are left out or doubled only inside a pause this long
/// (samples at 48 kHz: 60 ms).
const PAUSE: usize = 2_880;
/// How often a call with a sound device looks at the device's rings: a
/// captured frame leaves within this of being complete, and the speaker
/// gets the next frame within this of wanting it.
const DEVICE_POLL: Duration = Duration::from_millis(2);
/// How often the rings are looked at when the devices wake the loop after
/// every period themselves ([`Voice::set_waker`]): only a fallback, for
/// a device that stalls or fails.
const DEVICE_FALLBACK: Duration = Duration::from_millis(10);
/// Frames played to a device, or sent as silence once a file input ran
/// out, in one wake-up at most (a device that restarts wants a few).
const MAX_FRAMES_PER_WAKE: usize = 4;
/// Frames played to a file in one wake-up at most: a clock that fell
/// behind catches up 80 ms, then skips.
const MAX_FILE_FRAMES_PER_WAKE: usize = 8;
/// Copies of the frames before it each packet carries while loss is seen
/// (for a peer that takes them): two rebuild any loss of up to two
/// packets in a row (see [`RateControl`]).
const COPIES: u8 = crate::media::MAX_REDUNDANCY as u8;

/// The open devices and codec of one call.
pub(crate) struct Voice {
    input: Input,
    output: Output,
    encoder: Encoder,
    decoder: Decoder,
    /// How long the frames we capture, encode and send are.
    frame: FrameDuration,
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
    /// What the output gets next (10 ms: a frame, or half of one).
    out: Vec<i16>,
    packet: [u8; cryptic_audio::MAX_PACKET],
    quiet_in: u32,
    quiet_out: u32,
    /// Decoded samples in a row that were quiet.
    quiet_run: usize,
    /// When the next frame is due at an output played by the clock.
    next_play: Option<Instant>,
    /// When the next frame of silence is due once a file input ran out.
    silence_due: Option<Instant>,
    /// When the input last gave a frame: the first frame of silence after
    /// a file ran out is due a frame after it.
    last_frame: Option<Instant>,
    /// The input is a sound device (paced by its own clock, looked at
    /// every [`DEVICE_POLL`]).
    input_device: bool,
    /// The peer's reports about our stream the encoder has followed.
    reports_followed: u64,
    /// Told by the sound devices after every period (see
    /// [`Voice::set_waker`]); kept for a device switched to later.
    waker: Option<DeviceWaker>,
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
        options: &CallOptions,
    ) -> Result<Self, Error> {
        let (bitrate, processing, frame) = (options.bitrate, options.processing, options.frame);
        let input_device = input.is_device();
        let input = Input::open(
            input,
            InputOptions::default()
                .with_pacing(Pacing::RealTime)
                .with_frame(frame),
        )
        .map_err(|e| Error::Audio(format!("input: {e}")))?;
        let output = Output::open(output, OutputOptions::default().with_frame(OUT_FRAME))
            .map_err(|e| Error::Audio(format!("output: {e}")))?;
        let rate = RateControl::for_frame(bitrate, frame);
        let start = rate.decision();
        let encoder = Encoder::new(
            // Opus's AUDIO application: PESQ-WB at or above VOIP's on
            // seven speech samples with constant bitrate (24 kbit/s: 3.56
            // against 3.48; 32: 3.90 against 3.89; audio/quality/encoder-gap.sh);
            // the capture path has its own high-pass and noise suppression.
            EncoderConfig::default()
                .with_frame(frame)
                .with_tuning(Tuning::Fidelity)
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
            frame,
            processing,
            rate,
            reference: Vec::new(),
            pcm: [0; FRAME],
            decoded: [0; FRAME],
            playout: Vec::with_capacity(3 * FRAME),
            stretched: Vec::with_capacity(2 * FRAME),
            out: Vec::with_capacity(FRAME),
            packet: [0; cryptic_audio::MAX_PACKET],
            quiet_in: 0,
            quiet_out: 0,
            quiet_run: 0,
            next_play: None,
            silence_due: None,
            last_frame: None,
            input_device,
            waker: None,
            reports_followed: 0,
            onsets_sent: Vec::new(),
            onsets_played: Vec::new(),
            levels: (-120.0, -120.0),
        })
    }

    /// The speaker's counters (of the device in use, since it was opened).
    pub(crate) fn speaker_stats(&self) -> cryptic_audio::StreamStats {
        self.output.stats()
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

    /// One wake-up: send every captured frame that is ready; play what the
    /// speaker wants (a device, by its queue) or what is due (a file, by
    /// the clock); now and then, follow the path's quality.
    pub(crate) fn tick<S: Sealer>(
        &mut self,
        session: &mut CallSession<S>,
        now: Instant,
    ) -> Result<(), Error> {
        self.capture(session, now)?;
        if self.output.wants_frame().is_some() {
            for _ in 0..MAX_FRAMES_PER_WAKE {
                if self.output.wants_frame() != Some(true) {
                    break;
                }
                self.play(session, now)?;
            }
        } else {
            let mut due = self.next_play.unwrap_or(now);
            let mut played = 0;
            while due <= now && played < MAX_FILE_FRAMES_PER_WAKE {
                self.play(session, now)?;
                due += FRAME_TIME;
                played += 1;
            }
            // Far behind (the machine stalled): start again from now.
            self.next_play = Some(if due <= now { now + FRAME_TIME } else { due });
        }
        self.adapt(session, now);
        Ok(())
    }

    /// When to wake next: soon when a sound device is at either end (its
    /// rings are looked at every [`DEVICE_POLL`]), else when the input's
    /// next frame or the output's next frame is due.
    pub(crate) fn next_wake(&self, now: Instant) -> Instant {
        let poll = if self.waker.is_some() {
            DEVICE_FALLBACK
        } else {
            DEVICE_POLL
        };
        let input = if self.input_device {
            now + poll
        } else if let Some(due) = self.silence_due {
            due
        } else {
            self.input
                .poll_timeout()
                .unwrap_or(now + self.frame.as_duration())
        };
        let output = if self.output.wants_frame().is_some() {
            now + poll
        } else {
            self.next_play.unwrap_or(now)
        };
        input.min(output)
    }

    /// At each new report from the peer (about one a second, sooner after
    /// a first loss): the encoder follows the path's quality (see
    /// [`RateControl`]).
    fn adapt<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) {
        let Some(stats) = session.media_stats() else {
            return;
        };
        if stats.peer_reports == self.reports_followed {
            return;
        }
        self.reports_followed = stats.peer_reports;
        self.rate.allow_copies(if session.peer_takes_copies() {
            COPIES
        } else {
            0
        });
        let Some(d) = self
            .rate
            .on_report(now, stats.loss_reported_by_peer, stats.rtt)
        else {
            return;
        };
        tracing::debug!(
            bitrate = d.bitrate,
            fec = d.fec,
            copies = d.copies,
            loss = d.expected_loss_percent,
            "encoder follows the path"
        );
        session.set_redundancy(usize::from(d.copies));
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

    /// Samples per frame we send (480 from a microphone or with
    /// `--low-latency`, 960 otherwise).
    pub(crate) fn frame_samples(&self) -> u32 {
        self.frame.samples() as u32
    }

    fn capture<S: Sealer>(
        &mut self,
        session: &mut CallSession<S>,
        now: Instant,
    ) -> Result<(), Error> {
        let n = self.frame.samples();
        let period = self.frame.as_duration();
        loop {
            match self.input.read_frame(now, &mut self.pcm[..n]) {
                Ok(Read::Frame) => {
                    self.last_frame = Some(now);
                    if let Some(p) = self.processing.as_mut() {
                        for half in self.pcm[..n].chunks_exact_mut(PROCESSING_FRAME) {
                            if let Ok(half) = <&mut [i16; PROCESSING_FRAME]>::try_from(half) {
                                p.capture(half);
                            }
                        }
                    }
                    if session.muted() {
                        self.pcm.fill(0);
                    }
                    self.levels.0 = dbfs(&self.pcm[..n]);
                    if onset(&self.pcm[..n], &mut self.quiet_in) {
                        self.onsets_sent.push(now);
                    }
                    self.send(session, now)?;
                }
                Ok(Read::End) => {
                    // The file ran out: keep sending silence at the same
                    // rate, by the clock, so the packet flow says nothing.
                    // The first is due a frame after the file's last (not
                    // at once: a packet 20 ms early made the peer's buffer
                    // take every later one for 20 ms late, and its target
                    // rose from 27 to 47 ms).
                    let first = self.last_frame.map_or(now, |t| t + period);
                    let mut due = self.silence_due.unwrap_or(first);
                    let mut sent = 0;
                    while due <= now && sent < MAX_FRAMES_PER_WAKE {
                        self.pcm.fill(0);
                        self.send(session, now)?;
                        due += period;
                        sent += 1;
                    }
                    self.silence_due = Some(if due <= now { now + period } else { due });
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(e) => return Err(Error::Audio(format!("input: {e}"))),
            }
        }
    }

    fn send<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) -> Result<(), Error> {
        let len = self
            .encoder
            .encode(&self.pcm[..self.frame.samples()], &mut self.packet)
            .map_err(|e| Error::Audio(format!("encoder: {e}")))?;
        session.send_audio(now, &self.packet[..len], false);
        Ok(())
    }

    fn play<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) -> Result<(), Error> {
        // A stretched frame is a period shorter or longer than 20 ms: decode
        // until a whole frame is queued (a shortened one makes the buffer
        // play out a little faster, as it asked).
        let n = self.output.frame_samples();
        while self.playout.len() < n {
            self.decode_next(session, now);
        }
        self.out.clear();
        self.out.extend_from_slice(&self.playout[..n]);
        self.playout.drain(..n);
        self.levels.1 = dbfs(&self.out);
        if onset(&self.out, &mut self.quiet_out) {
            self.onsets_played.push(now);
        }
        self.output
            .write_frame(&self.out)
            .map_err(|e| Error::Audio(format!("output: {e}")))?;
        self.render_reference();
        Ok(())
    }

    /// Decodes (or conceals) the jitter buffer's next frame onto the
    /// play-out queue, shortened or lengthened by one pitch period when the
    /// buffer asks and the frame allows.
    fn decode_next<S: Sealer>(&mut self, session: &mut CallSession<S>, now: Instant) {
        // The buffer is asked for the frame that plays once what is already
        // decoded has played: after a shortened frame the next one is asked
        // for a period early, not a whole frame early, so the buffer sees
        // the delay it really has (as NetEq counts its sync buffer).
        let ahead = self.playout.len() as u64 * 1_000_000 / u64::from(cryptic_audio::SAMPLE_RATE);
        let at = now + Duration::from_micros(ahead);
        self.follow_peer_frame(session);
        let pcm = &mut self.decoded[..self.decoder.frame_samples()];
        let mut request = Stretch::None;
        let mut by = Duration::ZERO;
        let decoded = match session.poll_playout(at) {
            Some(Playout::Frame(f)) => {
                request = f.stretch;
                by = f.stretch_by;
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
        // Whole frames are left out or doubled only inside a pause of at
        // least 60 ms: a gap between two words moved the rest of the
        // utterance by 20 ms, which PESQ-WB scores as badly as a lost word
        // (3.37 against 3.85 on a loopback call).
        self.quiet_run = if is_quiet(pcm) {
            self.quiet_run.saturating_add(pcm.len())
        } else {
            0
        };
        let pause = self.quiet_run >= PAUSE;
        if request != Stretch::None {
            tracing::trace!("jitter buffer asks to {request:?} (in a pause: {pause})");
        }
        // In a pause the buffer says by how much: a whole frame on a
        // jittery path (its dead band is a frame wide, so the step does not
        // make it hunt), just the excess or shortfall on a steady one.
        let by = (by.as_micros() as usize * cryptic_audio::SAMPLE_RATE as usize / 1_000_000)
            .min(pcm.len());
        match request {
            // Catching up only in pauses: shortening speech, even by a
            // pitch period, costs PESQ-WB up to a point and a half on a
            // loopback call (tests/call-quality-beside-gstreamer.rs). A
            // frame in a pause is shortened (left out whole when asked for
            // a frame); any other plays as it is, and the buffer asks
            // again on the next.
            Stretch::Compress if pause => self.playout.extend_from_slice(&pcm[by..]),
            // Growing: a frame in a pause plays longer, its start repeated
            // (twice when asked for a frame); any other grows by a pitch
            // period.
            Stretch::Expand if pause => {
                self.playout.extend_from_slice(&pcm[..by]);
                self.playout.extend_from_slice(pcm);
            }
            // A shortfall of part of a frame (a steady path whose polls
            // wandered below the target) waits for a pause: stretching
            // speech costs more than a few ms of margin.
            Stretch::Expand if by < pcm.len() => self.playout.extend_from_slice(pcm),
            Stretch::Expand => {
                stretch(pcm, false, &mut self.stretched);
                self.playout.extend_from_slice(&self.stretched);
            }
            _ => self.playout.extend_from_slice(pcm),
        }
    }

    /// The decoder decodes frames as long as the peer sends (10 or 20 ms,
    /// as the session saw from its first packets).
    fn follow_peer_frame<S: Sealer>(&mut self, session: &CallSession<S>) {
        let Some(frame) = session
            .playout_frame_samples()
            .and_then(FrameDuration::from_samples)
        else {
            return;
        };
        if frame == self.decoder.frame() {
            return;
        }
        match Decoder::new(frame) {
            Ok(d) => self.decoder = d,
            Err(e) => tracing::debug!("no decoder for {frame:?} frames: {e}"),
        }
    }

    /// Hands the echo canceller what the speaker was given: exactly what
    /// the device queued (after its trimming and drift correction) when it
    /// says, else the frame just written.
    fn render_reference(&mut self) {
        let Some(p) = self.processing.as_mut() else {
            return;
        };
        if !self.output.take_played(&mut self.reference) {
            self.reference.extend_from_slice(&self.out);
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
/// keeps the count of quiet samples in `quiet`.
fn onset(pcm: &[i16], quiet: &mut u32) -> bool {
    // RMS above about -50 dBFS.
    let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    if energy > 100 * 100 * pcm.len() as i64 {
        let started = *quiet >= 4_800;
        *quiet = 0;
        started
    } else {
        *quiet = quiet.saturating_add(pcm.len() as u32);
        false
    }
}

impl Voice {
    /// Has the sound devices (now and after a switch) call `waker` after
    /// every period they capture or play: the media loop wakes on it and
    /// reads a frame as soon as it is complete, refills the speaker as
    /// soon as it has room ([`DEVICE_POLL`] stays as a fallback).
    pub(crate) fn set_waker(&mut self, waker: DeviceWaker) {
        self.input.set_waker(waker.clone());
        self.output.set_waker(waker.clone());
        self.waker = Some(waker);
    }
}

/// Device switching during a call (the shell's `input` and `output`):
/// the new device opens first; only then does it replace the old one,
/// which is closed (a WAV file gets its header). On an error the old one
/// stays.
impl Voice {
    /// Captures from `spec` from now on.
    pub(crate) fn replace_input(&mut self, spec: &SourceSpec) -> Result<(), Error> {
        // The frame length stays as the call started (the peer's buffer
        // follows the first packets only).
        let input = Input::open(
            spec,
            InputOptions::default()
                .with_pacing(Pacing::RealTime)
                .with_frame(self.frame),
        )
        .map_err(|e| Error::Audio(format!("input {spec}: {e}")))?;
        self.input = input;
        if let Some(w) = &self.waker {
            self.input.set_waker(w.clone());
        }
        self.input_device = spec.is_device();
        self.silence_due = None;
        Ok(())
    }

    /// Plays to `spec` from now on.
    pub(crate) fn replace_output(&mut self, spec: &SinkSpec) -> Result<(), Error> {
        let output = Output::open(spec, OutputOptions::default().with_frame(OUT_FRAME))
            .map_err(|e| Error::Audio(format!("output {spec}: {e}")))?;
        let mut old = std::mem::replace(&mut self.output, output);
        if let Some(w) = &self.waker {
            self.output.set_waker(w.clone());
        }
        self.next_play = None;
        self.reference.clear();
        if let Err(e) = old.finish() {
            tracing::warn!("the previous output did not finish: {e}");
        }
        Ok(())
    }
}
