//! The sound-device edge: cpal capture and playback.
//!
//! ```text
//!  capture:  cpal callback (device format, rate, channels)
//!              -> to f32, average channels -> ringbuf SPSC (device rate, mono)
//!            media thread: DeviceInput::read_frame -> rubato -> 48 kHz frame
//!  playback: media thread: DeviceOutput::write_frame -> rubato -> ringbuf SPSC
//!            cpal callback <- ringbuf, copied to every channel, to device format
//! ```
//!
//! The callbacks touch nothing but their ring buffer and a few atomic
//! counters: no lock, no allocation, no blocking. cpal's error callback
//! hands its error over another SPSC ring; the media thread turns it into
//! an [`AudioEvent`].
//!
//! On Linux an ALSA capture device is driven by our own blocking thread
//! instead of cpal's worker (see [`crate::alsa_io`]: a third of the CPU of
//! a call through PulseAudio's plugin), with the same rings and counters;
//! `CRYPTIC_AUDIO_BACKEND=cpal` keeps cpal's worker for both directions,
//! `alsa` takes our thread for playback too (see `alsa_pcm`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample, StreamConfig};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::codec::{FrameDuration, SAMPLE_RATE};
use crate::resample::{f32_to_i16, i16_to_f32, CaptureResampler, PlaybackResampler};
use crate::sink::Sink;
use crate::source::{Read, Source};
use crate::{AudioEvent, Direction, Error, StreamStats};

/// How long cpal may take to open a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Samples a callback converts at a time (a stack buffer).
const CHUNK: usize = 256;
/// How long errors may go on with no audio between them before the stream
/// is considered dead: ALSA's PulseAudio plugin answers EIO forever once
/// the server is gone (and cpal keeps retrying), but also for a while when
/// a stream starts on a sink that is catching up.
const DEAD_AFTER: Duration = Duration::from_secs(3);
/// Capture latency above which the oldest samples are dropped.
const MAX_CAPTURE_BACKLOG: Duration = Duration::from_millis(200);
/// Playback latency above which a new frame is dropped rather than queued,
/// so that a device that stalled does not leave the call delayed for good.
const MAX_PLAYBACK_BACKLOG: Duration = Duration::from_millis(100);

/// The playback ring's standing queue is measured over this many frames
/// (its lowest level just before a write)...
const TRIM_WINDOW: u32 = 50;
/// ... and whatever of it lies above this margin is dropped once, so that
/// a queue built up at start (or after a stall) does not stay in the
/// mouth-to-ear delay for the rest of the call.
const TRIM_MARGIN: Duration = Duration::from_millis(12);

/// The device period asked for, capture and playback. 5 ms periods (10 ms
/// in the device) cut the device floor from 62-68 ms to 42-46 ms against
/// 10 ms periods, with no underrun (`PASSTHROUGH=1
/// audio/quality/device-latency.sh`, 3 runs each).
const PERIOD_MS: u32 = 5;

/// How much more than one callback period the playback ring keeps when
/// the writer is paced by [`Sink::wants_frame`], to start with: what is
/// left if the writer misses a wake-up. A writer woken by the device after
/// every period ([`DeviceWaker`]) refills within a millisecond or so.
/// Mouth to ear with 10 ms frames, per run (`audio/quality/device-latency.sh`):
/// 6 ms (for a writer polling every 2 ms) 62-63 ms; 4 ms with the waker
/// 58-63; 2 ms 54-58, no underrun in 10 runs. Every underrun adds
/// [`SLACK_STEP`] up to [`MAX_REFILL_SLACK`], so a device or a machine that
/// needs more gets it after a click or two.
const REFILL_SLACK: Duration = Duration::from_millis(2);
/// What one underrun adds to the slack.
const SLACK_STEP: Duration = Duration::from_millis(1);
/// The most slack the underruns can earn.
const MAX_REFILL_SLACK: Duration = Duration::from_millis(10);

/// The playback ring's refill level: one period plus a slack that grows
/// by [`SLACK_STEP`] with each underrun the device counts.
#[derive(Debug)]
struct Refill {
    /// Below this many queued samples the device wants the next frame.
    level: usize,
    /// Underruns already paid for.
    seen: u64,
    step: usize,
    max: usize,
}

impl Refill {
    fn new(period: usize, rate: u32) -> Self {
        let samples = |d: Duration| (u128::from(rate) * d.as_micros() / 1_000_000) as usize;
        Refill {
            level: period + samples(REFILL_SLACK),
            seen: 0,
            step: samples(SLACK_STEP),
            max: period + samples(MAX_REFILL_SLACK),
        }
    }

    /// The device has counted `underruns` in all: the level after them.
    fn after(&mut self, underruns: u64) -> usize {
        if underruns > self.seen {
            let more = usize::try_from(underruns - self.seen).unwrap_or(usize::MAX);
            self.level = self
                .level
                .saturating_add(more.saturating_mul(self.step))
                .min(self.max);
            self.seen = underruns;
            tracing::debug!(underruns, refill = self.level, "playback slack raised");
        }
        self.level
    }
}

