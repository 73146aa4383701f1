//! Logs through `tracing`: to standard error with `-v` (info) or `-vv`
//! (debug), to a daily-rotated file in the profile (`logs/`, the last 7
//! days kept), and for the server in plain text or JSON lines.
//!
//! What is logged: connections, calls (ids, users, outcomes, durations),
//! errors. Never keys, certificates, the SAS, TURN secrets or media.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Plain,
    /// One JSON object per line (for a log shipper).
    Json,
}

/// The log folder in a profile.
pub const LOG_DIR: &str = "logs";

/// Keeps the file writer flushing; hold it until the program ends.
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

fn level(verbosity: u8, quiet_default: &str) -> EnvFilter {
    let l = match verbosity {
        0 => quiet_default,
        1 => "info",
        _ => "debug",
    };
    // Other crates (the DTLS library among them) stay at warn even with
    // -vv: their debug lines are not ours to vouch for (keys, packets).
    let others = "warn";
    EnvFilter::new(format!(
        "{others},cryptic_call={l},cryptic_signal={l},cryptic_ice={l},cryptic_audio={l},cryptic_dtls_srtp={l}"
    ))
}

/// The client: standard error only with `-v`; a log file in the profile
/// (info, debug with `-vv`) when `profile` is given.
pub fn init_client(verbosity: u8, profile: Option<&Path>) -> LogGuard {
    let stderr = (verbosity > 0).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_filter(level(verbosity, "error"))
    });
    let (file, guard) = match profile.and_then(file_writer) {
        Some((writer, guard)) => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .with_filter(level(verbosity.max(1), "info")),
            ),
            Some(guard),
        ),
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
    LogGuard(guard)
}

fn file_writer(
    profile: &Path,
) -> Option<(
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
)> {
    let dir = profile.join(LOG_DIR);
    std::fs::create_dir_all(&dir).ok()?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("cryptic-call")
        .filename_suffix("log")
        .max_log_files(7)
        .build(dir)
        .ok()?;
    Some(tracing_appender::non_blocking(appender))
}

/// The server: info and above on standard error (debug with `-v`), plain
/// or JSON lines.
pub fn init_server(verbosity: u8, format: LogFormat) {
    let filter = level(verbosity + 1, "info");
    let base = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Plain => base.try_init(),
        LogFormat::Json => base.json().flatten_event(true).try_init(),
    };
}
