//! `cryptic-call demo`: a whole call on one machine with no set-up.
//!
//! It starts an embedded signaling server on loopback with a throw-away CA,
//! makes two users with throw-away profiles, and has alice call bob with a
//! built-in tone (or the real microphone and speaker). Both sides show the
//! short authentication string and the live status line; after a few
//! seconds alice hangs up, what bob heard is written to a WAV file, and a
//! summary is printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cryptic_audio::{SinkSpec, SourceSpec};
use cryptic_signal::certs::{CertificateAuthority, Validity};
use cryptic_signal::client::{connect, Connection};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::profile::Profile;
use cryptic_signal::server::{Server, ServerConfig};
use cryptic_signal::wire::UserId;

use crate::call::{run_call, CallOptions, CallReport, CallSide};

/// What the demo does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoOptions {
    /// How long the call lasts once connected.
    pub duration: Duration,
    /// Where bob's received audio is written.
    pub output_wav: PathBuf,
    /// Use the real microphone (alice) and speaker (bob) instead of the
    /// built-in tone and the WAV file.
    pub devices: bool,
    /// Print the live status lines.
    pub status_line: bool,
    /// Send the media through the server relay instead of directly.
    pub relay: bool,
    /// Both send 10 ms frames, also from the tone (`Some(true)`), or 20 ms
    /// frames, also from the devices (`Some(false)`); unset, 20 ms from the
    /// tone and 10 ms with `devices` (see [`CallOptions::frame`]).
    pub low_latency: Option<bool>,
}

impl DemoOptions {
    /// A 5 s call writing `output_wav`.
    pub fn new(output_wav: PathBuf) -> Self {
        DemoOptions {
            duration: Duration::from_secs(5),
            output_wav,
            devices: false,
            status_line: true,
            relay: false,
            low_latency: None,
        }
    }
}

/// The two sides' reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DemoSummary {
    /// Alice's side (the caller).
    pub caller: CallReport,
    /// Bob's side (the callee).
    pub callee: CallReport,
    /// Fraction of the received audio's energy at the tone's frequency
    /// (1.0 = a pure tone came through), when the tone and WAV were used.
    pub tone_purity: Option<f64>,
}

/// The tone alice sends, in Hz.
pub const DEMO_TONE_HZ: u32 = 440;

fn user(name: &str) -> Result<UserId, String> {
    UserId::new(name).map_err(|e| format!("{e:?}"))
}