/// A sound device as [`list_devices`] reports it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The id to use in `device:ID` (for ALSA, the PCM name: `default`,
    /// `pulse`, `hw:0,0`...).
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// Whether it can capture.
    pub input: bool,
    /// Whether it can play.
    pub output: bool,
    /// Whether it is the host's default capture device.
    pub default_input: bool,
    /// Whether it is the host's default playback device.
    pub default_output: bool,
}

fn device_id(d: &cpal::Device) -> Option<String> {
    d.id().ok().map(|id| id.id().to_owned())
}

/// Lists the sound devices of the default host (ALSA on Linux).
pub fn list_devices() -> Result<Vec<DeviceInfo>, Error> {
    let host = cpal::default_host();
    let def_in = host.default_input_device().and_then(|d| device_id(&d));
    let def_out = host.default_output_device().and_then(|d| device_id(&d));
    let mut out = Vec::new();
    for d in host.devices()? {
        let Some(id) = device_id(&d) else { continue };
        let name = d
            .description()
            .map(|desc| desc.name().to_owned())
            .unwrap_or_else(|_| id.clone());
        out.push(DeviceInfo {
            default_input: def_in.as_deref() == Some(id.as_str()),
            default_output: def_out.as_deref() == Some(id.as_str()),
            input: d.supports_input(),
            output: d.supports_output(),
            id,
            name,
        });
    }
    Ok(out)
}

fn find_device(
    host: &cpal::Host,
    name: Option<&str>,
    dir: Direction,
) -> Result<cpal::Device, Error> {
    let Some(name) = name else {
        let d = match dir {
            Direction::Capture => host.default_input_device(),
            Direction::Playback => host.default_output_device(),
        };
        return d.ok_or_else(|| Error::NoDevice("default".into()));
    };
    if let Ok(devices) = host.devices() {
        for d in devices {
            let by_id = device_id(&d).as_deref() == Some(name);
            let by_name = d.description().is_ok_and(|desc| desc.name() == name);
            if by_id || by_name {
                return Ok(d);
            }
        }
    }
    host.device_by_id(&cpal::DeviceId::new(host.id(), name))
        .ok_or_else(|| Error::NoDevice(name.to_owned()))
}

/// Picks the stream format: the device default, unless its sample format
/// is one we do not convert, in which case the first f32 or i16 range.
fn pick_config(
    device: &cpal::Device,
    dir: Direction,
) -> Result<cpal::SupportedStreamConfig, Error> {
    let default = match dir {
        Direction::Capture => device.default_input_config(),
        Direction::Playback => device.default_output_config(),
    }?;
    let ranges: Vec<_> = match dir {
        Direction::Capture => device.supported_input_configs()?.collect(),
        Direction::Playback => device.supported_output_configs()?.collect(),
    };
    if is_handled(default.sample_format()) {
        return Ok(default);
    }
    ranges
        .into_iter()
        .filter(|r| matches!(r.sample_format(), SampleFormat::F32 | SampleFormat::I16))
        .map(|r| {
            if r.contains_rate(SAMPLE_RATE) {
                r.with_sample_rate(SAMPLE_RATE)
            } else {
                r.with_max_sample_rate()
            }
        })
        .next()
        .ok_or_else(|| {
            Error::Device(format!(
                "no usable sample format (default {})",
                default.sample_format()
            ))
        })
}

fn is_handled(f: SampleFormat) -> bool {
    matches!(
        f,
        SampleFormat::F32
            | SampleFormat::F64
            | SampleFormat::I8
            | SampleFormat::I16
            | SampleFormat::I32
            | SampleFormat::U8
            | SampleFormat::U16
            | SampleFormat::U32
    )
}

/// What went wrong in a stream, handed from the device side to the media
/// thread.
#[derive(Debug)]
pub(crate) enum Fault {
    /// An overrun or underrun (recovered).
    Xrun,
    /// An error the stream may recover from.
    Glitch(String),
    /// The stream delivers nothing more.
    Fatal(String),
}

impl Fault {
    fn from_cpal(e: &cpal::Error) -> Self {
        if e.kind() == cpal::ErrorKind::Xrun {
            Fault::Xrun
        } else if is_fatal(e) {
            Fault::Fatal(e.to_string())
        } else {
            Fault::Glitch(e.to_string())
        }
    }

    fn reason(&self) -> String {
        match self {
            Fault::Xrun => "buffer overrun or underrun".into(),
            Fault::Glitch(r) | Fault::Fatal(r) => r.clone(),
        }
    }
}

/// The device side of a stream: cpal's, or our ALSA thread.
enum Stream {
    Cpal(cpal::Stream),
    #[cfg(target_os = "linux")]
    Alsa(crate::alsa_io::AlsaStream),
}

impl Stream {
    fn pause(&self) {
        match self {
            Stream::Cpal(s) => {
                let _ = s.pause();
            }
            #[cfg(target_os = "linux")]
            Stream::Alsa(s) => s.stop(),
        }
    }
}

