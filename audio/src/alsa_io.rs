//! ALSA streams driven by one blocking thread each, instead of cpal's
//! polling worker.
//!
//! Why: through ALSA's PulseAudio plugin (the `default` device of a
//! desktop), cpal's worker woke about 1,400 times a second per stream
//! (`strace -c`: 14,256 `poll` and 26,020 `getpid` calls in 5 s for one
//! capture and one playback stream), which cost 28 % of a core for a
//! microphone passed straight to the speaker. A thread that blocks in
//! `snd_pcm_readi` / `snd_pcm_writei` a period at a time, as `arecord`
//! and `aplay` do, wakes 100 times a second: 1.8 % for the same passthrough
//! (`/usr/bin/time`, 8 s, release, this machine).
//!
//! The thread exchanges samples with the media thread through the same
//! ring buffer and counters as cpal's callbacks (see [`super::device`]);
//! it never allocates after it starts. Dropping the stream asks the
//! thread to stop: it does within one period and closes the device.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction as AlsaDirection, ValueOr};
use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

use crate::codec::SAMPLE_RATE;
use crate::device::{Fault, Shared};
use crate::{Direction, Error};

/// Samples one read or write moves at most (per channel): a period.
const MAX_PERIOD: usize = 4_800;

/// A running stream: its thread, and how to stop it.
#[derive(Debug)]
pub(crate) struct AlsaStream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Frames per period, as the device granted.
    pub(crate) period: usize,
    pub(crate) rate: u32,
    pub(crate) channels: u16,
    pub(crate) format: &'static str,
}