fn temp_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "cryptic-demo-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// A user's profile, connection and end-to-end store, keys published.
async fn side(
    ca: &CertificateAuthority,
    dir: &Path,
    name: &str,
    server: &str,
) -> Result<(UserId, E2eStore, Connection), String> {
    let me = user(name)?;
    let cert = ca
        .issue_client(&me, Validity::days_from_now(1))
        .map_err(|e| e.to_string())?;
    let profile = Profile::write(
        &dir.join(name),
        &me,
        server,
        "localhost",
        ca.cert_pem(),
        &cert,
    )
    .map_err(|e| e.to_string())?;
    let mut conn = connect(&profile.client_config().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| format!("{name} could not connect: {e}"))?;
    let mut e2e = profile.e2e().map_err(|e| e.to_string())?;
    conn.publish_keys(e2e.keys_to_publish(5).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    Ok((me, e2e, conn))
}

fn call_side(me: UserId, e2e: E2eStore, conn: Connection) -> CallSide {
    let ice_servers = conn.ice_servers().to_vec();
    let (sender, receiver) = conn.split();
    CallSide {
        me,
        e2e,
        sender,
        receiver,
        ice_servers,
        servers: None,
    }
}

/// Runs the demo.
pub async fn run_demo(options: &DemoOptions) -> Result<DemoSummary, String> {
    let dir = temp_dir()?;
    let result = run_in(&dir, options).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &Path, options: &DemoOptions) -> Result<DemoSummary, String> {
    // The operator's part: a CA and a server on loopback.
    let ca = CertificateAuthority::create("Cryptic demo CA").map_err(|e| e.to_string())?;
    let server_cert = ca
        .issue_server(
            &["localhost".to_string(), "127.0.0.1".to_string()],
            Validity::days_from_now(1),
        )
        .map_err(|e| e.to_string())?;
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        server_cert.cert_pem,
        server_cert.key_pem,
        ca.cert_pem().to_string(),
        dir.join("server"),
    );
    let server = Server::bind(config).await.map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?.to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(async move {
        let _ = server
            .run(async {
                let _ = stop_rx.await;
            })
            .await;
    });

    let outcome = async {
        let (alice, mut a_e2e, mut a_conn) = side(&ca, dir, "alice", &addr).await?;
        let (bob, b_e2e, b_conn) = side(&ca, dir, "bob", &addr).await?;
        let bundle = a_conn.fetch_keys(&bob).await.map_err(|e| e.to_string())?;
        a_e2e.start_session(&bundle).map_err(|e| e.to_string())?;
        let mut a = call_side(alice, a_e2e, a_conn);
        let mut b = call_side(bob.clone(), b_e2e, b_conn);

        let bursts = dir.join("bursts.wav");
        write_bursts(&bursts)?;
        let (a_in, b_out): (SourceSpec, SinkSpec) = if options.devices {
            (
                "default".parse().map_err(|e| format!("{e}"))?,
                "default".parse().map_err(|e| format!("{e}"))?,
            )
        } else {
            (
                format!("wav:{}", bursts.display())
                    .parse()
                    .map_err(|e| format!("{e}"))?,
                format!("wav:{}", options.output_wav.display())
                    .parse()
                    .map_err(|e| format!("{e}"))?,
            )
        };
        let mut caller_opts = CallOptions::new(a_in, "null".parse().map_err(|e| format!("{e}"))?);
        caller_opts.duration = Some(options.duration);
        caller_opts.loopback_only = true;
        caller_opts.status_line = options.status_line;
        caller_opts.force_relay = options.relay;
        let frame = |low_latency: bool| {
            if low_latency {
                cryptic_audio::FrameDuration::Ms10
            } else {
                cryptic_audio::FrameDuration::Ms20
            }
        };
        if let Some(low_latency) = options.low_latency {
            caller_opts.frame = frame(low_latency);
        }
        let mut callee_opts =
            CallOptions::new("silence".parse().map_err(|e| format!("{e}"))?, b_out);
        callee_opts.auto_accept = Some(Duration::ZERO);
        callee_opts.loopback_only = true;
        callee_opts.status_line = options.status_line;
        callee_opts.force_relay = options.relay;
        // With devices bob stands for a microphone user (his input is
        // silence): 10 ms frames, and his buffer trims pauses finely.
        callee_opts.frame = frame(options.low_latency.unwrap_or(options.devices));

        let callee_task = tokio::spawn(async move {
            run_call(&mut b, None, &callee_opts)
                .await
                .map_err(|e| e.to_string())
        });
        let caller = run_call(&mut a, Some(bob), &caller_opts)
            .await
            .map_err(|e| e.to_string())?;
        let callee = tokio::time::timeout(Duration::from_secs(10), callee_task)
            .await
            .map_err(|_| "bob's side did not end".to_string())?
            .map_err(|e| e.to_string())??;
        let tone_purity = if options.devices {
            None
        } else {
            tone_purity(&options.output_wav, DEMO_TONE_HZ)
        };
        Ok::<_, String>(DemoSummary {
            caller,
            callee,
            tone_purity,
        })
    }
    .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server_task).await;
    outcome
}

/// The share of the signal's energy at `hz` (Goertzel over 20 ms blocks
/// of the non-silent part), from 0 to 1.
pub fn tone_purity(wav: &Path, hz: u32) -> Option<f64> {
    let samples = cryptic_audio::read_wav_48k_mono(wav).ok()?;
    let block = 960usize;
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * f64::from(hz) / 48_000.0).cos();
    let (mut tone, mut total) = (0.0f64, 0.0f64);
    for chunk in samples.chunks_exact(block) {
        let energy: f64 = chunk.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        if energy < 1e3 * block as f64 {
            continue; // silence before the call or concealment gaps
        }
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in chunk {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        // Goertzel power of a pure tone is energy * N / 2.
        tone += power * 2.0 / block as f64;
        total += energy;
    }
    (total > 0.0).then(|| (tone / total).min(1.0))
}