/// The ALSA PCM name to drive with our own thread (see [`crate::alsa_io`]),
/// when the device is an ALSA one: capture by default, where cpal's worker
/// cost most of the CPU; playback too with `CRYPTIC_AUDIO_BACKEND=alsa`,
/// neither with `CRYPTIC_AUDIO_BACKEND=cpal`.
///
/// Measured with `audio/quality/device-latency.sh` (release, two users in
/// one process, PulseAudio through ALSA's plugin): cpal for both 85-100 ms
/// mouth to ear and 15-20 % of a core per user; our thread for capture
/// 96-100 ms and 5.1-5.4 %; our thread for both 104-114 ms and 5.1 %
/// (playback through it holds a fuller device buffer).
fn alsa_pcm(host: &cpal::Host, device: &cpal::Device, dir: Direction) -> Option<String> {
    if !cfg!(target_os = "linux") || host.id() != cpal::HostId::Alsa {
        return None;
    }
    let ours = match std::env::var("CRYPTIC_AUDIO_BACKEND").as_deref() {
        Ok("cpal") => false,
        Ok("alsa") => true,
        _ => dir == Direction::Capture,
    };
    if !ours {
        return None;
    }
    device_id(device)
}

/// Called by a sound device's own thread each time it moved audio through
/// its ring (a period captured, a period played), so that the media loop
/// can wake then rather than find out at its next poll. It runs on the
/// audio thread: it must be quick and never block
/// (`tokio::sync::Notify::notify_one` is both).
#[derive(Clone)]
pub struct DeviceWaker(Arc<dyn Fn() + Send + Sync>);

impl DeviceWaker {
    /// Wraps the function to call.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(wake))
    }
}

impl std::fmt::Debug for DeviceWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceWaker")
    }
}

/// Counters shared between a callback and the media thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Capture: samples dropped because the ring was full.
    /// Playback: samples not queued because the ring was full.
    pub(crate) overrun_samples: AtomicU64,
    /// Playback callbacks that ran dry after playing had started.
    pub(crate) underruns: AtomicU64,
    /// Silence samples played because of those underruns.
    pub(crate) underrun_samples: AtomicU64,
    /// Set by the error callback on a fatal stream error.
    pub(crate) failed: AtomicBool,
    /// Non-xrun errors since the data callback last ran.
    pub(crate) errors_in_row: AtomicU32,
    /// Playback: the callback is playing from the ring (it was primed and
    /// has not run dry since).
    pub(crate) playing: AtomicBool,
    /// The sound system's own latency at the last callback, in µs (see
    /// [`StreamStats::device_latency`]).
    pub(crate) latency_us: AtomicU64,
    /// Told after every period (set once, by the media thread).
    pub(crate) waker: OnceLock<DeviceWaker>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            overrun_samples: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            underrun_samples: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            errors_in_row: AtomicU32::new(0),
            playing: AtomicBool::new(false),
            latency_us: AtomicU64::new(0),
            waker: OnceLock::new(),
        }
    }
}

impl Shared {
    /// A period went through the ring: the media loop may act on it now.
    pub(crate) fn wake(&self) {
        if let Some(w) = self.waker.get() {
            (w.0)();
        }
    }

    pub(crate) fn data_flowed(&self) {
        if self.errors_in_row.load(Ordering::Relaxed) != 0 {
            self.errors_in_row.store(0, Ordering::Relaxed);
        }
    }
}

fn error_callback(
    mut events: HeapProd<Fault>,
    shared: Arc<Shared>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e: cpal::Error| {
        if e.kind() != cpal::ErrorKind::Xrun {
            shared.errors_in_row.fetch_add(1, Ordering::Relaxed);
        }
        if is_fatal(&e) {
            shared.failed.store(true, Ordering::Release);
        }
        // A full event ring drops the newest event; the failed flag stays.
        let _ = events.try_push(Fault::from_cpal(&e));
    }
}

fn capture_callback<T>(
    channels: usize,
    mut prod: HeapProd<f32>,
    shared: Arc<Shared>,
) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let scale = 1.0 / channels as f32;
    move |data: &[T], info: &cpal::InputCallbackInfo| {
        shared.data_flowed();
        let t = info.timestamp();
        if let Some(d) = t.callback.checked_duration_since(t.capture) {
            shared
                .latency_us
                .store(d.as_micros() as u64, Ordering::Relaxed);
        }
        let mut mono = [0.0f32; CHUNK];
        for block in data.chunks(channels * CHUNK) {
            let mut n = 0;
            for (dst, frame) in mono.iter_mut().zip(block.chunks_exact(channels)) {
                *dst = frame.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() * scale;
                n += 1;
            }
            let pushed = prod.push_slice(&mono[..n]);
            if pushed < n {
                shared
                    .overrun_samples
                    .fetch_add((n - pushed) as u64, Ordering::Relaxed);
            }
        }
        shared.wake();
    }
}