impl AlsaStream {
    /// Asks the thread to stop (within a period); it closes the device.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for AlsaStream {
    fn drop(&mut self) {
        self.stop();
        // The thread returns within a period of a working device; one
        // blocked on a dead device is left to the kernel's error.
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// The sample formats we move, best first.
#[derive(Clone, Copy, Debug)]
enum Sample {
    F32,
    I16,
}

impl Sample {
    fn format(self) -> Format {
        match self {
            Sample::F32 => Format::float(),
            Sample::I16 => Format::s16(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sample::F32 => "f32",
            Sample::I16 => "i16",
        }
    }
}

/// Opens `name` for `dir` at 48 kHz (or the nearest rate), mono when the
/// device allows it, with periods of `period_ms`.
fn open_pcm(name: &str, dir: Direction, period_ms: u32) -> Result<(PCM, Sample), Error> {
    let alsa_dir = match dir {
        Direction::Capture => AlsaDirection::Capture,
        Direction::Playback => AlsaDirection::Playback,
    };
    let mut last = String::new();
    for sample in [Sample::I16, Sample::F32] {
        let pcm = PCM::new(name, alsa_dir, false).map_err(|e| Error::Device(e.to_string()))?;
        let set = || -> alsa::Result<()> {
            let hw = HwParams::any(&pcm)?;
            hw.set_access(Access::RWInterleaved)?;
            hw.set_format(sample.format())?;
            hw.set_channels_near(1)?;
            hw.set_rate_near(SAMPLE_RATE, ValueOr::Nearest)?;
            let rate = hw.get_rate()?;
            // The buffer first (two periods' worth), then the period: the
            // PulseAudio plugin wants three periods at least, and asked
            // the other way round it grows the buffer to three of ours
            // (30 ms instead of 20, which cost 30 ms mouth to ear).
            let period = i64::from(rate * period_ms / 1000);
            if dir == Direction::Playback {
                hw.set_buffer_size_near(period * 2)?;
                hw.set_period_size_near(period, ValueOr::Nearest)?;
            } else {
                hw.set_period_size_near(period, ValueOr::Nearest)?;
                hw.set_buffer_size_near(period * 2)?;
            }
            pcm.hw_params(&hw)?;
            Ok(())
        };
        match set() {
            Ok(()) => return Ok((pcm, sample)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(Error::Device(format!("{name}: no usable format ({last})")))
}

/// What the device granted: rate, channels, period.
fn granted(pcm: &PCM) -> Result<(u32, u16, usize), Error> {
    let hw = pcm
        .hw_params_current()
        .map_err(|e| Error::Device(e.to_string()))?;
    let rate = hw.get_rate().map_err(|e| Error::Device(e.to_string()))?;
    let channels = hw
        .get_channels()
        .map_err(|e| Error::Device(e.to_string()))?;
    let period = hw
        .get_period_size()
        .map_err(|e| Error::Device(e.to_string()))?;
    let period = usize::try_from(period).unwrap_or(0).clamp(1, MAX_PERIOD);
    Ok((rate, u16::try_from(channels).unwrap_or(1).max(1), period))
}

fn set_thresholds(pcm: &PCM, period: usize, playback: bool) -> Result<(), Error> {
    let sw = pcm
        .sw_params_current()
        .map_err(|e| Error::Device(e.to_string()))?;
    let p = period as i64;
    // Playback: a write waits until no more than a period is left in the
    // device, so the device holds one to two periods, not its whole buffer.
    let buffer = pcm
        .hw_params_current()
        .and_then(|hw| hw.get_buffer_size())
        .unwrap_or(2 * p);
    let wake = if playback { (buffer - p).max(p) } else { p };
    sw.set_avail_min(wake)
        .and_then(|()| {
            if playback {
                sw.set_start_threshold(p)
            } else {
                Ok(())
            }
        })
        .and_then(|()| pcm.sw_params(&sw))
        .map_err(|e| Error::Device(e.to_string()))
}

/// Opens the capture device `name`; its thread pushes mono f32 samples
/// into `prod`.
pub(crate) fn open_capture(
    name: &str,
    period_ms: u32,
    prod: HeapProd<f32>,
    events: HeapProd<Fault>,
    shared: Arc<Shared>,
) -> Result<AlsaStream, Error> {
    let io = Io::open(name, Direction::Capture, period_ms, events, shared)?;
    spawn(io, "alsa-capture", move |io| io.capture(prod))
}

/// Opens the playback device `name`; its thread plays mono f32 samples
/// from `cons` once `prime(rate)` are queued (returned), silence before
/// and after it ran dry.
pub(crate) fn open_playback(
    name: &str,
    period_ms: u32,
    prime: impl FnOnce(u32) -> usize,
    cons: HeapCons<f32>,
    events: HeapProd<Fault>,
    shared: Arc<Shared>,
) -> Result<(AlsaStream, usize), Error> {
    let io = Io::open(name, Direction::Playback, period_ms, events, shared)?;
    let prime = prime(io.rate);
    let stream = spawn(io, "alsa-playback", move |io| io.playback(cons, prime))?;
    Ok((stream, prime))
}

/// Runs `run` on a thread named `name` with the opened device.
fn spawn(io: Io, name: &str, run: impl FnOnce(Io) + Send + 'static) -> Result<AlsaStream, Error> {
    let mut stream = AlsaStream {
        stop: Arc::clone(&io.stop),
        thread: None,
        period: io.period,
        rate: io.rate,
        channels: u16::try_from(io.channels).unwrap_or(1),
        format: io.sample.name(),
    };
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(io))
        .map_err(|e| Error::Device(e.to_string()))?;
    stream.thread = Some(thread);
    Ok(stream)
}

/// One stream's thread state.
struct Io {
    pcm: PCM,
    sample: Sample,
    channels: usize,
    period: usize,
    rate: u32,
    events: HeapProd<Fault>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

/// What an I/O error did to the stream.
enum Recovered {
    Yes,
    Dead,
}

impl Io {
    /// Opens `name` for `dir` with periods of about `period_ms`.
    fn open(
        name: &str,
        dir: Direction,
        period_ms: u32,
        events: HeapProd<Fault>,
        shared: Arc<Shared>,
    ) -> Result<Self, Error> {
        let (pcm, sample) = open_pcm(name, dir, period_ms)?;
        let (rate, channels, period) = granted(&pcm)?;
        set_thresholds(&pcm, period, dir == Direction::Playback)?;
        Ok(Io {
            pcm,
            sample,
            channels: usize::from(channels),
            period,
            rate,
            events,
            shared,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// The device's own latency (frames queued in it), in µs.
    fn note_latency(&self) {
        if let Ok(d) = self.pcm.delay() {
            let us = u64::try_from(d).unwrap_or(0) * 1_000_000 / u64::from(self.rate.max(1));
            self.shared
                .latency_us
                .store(us, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// An overrun or underrun is recovered and said; another error counts
    /// towards the stream being dead, and ends it when ALSA cannot recover.
    fn on_error(&mut self, e: alsa::Error) -> Recovered {
        let xrun = e.errno() == EPIPE;
        let fault = if xrun {
            Fault::Xrun
        } else {
            self.shared.errors_in_row.fetch_add(1, Ordering::Relaxed);
            // A device that answers every call with an error (the
            // PulseAudio plugin with its server gone) is not spun on.
            let period =
                u64::try_from(self.period).unwrap_or(480) * 1000 / u64::from(self.rate.max(1));
            std::thread::sleep(std::time::Duration::from_millis(period.max(1)));
            Fault::Glitch(e.to_string())
        };
        let _ = self.events.try_push(fault);
        match self.pcm.try_recover(e, true) {
            Ok(()) => Recovered::Yes,
            Err(e) => {
                self.shared.failed.store(true, Ordering::Release);
                let _ = self.events.try_push(Fault::Fatal(e.to_string()));
                Recovered::Dead
            }
        }
    }

    fn capture(mut self, mut prod: HeapProd<f32>) {
        let n = self.period * self.channels;
        let mut i16s = vec![0i16; n];
        let mut f32s = vec![0f32; n];
        let mut mono = vec![0f32; self.period];
        let scale = 1.0 / self.channels as f32;
        while !self.stopped() {
            let read = match self.sample {
                Sample::I16 => self.pcm.io_i16().and_then(|io| io.readi(&mut i16s)),
                Sample::F32 => self.pcm.io_f32().and_then(|io| io.readi(&mut f32s)),
            };
            let frames = match read {
                Ok(f) => f.min(self.period),
                Err(e) => match self.on_error(e) {
                    Recovered::Yes => continue,
                    Recovered::Dead => return,
                },
            };
            self.shared.data_flowed();
            self.note_latency();
            for (i, m) in mono.iter_mut().enumerate().take(frames) {
                let at = i * self.channels..(i + 1) * self.channels;
                *m = match self.sample {
                    Sample::I16 => i16s[at]
                        .iter()
                        .map(|s| f32::from(*s) / 32768.0)
                        .sum::<f32>(),
                    Sample::F32 => f32s[at].iter().sum::<f32>(),
                } * scale;
            }
            let pushed = prod.push_slice(&mono[..frames]);
            if pushed < frames {
                self.shared
                    .overrun_samples
                    .fetch_add((frames - pushed) as u64, Ordering::Relaxed);
            }
            self.shared.wake();
        }
        let _ = self.pcm.drop();
    }

    fn playback(mut self, mut cons: HeapCons<f32>, prime: usize) {
        let n = self.period * self.channels;
        let mut i16s = vec![0i16; n];
        let mut f32s = vec![0f32; n];
        let mut mono = vec![0f32; self.period];
        let mut playing = false;
        while !self.stopped() {
            if !playing && cons.occupied_len() >= prime {
                playing = true;
                self.shared.playing.store(true, Ordering::Release);
            }
            let got = if playing {
                cons.pop_slice(&mut mono)
            } else {
                0
            };
            // The ring has room for the next frame now, a period before
            // the device needs it.
            self.shared.wake();
            if got < self.period {
                mono[got..].fill(0.0);
                if playing {
                    self.shared.underruns.fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .underrun_samples
                        .fetch_add((self.period - got) as u64, Ordering::Relaxed);
                    // Wait for a frame and a half again before resuming.
                    playing = false;
                    self.shared.playing.store(false, Ordering::Release);
                }
            }
            for (i, m) in mono.iter().enumerate() {
                let at = i * self.channels..(i + 1) * self.channels;
                match self.sample {
                    Sample::I16 => i16s[at].fill((m.clamp(-1.0, 1.0) * 32767.0) as i16),
                    Sample::F32 => f32s[at].fill(*m),
                }
            }
            let mut done = 0;
            while done < self.period && !self.stopped() {
                let (a, b) = (done * self.channels, n);
                let wrote = match self.sample {
                    Sample::I16 => self.pcm.io_i16().and_then(|io| io.writei(&i16s[a..b])),
                    Sample::F32 => self.pcm.io_f32().and_then(|io| io.writei(&f32s[a..b])),
                };
                match wrote {
                    Ok(f) => done += f.max(1),
                    Err(e) => match self.on_error(e) {
                        Recovered::Yes => {}
                        Recovered::Dead => return,
                    },
                }
            }
            self.shared.data_flowed();
            self.note_latency();
        }
        let _ = self.pcm.drop();
    }
}

/// `EPIPE` (Linux): an overrun (capture) or underrun (playback).
const EPIPE: i32 = 32;