/// Alice's demo input: 0.6 s of silence, then 0.4 s of the tone, over and
/// over (30 s), so that each tone onset measures the mouth-to-ear delay.
fn write_bursts(path: &Path) -> Result<(), String> {
    let spec: SinkSpec = format!("wav:{}", path.display())
        .parse()
        .map_err(|e| format!("{e}"))?;
    let mut out = cryptic_audio::Output::open(&spec, cryptic_audio::OutputOptions::default())
        .map_err(|e| e.to_string())?;
    let mut frame = [0i16; 960];
    let mut n = 0u64;
    for i in 0..1500u64 {
        let loud = i % 50 >= 30;
        for s in frame.iter_mut() {
            let t = n as f64 / 48_000.0;
            *s = if loud {
                (8000.0 * (2.0 * std::f64::consts::PI * f64::from(DEMO_TONE_HZ) * t).sin()) as i16
            } else {
                0
            };
            n += 1;
        }
        out.write_frame(&frame).map_err(|e| e.to_string())?;
    }
    out.finish().map_err(|e| e.to_string())
}

/// Mouth-to-ear delays: each tone onset bob played, against the latest
/// onset alice sent before it (the demo's two sides share one clock).
pub fn mouth_to_ear(s: &DemoSummary) -> Vec<Duration> {
    s.callee
        .onsets_played
        .iter()
        .filter_map(|played| {
            s.caller
                .onsets_sent
                .iter()
                .filter(|sent| *sent <= played)
                .max()
                .map(|sent| played.saturating_duration_since(*sent))
        })
        .collect()
}

/// From alice's first frame encoded and sent to bob playing it: the delay
/// the stack adds on this machine (both sides share a clock in the demo).
pub fn stack_delay(s: &DemoSummary) -> Option<Duration> {
    Some(
        s.callee
            .first_played?
            .saturating_duration_since(s.caller.first_sent?),
    )
}

/// Prints the demo's summary.
pub fn print_summary(s: &DemoSummary, output_wav: &Path) {
    let ms = |d: Option<Duration>| {
        d.map(|d| format!("{} ms", d.as_millis()))
            .unwrap_or_else(|| "-".into())
    };
    println!();
    println!("== call summary");
    println!(
        "outcome        : {} ({})",
        s.caller.outcome.as_str(),
        s.caller.reason
    );
    println!(
        "SAS            : alice sees {}, bob sees {}{}",
        s.caller.sas.as_deref().unwrap_or("-"),
        s.callee.sas.as_deref().unwrap_or("-"),
        if s.caller.sas.is_some() && s.caller.sas == s.callee.sas {
            " (match: nobody in the middle)"
        } else {
            " (MISMATCH)"
        }
    );
    println!(
        "set-up time    : {} (bob heard the first frame, from alice's invite)",
        ms(s.callee.setup_time.map(|t| t + Duration::ZERO))
    );
    let mut delays = mouth_to_ear(s);
    delays.sort();
    println!(
        "mouth to ear   : first frame {}; tone onsets median {} over {} (encode, SRTP, UDP, jitter buffer, decode; no sound card)",
        ms(stack_delay(s)),
        ms(delays.get(delays.len() / 2).copied()),
        delays.len()
    );
    println!(
        "path           : {}",
        s.caller.path.as_deref().unwrap_or("-")
    );
    println!(
        "packets        : alice sent {}, bob received {} ({:.1}% lost, {} dropped; bob played {} frames, concealed {}, added {} to grow his delay)",
        s.caller.stats.packets_sent,
        s.callee.stats.packets_received,
        s.callee.stats.loss_received * 100.0,
        s.callee.stats.dropped,
        s.callee.stats.played,
        s.callee.stats.concealed,
        s.callee.stats.inserted
    );
    let speaker = &s.callee.speaker;
    if speaker.device_rate > 0 {
        println!(
            "speaker        : bob's ran dry {} times ({} ms of silence)",
            speaker.underruns,
            speaker.underrun_samples * 1000 / u64::from(speaker.device_rate)
        );
    }
    println!(
        "latency        : rtt {} , jitter {} ms, jitter buffer {} ms",
        ms(s.caller.stats.rtt),
        s.callee.stats.jitter.as_millis(),
        s.callee.stats.jitter_buffer_delay.as_millis()
    );
    if let Some(p) = s.tone_purity {
        println!(
            "quality        : {:.1}% of what bob heard is alice's {DEMO_TONE_HZ} Hz tone",
            p * 100.0
        );
    }
    println!("bob heard      : {}", output_wav.display());
}