fn playback_callback<T>(
    channels: usize,
    prime: usize,
    mut cons: HeapCons<f32>,
    shared: Arc<Shared>,
) -> impl FnMut(&mut [T], &cpal::OutputCallbackInfo) + Send + 'static
where
    T: SizedSample + FromSample<f32>,
{
    let mut playing = false;
    move |data: &mut [T], info: &cpal::OutputCallbackInfo| {
        shared.data_flowed();
        let t = info.timestamp();
        if let Some(d) = t.playback.checked_duration_since(t.callback) {
            shared
                .latency_us
                .store(d.as_micros() as u64, Ordering::Relaxed);
        }
        if !playing && cons.occupied_len() >= prime {
            playing = true;
            shared.playing.store(true, Ordering::Release);
        }
        let mut mono = [0.0f32; CHUNK];
        for block in data.chunks_mut(channels * CHUNK) {
            let n = block.len() / channels;
            let got = if playing {
                cons.pop_slice(&mut mono[..n])
            } else {
                0
            };
            if got < n {
                mono[got..n].fill(0.0);
                if playing {
                    shared.underruns.fetch_add(1, Ordering::Relaxed);
                    shared
                        .underrun_samples
                        .fetch_add((n - got) as u64, Ordering::Relaxed);
                    // wait for a frame's worth again before resuming
                    playing = false;
                    shared.playing.store(false, Ordering::Release);
                }
            }
            for (frame, s) in block.chunks_exact_mut(channels).zip(&mono[..n]) {
                frame.fill(T::from_sample(*s));
            }
        }
        shared.wake();
    }
}

