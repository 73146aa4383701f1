//! Audio processing on the capture path: echo cancellation with the
//! playback signal as reference, noise suppression and gain control, on
//! 10 ms frames of 48 kHz mono.
//!
//! The call's 20 ms frames are two processing frames each: every frame
//! handed to the speaker goes to [`Processing::render`] (the far end), and
//! every frame read from the microphone through [`Processing::capture`]
//! before it is encoded. The engine lines the two up itself (it estimates
//! the echo path's delay, device buffers included), so the caller only
//! keeps the order: render what it plays, capture what it reads.
//!
//! One implementation today, [`Sonora`] (a pure-Rust port of WebRTC's
//! audio processing module: AEC3, noise suppression, AGC2, high-pass
//! filter); the trait is what the client holds, so another engine can be
//! measured against it on the same recordings (`audio/examples/aec-figures.rs`).

/// Samples in one processing frame: 10 ms at 48 kHz.
pub const PROCESSING_FRAME: usize = 480;

/// Which parts of the processing run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProcessingConfig {
    /// Remove the far end's voice coming back through our microphone.
    pub echo_cancellation: bool,
    /// Suppress steady background noise (fans, hum).
    pub noise_suppression: bool,
    /// Bring the near-end level towards a steady speech level.
    pub gain_control: bool,
}

impl ProcessingConfig {
    /// Everything on: what a call between two rooms wants.
    pub fn all() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
        }
    }

    /// Nothing on.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether anything runs at all.
    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control
    }

    /// With echo cancellation on or off.
    #[must_use]
    pub fn with_echo_cancellation(mut self, on: bool) -> Self {
        self.echo_cancellation = on;
        self
    }

    /// With noise suppression on or off.
    #[must_use]
    pub fn with_noise_suppression(mut self, on: bool) -> Self {
        self.noise_suppression = on;
        self
    }

    /// With gain control on or off.
    #[must_use]
    pub fn with_gain_control(mut self, on: bool) -> Self {
        self.gain_control = on;
        self
    }
}

impl std::fmt::Display for ProcessingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = [
            (self.echo_cancellation, "echo cancellation"),
            (self.noise_suppression, "noise suppression"),
            (self.gain_control, "gain control"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if parts.is_empty() {
            f.write_str("off")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// An engine for the capture path (see the module docs).
pub trait Processing: Send {
    /// One 10 ms frame just handed to the speaker (the echo reference).
    fn render(&mut self, far: &[i16; PROCESSING_FRAME]);
    /// One 10 ms frame from the microphone, cleaned in place.
    fn capture(&mut self, near: &mut [i16; PROCESSING_FRAME]);
    /// The engine's name, for logs and figures.
    fn name(&self) -> &'static str;
}

/// WebRTC's audio processing module, ported to Rust by the `sonora` crate.
pub struct Sonora {
    apm: sonora::AudioProcessing,
    out: [i16; PROCESSING_FRAME],
    errors: u64,
}

impl std::fmt::Debug for Sonora {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sonora")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Sonora {
    /// An engine running what `config` asks for.
    pub fn new(config: ProcessingConfig) -> Self {
        use sonora::config::{EchoCanceller, GainController2, HighPassFilter, NoiseSuppression};
        let c = sonora::Config {
            echo_canceller: config.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: config.noise_suppression.then(NoiseSuppression::default),
            gain_controller2: config.gain_control.then(GainController2::default),
            high_pass_filter: config.any().then(HighPassFilter::default),
            ..Default::default()
        };
        let stream = sonora::StreamConfig::new(48_000, 1);
        let apm = sonora::AudioProcessing::builder()
            .config(c)
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            out: [0; PROCESSING_FRAME],
            errors: 0,
        }
    }

    fn failed(&mut self, what: &str, e: &dyn std::fmt::Debug) {
        self.errors += 1;
        if self.errors.is_power_of_two() {
            tracing::warn!("audio processing refused a {what} frame ({e:?}); passed through");
        }
    }
}

impl Processing for Sonora {
    fn render(&mut self, far: &[i16; PROCESSING_FRAME]) {
        if let Err(e) = self.apm.process_render_i16(far, &mut self.out) {
            self.failed("playback", &e);
        }
    }

    fn capture(&mut self, near: &mut [i16; PROCESSING_FRAME]) {
        match self.apm.process_capture_i16(near, &mut self.out) {
            Ok(()) => near.copy_from_slice(&self.out),
            Err(e) => self.failed("microphone", &e),
        }
    }

    fn name(&self) -> &'static str {
        "sonora (WebRTC AEC3, NS, AGC2)"
    }
}

/// WebRTC's audio processing module as PulseAudio ships it (the C++
/// library from Debian's `libwebrtc-audio-processing-dev`, through the
/// `webrtc-audio-processing` crate): the reference sonora is measured
/// against.
#[cfg(feature = "webrtc-apm")]
pub struct WebRtcApm {
    p: webrtc_audio_processing::Processor,
    frame: [f32; PROCESSING_FRAME],
    errors: u64,
}

#[cfg(feature = "webrtc-apm")]
impl WebRtcApm {
    /// An engine running what `config` asks for.
    ///
    /// # Errors
    ///
    /// When the library refuses to start (its message).
    pub fn new(config: ProcessingConfig) -> Result<Self, String> {
        use webrtc_audio_processing as w;
        let init = w::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..Default::default()
        };
        let mut p = w::Processor::new(&init).map_err(|e| e.to_string())?;
        p.set_config(w::Config {
            echo_cancellation: config.echo_cancellation.then_some(w::EchoCancellation {
                suppression_level: w::EchoCancellationSuppressionLevel::High,
                enable_extended_filter: true,
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            }),
            noise_suppression: config.noise_suppression.then_some(w::NoiseSuppression {
                suppression_level: w::NoiseSuppressionLevel::High,
            }),
            gain_control: config.gain_control.then_some(w::GainControl {
                mode: w::GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            }),
            enable_high_pass_filter: config.any(),
            ..Default::default()
        });
        Ok(Self {
            p,
            frame: [0.0; PROCESSING_FRAME],
            errors: 0,
        })
    }
}

#[cfg(feature = "webrtc-apm")]
impl Processing for WebRtcApm {
    fn render(&mut self, far: &[i16; PROCESSING_FRAME]) {
        for (f, &s) in self.frame.iter_mut().zip(far) {
            *f = f32::from(s) / 32768.0;
        }
        if self.p.process_render_frame(&mut self.frame).is_err() {
            self.errors += 1;
        }
    }

    fn capture(&mut self, near: &mut [i16; PROCESSING_FRAME]) {
        for (f, &s) in self.frame.iter_mut().zip(near.iter()) {
            *f = f32::from(s) / 32768.0;
        }
        if self.p.process_capture_frame(&mut self.frame).is_err() {
            self.errors += 1;
            return;
        }
        for (s, &f) in near.iter_mut().zip(&self.frame) {
            *s = (f * 32768.0).clamp(-32768.0, 32767.0) as i16;
        }
    }

    fn name(&self) -> &'static str {
        "webrtc-audio-processing (PulseAudio's, C++)"
    }
}

/// The engine for `config`, or `None` when nothing is asked for.
pub fn processing(config: ProcessingConfig) -> Option<Box<dyn Processing>> {
    config
        .any()
        .then(|| Box::new(Sonora::new(config)) as Box<dyn Processing>)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A far-end signal coming back 40 ms later at a quarter of its level:
    /// after two seconds the canceller removes most of it.
    #[test]
    fn the_canceller_removes_a_delayed_echo_of_what_was_played() {
        let mut p = Sonora::new(ProcessingConfig::none().with_echo_cancellation(true));
        let delay = 40 * 48;
        let mut far_history = vec![0i16; delay];
        let (mut before, mut after) = (0f64, 0f64);
        let mut seed = 1u32;
        for frame in 0..400 {
            let mut far = [0i16; PROCESSING_FRAME];
            for (i, s) in far.iter_mut().enumerate() {
                // Speech-like: noise shaped by a slow syllable envelope.
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = f64::from((seed >> 16) as i16) / 32768.0;
                let t = (frame * PROCESSING_FRAME + i) as f64 / 48_000.0;
                let env = (t * 3.0 * std::f64::consts::TAU).sin().abs();
                *s = (noise * env * 8000.0) as i16;
            }
            far_history.extend_from_slice(&far);
            let start = far_history.len() - PROCESSING_FRAME - delay;
            let mut near = [0i16; PROCESSING_FRAME];
            for (n, f) in near.iter_mut().zip(&far_history[start..]) {
                *n = f / 4;
            }
            p.render(&far);
            let energy = |x: &[i16]| x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
            let e_in = energy(&near);
            p.capture(&mut near);
            if frame >= 200 {
                before += e_in;
                after += energy(&near);
            }
        }
        let erle = 10.0 * (before / after.max(1.0)).log10();
        assert!(erle > 20.0, "ERLE {erle:.1} dB");
    }

    #[test]
    fn nothing_asked_means_no_engine() {
        assert!(processing(ProcessingConfig::none()).is_none());
        assert_eq!(ProcessingConfig::none().to_string(), "off");
        assert_eq!(
            ProcessingConfig::all().to_string(),
            "echo cancellation, noise suppression, gain control"
        );
    }
}