macro_rules! build_for_format {
    ($format:expr, $build:ident, $device:expr, $config:expr, $make_cb:ident, $err_cb:expr, $($arg:expr),*) => {
        match $format {
            SampleFormat::F32 => $device.$build::<f32, _, _>($config, $make_cb::<f32>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::F64 => $device.$build::<f64, _, _>($config, $make_cb::<f64>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::I8 => $device.$build::<i8, _, _>($config, $make_cb::<i8>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::I16 => $device.$build::<i16, _, _>($config, $make_cb::<i16>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::I32 => $device.$build::<i32, _, _>($config, $make_cb::<i32>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::U8 => $device.$build::<u8, _, _>($config, $make_cb::<u8>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::U16 => $device.$build::<u16, _, _>($config, $make_cb::<u16>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            SampleFormat::U32 => $device.$build::<u32, _, _>($config, $make_cb::<u32>($($arg),*), $err_cb, Some(OPEN_TIMEOUT)),
            other => return Err(Error::Device(format!("unsupported sample format {other}"))),
        }
    };
}

/// The stream, the ends of its rings, and its counters.
struct Opened<R> {
    stream: Stream,
    ring: R,
    events: HeapCons<Fault>,
    shared: Arc<Shared>,
    rate: u32,
    channels: u16,
    format: String,
    /// Frames per period, when known.
    period: Option<usize>,
}

/// The configurations to try: a fixed period of `period_ms` (cpal then
/// keeps two periods in the device buffer) when the device allows it, else
/// the device's default.
fn stream_configs(supported: &cpal::SupportedStreamConfig, period_ms: u32) -> [StreamConfig; 2] {
    let mut fixed = supported.config();
    let want = supported.sample_rate() * period_ms / 1000;
    fixed.buffer_size = match supported.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } => {
            cpal::BufferSize::Fixed(want.clamp(*min, *max))
        }
        cpal::SupportedBufferSize::Unknown => cpal::BufferSize::Default,
    };
    let mut default = supported.config();
    default.buffer_size = cpal::BufferSize::Default;
    [fixed, default]
}

fn open_capture(
    device: &cpal::Device,
    supported: &cpal::SupportedStreamConfig,
) -> Result<Opened<HeapCons<f32>>, Error> {
    let rate = supported.sample_rate() as usize;
    let channels = usize::from(supported.channels().max(1));
    let mut last = None;
    // Short periods: a capture overrun only costs a late read
    for config in stream_configs(supported, PERIOD_MS) {
        let (prod, cons) = HeapRb::<f32>::new((rate / 2).max(4 * CHUNK)).split();
        let (eprod, econs) = HeapRb::<Fault>::new(16).split();
        let shared = Arc::new(Shared::default());
        let err_cb = error_callback(eprod, Arc::clone(&shared));
        let built = build_for_format!(
            supported.sample_format(),
            build_input_stream,
            device,
            config,
            capture_callback,
            err_cb,
            channels,
            prod,
            Arc::clone(&shared)
        );
        match built {
            Ok(stream) => {
                return Ok(Opened {
                    stream: Stream::Cpal(stream),
                    ring: cons,
                    events: econs,
                    shared,
                    rate: config.sample_rate,
                    channels: config.channels,
                    format: supported.sample_format().to_string(),
                    period: None,
                })
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| Error::Device("no stream".into()), Error::from))
}

fn open_playback(
    device: &cpal::Device,
    supported: &cpal::SupportedStreamConfig,
    prime: usize,
) -> Result<Opened<HeapProd<f32>>, Error> {
    let rate = supported.sample_rate() as usize;
    let channels = usize::from(supported.channels().max(1));
    let mut last = None;
    // Short periods (two in the device): 20 ms periods cost about 25 ms
    // more mouth to ear through PulseAudio than 10 ms (96 against 121 ms
    // median of 4 runs, audio/quality/device-latency.sh), and 10 ms about
    // 20 ms more than 5; underruns are counted in the stream's stats.
    for config in stream_configs(supported, PERIOD_MS) {
        let (prod, cons) = HeapRb::<f32>::new((rate / 2).max(4 * CHUNK)).split();
        let (eprod, econs) = HeapRb::<Fault>::new(16).split();
        let shared = Arc::new(Shared::default());
        let err_cb = error_callback(eprod, Arc::clone(&shared));
        let built = build_for_format!(
            supported.sample_format(),
            build_output_stream,
            device,
            config,
            playback_callback,
            err_cb,
            channels,
            prime,
            cons,
            Arc::clone(&shared)
        );
        match built {
            Ok(stream) => {
                let period = stream
                    .buffer_size()
                    .ok()
                    .filter(|&p| p > 0)
                    .map(|p| p as usize);
                return Ok(Opened {
                    stream: Stream::Cpal(stream),
                    ring: prod,
                    events: econs,
                    shared,
                    rate: config.sample_rate,
                    channels: config.channels,
                    format: supported.sample_format().to_string(),
                    period,
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| Error::Device("no stream".into()), Error::from))
}

/// Capture from the ALSA PCM `pcm` on our own thread; `None` (said at
/// debug) when ALSA refuses, for cpal to try.
#[cfg(target_os = "linux")]
fn open_alsa_capture(pcm: &str) -> Option<Opened<HeapCons<f32>>> {
    let (prod, cons) = HeapRb::<f32>::new((SAMPLE_RATE as usize / 2).max(4 * CHUNK)).split();
    let (eprod, econs) = HeapRb::<Fault>::new(16).split();
    let shared = Arc::new(Shared::default());
    match crate::alsa_io::open_capture(pcm, PERIOD_MS, prod, eprod, Arc::clone(&shared)) {
        Ok(s) => Some(Opened {
            rate: s.rate,
            channels: s.channels,
            format: format!("{} (ALSA thread)", s.format),
            period: Some(s.period),
            stream: Stream::Alsa(s),
            ring: cons,
            events: econs,
            shared,
        }),
        Err(e) => {
            tracing::debug!("ALSA capture {pcm}: {e}; trying cpal");
            None
        }
    }
}

/// Playback to the ALSA PCM `pcm` on our own thread, starting once
/// `prime_at(rate)` samples are queued; `None` (said at debug) when ALSA
/// refuses, for cpal to try.
#[cfg(target_os = "linux")]
fn open_alsa_playback(
    pcm: &str,
    prime_at: impl FnOnce(u32) -> usize,
) -> Option<(Opened<HeapProd<f32>>, usize)> {
    let (prod, cons) = HeapRb::<f32>::new((SAMPLE_RATE as usize / 2).max(4 * CHUNK)).split();
    let (eprod, econs) = HeapRb::<Fault>::new(16).split();
    let shared = Arc::new(Shared::default());
    let opened =
        crate::alsa_io::open_playback(pcm, PERIOD_MS, prime_at, cons, eprod, Arc::clone(&shared));
    match opened {
        Ok((s, prime)) => Some((
            Opened {
                rate: s.rate,
                channels: s.channels,
                format: format!("{} (ALSA thread)", s.format),
                period: Some(s.period),
                stream: Stream::Alsa(s),
                ring: prod,
                events: econs,
                shared,
            },
            prime,
        )),
        Err(e) => {
            tracing::debug!("ALSA playback {pcm}: {e}; trying cpal");
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn open_alsa_capture(_: &str) -> Option<Opened<HeapCons<f32>>> {
    None
}

#[cfg(not(target_os = "linux"))]
fn open_alsa_playback(
    _: &str,
    _: impl FnOnce(u32) -> usize,
) -> Option<(Opened<HeapProd<f32>>, usize)> {
    None
}

/// Errors after which cpal's stream delivers nothing more (its ALSA
/// worker returns on `DeviceNotAvailable`); others are glitches.
fn is_fatal(e: &cpal::Error) -> bool {
    matches!(
        e.kind(),
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::StreamInvalidated
    )
}

fn to_event(dir: Direction, e: &Fault) -> AudioEvent {
    match e {
        Fault::Xrun => AudioEvent::Xrun { direction: dir },
        Fault::Fatal(reason) => AudioEvent::DeviceFailed {
            direction: dir,
            reason: reason.clone(),
        },
        Fault::Glitch(reason) => AudioEvent::DeviceError {
            direction: dir,
            reason: reason.clone(),
        },
    }
}

/// Turns the error ring into events, and says once that the stream died.
#[derive(Debug, Default)]
struct Watch {
    last_reason: Option<String>,
    failure_reported: bool,
    erroring_since: Option<Instant>,
}

impl Watch {
    /// Whether the stream is dead: a fatal error, or errors with no audio
    /// for [`DEAD_AFTER`]. Runs on the media thread.
    fn dead(&mut self, shared: &Shared, now: Instant) -> bool {
        if shared.failed.load(Ordering::Acquire) {
            return true;
        }
        if shared.errors_in_row.load(Ordering::Relaxed) == 0 {
            self.erroring_since = None;
            return false;
        }
        let since = *self.erroring_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= DEAD_AFTER {
            shared.failed.store(true, Ordering::Release);
            return true;
        }
        false
    }

    fn poll(
        &mut self,
        events: &mut HeapCons<Fault>,
        shared: &Shared,
        dir: Direction,
    ) -> Option<AudioEvent> {
        if let Some(e) = events.try_pop() {
            let ev = to_event(dir, &e);
            if let AudioEvent::DeviceFailed { .. } = ev {
                self.failure_reported = true;
            }
            self.last_reason = Some(e.reason());
            return Some(ev);
        }
        if shared.failed.load(Ordering::Acquire) && !self.failure_reported {
            self.failure_reported = true;
            let reason = self
                .last_reason
                .take()
                .unwrap_or_else(|| "stream stopped".into());
            return Some(AudioEvent::DeviceFailed {
                direction: dir,
                reason,
            });
        }
        None
    }
}

/// Captures from a sound device: a [`Source`] paced by the hardware.
pub struct DeviceInput {
    stream: Stream,
    cons: HeapCons<f32>,
    events: HeapCons<Fault>,
    shared: Arc<Shared>,
    watch: Watch,
    resampler: Option<CaptureResampler>,
    staging: Vec<f32>,
    frame_f32: Vec<f32>,
    frame: FrameDuration,
    rate: u32,
    channels: u16,
    frames: u64,
    dropped: u64,
}

impl std::fmt::Debug for DeviceInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceInput")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl DeviceInput {
    /// Opens the capture device `name` (the default one when `None`) and
    /// starts it.
    pub fn open(name: Option<&str>, frame: FrameDuration) -> Result<Self, Error> {
        let host = cpal::default_host();
        let device = find_device(&host, name, Direction::Capture)?;
        let opened = match alsa_pcm(&host, &device, Direction::Capture)
            .and_then(|pcm| open_alsa_capture(&pcm))
        {
            Some(o) => o,
            None => {
                let supported = pick_config(&device, Direction::Capture)?;
                let o = open_capture(&device, &supported)?;
                if let Stream::Cpal(s) = &o.stream {
                    s.play()?;
                }
                o
            }
        };
        let rate = opened.rate;
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(CaptureResampler::new(rate, frame.samples())?)
        };
        let staging_len = resampler
            .as_ref()
            .map_or(frame.samples(), CaptureResampler::input_max);
        tracing::debug!(
            rate,
            channels = opened.channels,
            format = %opened.format,
            "capture started"
        );
        Ok(Self {
            stream: opened.stream,
            cons: opened.ring,
            events: opened.events,
            shared: opened.shared,
            watch: Watch::default(),
            resampler,
            staging: vec![0.0; staging_len],
            frame_f32: vec![0.0; frame.samples()],
            frame,
            rate,
            channels: opened.channels,
            frames: 0,
            dropped: 0,
        })
    }

    /// The device's sample rate and channel count.
    pub fn device_format(&self) -> (u32, u16) {
        (self.rate, self.channels)
    }
}

impl Source for DeviceInput {
    fn set_waker(&mut self, waker: DeviceWaker) {
        // Set once: a second waker for the same stream is ignored.
        let _ = self.shared.waker.set(waker);
    }

    fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Result<Read, Error> {
        let n = self.frame.samples();
        if out.len() != n {
            return Err(Error::FrameSize {
                expected: n,
                got: out.len(),
            });
        }
        let need = self
            .resampler
            .as_ref()
            .map_or(n, CaptureResampler::input_needed);
        let queued = self.cons.occupied_len();
        if queued < need {
            if self.watch.dead(&self.shared, now) {
                return Err(Error::DeviceLost);
            }
            return Ok(Read::Pending);
        }
        // Bound the latency if the reader fell behind.
        let max = (u128::from(self.rate) * MAX_CAPTURE_BACKLOG.as_millis() / 1000) as usize;
        if queued > max + need {
            let skip = queued - need - max / 4;
            self.dropped += self.cons.skip(skip) as u64;
        }
        let staging = &mut self.staging[..need];
        let got = self.cons.pop_slice(staging);
        debug_assert_eq!(got, need);
        match self.resampler.as_mut() {
            Some(rs) => {
                rs.process(staging, &mut self.frame_f32)?;
                for (o, s) in out.iter_mut().zip(&self.frame_f32) {
                    *o = f32_to_i16(*s);
                }
            }
            None => {
                for (o, s) in out.iter_mut().zip(staging.iter()) {
                    *o = f32_to_i16(*s);
                }
            }
        }
        self.frames += 1;
        Ok(Read::Frame)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<AudioEvent> {
        self.watch
            .poll(&mut self.events, &self.shared, Direction::Capture)
    }

    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            dropped_samples: self.dropped + self.shared.overrun_samples.load(Ordering::Relaxed),
            underruns: 0,
            underrun_samples: 0,
            queued_samples: self.cons.occupied_len(),
            device_rate: self.rate,
            device_latency: Duration::from_micros(self.shared.latency_us.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for DeviceInput {
    fn drop(&mut self) {
        self.stream.pause();
    }
}

/// Plays to a sound device: a [`Sink`] that never blocks.
pub struct DeviceOutput {
    stream: Stream,
    prod: HeapProd<f32>,
    events: HeapCons<Fault>,
    shared: Arc<Shared>,
    watch: Watch,
    resampler: Option<PlaybackResampler>,
    frame_f32: Vec<f32>,
    resampled: Vec<f32>,
    frame: FrameDuration,
    rate: u32,
    channels: u16,
    frames: u64,
    trimmer: Trimmer,
    /// What was queued since the last `take_played` (at 48 kHz only).
    played: Vec<i16>,
    /// Below this many queued samples the device wants the next frame: one
    /// callback period plus a slack (see [`REFILL_SLACK`]).
    refill: Refill,
    /// Queued samples at which the callback starts (again) to play.
    prime: usize,
}

/// Finds and drops a standing queue in the playback ring (see
/// [`TRIM_WINDOW`]).
#[derive(Debug)]
struct Trimmer {
    /// The lowest ring level seen just before a write in this window.
    low_water: usize,
    /// Writes in this window.
    window: u32,
    /// Samples left out so far.
    trimmed: u64,
}

impl Trimmer {
    /// How many of the next `len` samples to leave out, given the ring's
    /// `level` before the write: the part of the window's lowest level
    /// above [`TRIM_MARGIN`], once per window.
    fn observe(&mut self, level: usize, len: usize, margin: usize) -> usize {
        self.low_water = self.low_water.min(level);
        self.window += 1;
        if self.window < TRIM_WINDOW {
            return 0;
        }
        let excess = self.low_water.saturating_sub(margin).min(len);
        self.low_water = usize::MAX;
        self.window = 0;
        self.trimmed += excess as u64;
        excess
    }
}

impl std::fmt::Debug for DeviceOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceOutput")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl DeviceOutput {
    /// Opens the playback device `name` (the default one when `None`) and
    /// starts it; it plays silence until the first frame is written.
    pub fn open(name: Option<&str>, frame: FrameDuration) -> Result<Self, Error> {
        let host = cpal::default_host();
        let device = find_device(&host, name, Direction::Playback)?;
        // Start playing once one and a half frames are queued: a frame
        // arriving a little late then does not make the device run dry.
        let prime_at = |rate: u32| {
            (u64::from(rate) * frame.samples() as u64 * 3 / 2 / u64::from(SAMPLE_RATE)) as usize
        };
        let alsa = alsa_pcm(&host, &device, Direction::Playback)
            .and_then(|pcm| open_alsa_playback(&pcm, prime_at));
        let (opened, prime) = match alsa {
            Some(o) => o,
            None => {
                let supported = pick_config(&device, Direction::Playback)?;
                let prime = prime_at(supported.sample_rate());
                let o = open_playback(&device, &supported, prime)?;
                if let Stream::Cpal(s) = &o.stream {
                    s.play()?;
                }
                (o, prime)
            }
        };
        let rate = opened.rate;
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(PlaybackResampler::new(rate, frame.samples())?)
        };
        let out_len = resampler
            .as_ref()
            .map_or(frame.samples(), PlaybackResampler::output_max);
        let period = opened.period.unwrap_or(rate as usize / 100);
        let refill = Refill::new(period, rate);
        tracing::debug!(
            rate,
            channels = opened.channels,
            format = %opened.format,
            period,
            "playback started"
        );
        Ok(Self {
            stream: opened.stream,
            prod: opened.ring,
            events: opened.events,
            shared: opened.shared,
            watch: Watch::default(),
            resampler,
            frame_f32: vec![0.0; frame.samples()],
            resampled: vec![0.0; out_len],
            frame,
            rate,
            channels: opened.channels,
            frames: 0,
            trimmer: Trimmer {
                low_water: usize::MAX,
                window: 0,
                trimmed: 0,
            },
            played: Vec::with_capacity(4 * frame.samples()),
            refill,
            prime,
        })
    }

    /// The device's sample rate and channel count.
    pub fn device_format(&self) -> (u32, u16) {
        (self.rate, self.channels)
    }
}

impl Sink for DeviceOutput {
    fn set_waker(&mut self, waker: DeviceWaker) {
        // Set once: a second waker for the same stream is ignored.
        let _ = self.shared.waker.set(waker);
    }

    /// Queues one frame for the device. When more than 100 ms are already
    /// queued (the device stalled or runs slower than the sender), the frame
    /// is dropped and counted in [`StreamStats::dropped_samples`].
    fn write_frame(&mut self, frame: &[i16]) -> Result<(), Error> {
        let n = self.frame.samples();
        if frame.len() != n {
            return Err(Error::FrameSize {
                expected: n,
                got: frame.len(),
            });
        }
        if self.watch.dead(&self.shared, Instant::now()) {
            return Err(Error::DeviceLost);
        }
        for (d, s) in self.frame_f32.iter_mut().zip(frame) {
            *d = i16_to_f32(*s);
        }
        let level = self.prod.occupied_len();
        let samples = match self.resampler.as_mut() {
            Some(rs) => {
                let w = rs.process(&self.frame_f32, &mut self.resampled)?;
                &self.resampled[..w]
            }
            None => &self.frame_f32[..],
        };
        let max = (u128::from(self.rate) * MAX_PLAYBACK_BACKLOG.as_millis() / 1000) as usize;
        let pushed = if level > max {
            0
        } else {
            // A writer paced by `wants_frame` keeps up to `refill` queued
            // on purpose; only more than that is a standing queue.
            let margin = (u128::from(self.rate) * TRIM_MARGIN.as_millis() / 1000) as usize;
            let refill = self
                .refill
                .after(self.shared.underruns.load(Ordering::Relaxed));
            let skip = self
                .trimmer
                .observe(level, samples.len(), margin.max(refill));
            let pushed = self.prod.push_slice(&samples[skip..]);
            if self.resampler.is_none() && self.played.len() < 8 * n {
                let queued = &samples[skip..skip + pushed];
                self.played.extend(queued.iter().map(|&s| f32_to_i16(s)));
            }
            skip + pushed
        };
        if pushed < samples.len() {
            self.shared
                .overrun_samples
                .fetch_add((samples.len() - pushed) as u64, Ordering::Relaxed);
        }
        self.frames += 1;
        Ok(())
    }

    fn poll_event(&mut self) -> Option<AudioEvent> {
        self.watch
            .poll(&mut self.events, &self.shared, Direction::Playback)
    }

    fn wants_frame(&self) -> Option<bool> {
        let queued = self.prod.occupied_len();
        let playing = self.shared.playing.load(Ordering::Acquire);
        Some(queued < self.refill.level || (!playing && queued < self.prime))
    }

    fn take_played(&mut self, into: &mut Vec<i16>) -> bool {
        if self.resampler.is_some() {
            return false;
        }
        into.append(&mut self.played);
        true
    }

    fn stats(&self) -> StreamStats {
        StreamStats {
            frames: self.frames,
            dropped_samples: self.shared.overrun_samples.load(Ordering::Relaxed),
            underruns: self.shared.underruns.load(Ordering::Relaxed),
            underrun_samples: self.shared.underrun_samples.load(Ordering::Relaxed),
            queued_samples: self.prod.occupied_len(),
            device_rate: self.rate,
            device_latency: Duration::from_micros(self.shared.latency_us.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for DeviceOutput {
    fn drop(&mut self) {
        self.stream.pause();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_underrun_buys_a_millisecond_of_slack_up_to_ten() {
        let mut r = super::Refill::new(240, 48_000);
        assert_eq!(r.after(0), 240 + 96);
        assert_eq!(r.after(1), 240 + 144);
        assert_eq!(r.after(1), 240 + 144, "an underrun is paid for once");
        assert_eq!(r.after(3), 240 + 240);
        assert_eq!(r.after(1_000), 240 + 480);
        assert_eq!(r.after(u64::MAX), 240 + 480);
    }

    use super::*;

    #[test]
    fn a_standing_queue_is_trimmed_once_a_window_down_to_the_margin() {
        let mut t = Trimmer {
            low_water: usize::MAX,
            window: 0,
            trimmed: 0,
        };
        let margin = 48 * TRIM_MARGIN.as_millis() as usize;
        // A queue two frames above the margin before every write: after a
        // window one frame goes (at most one at a time), after the next the
        // rest down to the margin.
        let mut left_out = 0;
        for _ in 0..TRIM_WINDOW {
            left_out += t.observe(margin + 1920, 960, margin);
        }
        assert_eq!(left_out, 960, "at most one frame at a time");
        for _ in 0..TRIM_WINDOW {
            left_out += t.observe(margin + 500, 960, margin);
        }
        assert_eq!(left_out, 960 + 500);
        // A ring at or under the margin is left alone.
        for _ in 0..TRIM_WINDOW {
            left_out += t.observe(margin, 960, margin);
        }
        assert_eq!(left_out, 1460);
        assert_eq!(t.trimmed, 1460);
    }
}
