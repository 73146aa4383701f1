//! # cryptic-call: the command-line client
//!
//! ```text
//!  mic -> Opus -> RTP -> SRTP -> ICE socket -> peer      (media)
//!  client <- WebSocket/mTLS -> signaling server          (call set-up)
//! ```
//!
//! `cryptic-call demo` runs a whole call on this machine with no set-up.
//! The operator's tools are `ca init`, `ca issue` and `server`; users run
//! `call`, `listen`, `history` and `devices`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use cryptic_audio::{FrameDuration, ProcessingConfig};
use cryptic_call::call::{run_call_with, CallOptions, CallSide, Control};
use cryptic_call::config::{check_profile, history_path, Config};
use cryptic_call::demo::{print_summary, run_demo, DemoOptions};
use cryptic_call::history::{format_record, header, History};
use cryptic_call::logging::LogFormat;
use cryptic_signal::certs::{CertificateAuthority, ServerTls, Validity, CA_KEY_FILE};
use cryptic_signal::profile::{Profile, PROFILE_FILE};
use cryptic_signal::server::revoke::{fingerprint, Revocations};
use cryptic_signal::server::turn::{TurnConfig, TurnSecret};
use cryptic_signal::server::{Server, ServerConfig, ServerHandle};
use cryptic_signal::wire::UserId;

#[derive(Parser, Debug)]
#[command(
    name = "cryptic-call",
    version,
    about = "End-to-end encrypted 1:1 audio calls",
    after_help = "Exit codes of `call` and `listen`: 0 completed, 1 failed, 2 could not \
                  start (bad arguments, no profile, no server, a missing microphone or \
                  speaker), 3 rejected, 4 busy, 5 missed, 6 cancelled, 7 security abort \
                  (someone in the middle), 8 the peer is offline.\n\n\
                  The profile of every command: --profile DIR, or $CRYPTIC_CALL_PROFILE, \
                  or ./profile. Its config.toml holds default devices, relay and chacha \
                  preferences, auto_answer and [contacts] aliases (see README). Logs go \
                  to DIR/logs/ (rotated daily); -v and -vv also print them."
)]
struct Cli {
    /// More log lines on standard error (-v info, -vv debug); the server
    /// logs at info without it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// The server's log lines: plain text or one JSON object per line.
    #[arg(long, value_enum, default_value = "plain", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A whole call on this machine: embedded server, two throw-away users,
    /// a built-in tone, a WAV of what the callee heard, and a summary.
    Demo {
        /// Seconds the call lasts once connected.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Where the callee's audio is written.
        #[arg(long, default_value = "demo-received.wav")]
        output: PathBuf,
        /// Use the real microphone and speaker instead of the tone and file.
        #[arg(long)]
        devices: bool,
        /// Send the media through the signaling server's relay.
        #[arg(long)]
        relay: bool,
        /// Both send 10 ms frames, also from the tone (as a call's
        /// `--low-latency`; with `--devices` they do anyway).
        #[arg(long, conflicts_with = "save_bandwidth")]
        low_latency: bool,
        /// Both send 20 ms frames, also with `--devices` (as a call's
        /// `--save-bandwidth`).
        #[arg(long)]
        save_bandwidth: bool,
    },
    /// Certificate authority of a server (operator).
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Run the signaling server (operator).
    Server(Box<ServerArgs>),
    /// Call a user.
    Call {
        /// Who to call.
        user: String,
        /// Your profile directory (from `ca issue`).
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
        /// Microphone: default, device:NAME, wav:PATH, tone[:HZ], silence
        /// (default: config.toml's `input`, else the default device).
        #[arg(long)]
        input: Option<String>,
        /// Speaker: default, device:NAME, wav:PATH, null (default:
        /// config.toml's `output`, else the default device).
        #[arg(long)]
        output: Option<String>,
        /// Hang up after this many seconds of conversation.
        #[arg(long)]
        duration: Option<u64>,
        /// Hang up if nobody answers within this many seconds.
        #[arg(long)]
        cancel_after: Option<f64>,
        /// How long the call may ring before it ends unanswered (seconds).
        #[arg(long, default_value_t = 45)]
        ring_timeout: u64,
        /// Send media through the signaling server from the start.
        #[arg(long)]
        relay: bool,
        /// Prefer the ChaCha20-Poly1305 SRTP profile (used when both prefer it).
        #[arg(long)]
        chacha: bool,
        #[command(flatten)]
        processing: ProcessingArgs,
    },
    /// Wait for one call and take it.
    Listen {
        /// Your profile directory (from `ca issue`).
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
        /// Accept the call without asking.
        #[arg(long)]
        auto_accept: bool,
        /// Accept the call after it rang this many seconds.
        #[arg(long)]
        accept_after: Option<f64>,
        /// Decline the call.
        #[arg(long)]
        reject: bool,
        /// Send media through the signaling server from the start.
        #[arg(long)]
        relay: bool,
        /// Prefer the ChaCha20-Poly1305 SRTP profile (used when both prefer it).
        #[arg(long)]
        chacha: bool,
        /// Microphone: default, device:NAME, wav:PATH, tone[:HZ], silence
        /// (default: config.toml's `input`, else the default device).
        #[arg(long)]
        input: Option<String>,
        /// Speaker: default, device:NAME, wav:PATH, null (default:
        /// config.toml's `output`, else the default device).
        #[arg(long)]
        output: Option<String>,
        /// Hang up after this many seconds of conversation.
        #[arg(long)]
        duration: Option<u64>,
        #[command(flatten)]
        processing: ProcessingArgs,
    },
    /// Past calls.
    History {
        /// Your profile directory.
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
        /// How many calls.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// A JSON array, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Sound devices.
    Devices,
    /// Your identity key's fingerprint (what others see when they verify you).
    Keys {
        /// Your profile directory.
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
    },
    /// Compare the safety number with USER once, and mark USER verified.
    Verify {
        /// The other user.
        user: String,
        /// Your profile directory.
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
        /// Confirm without asking (the numbers were compared already).
        #[arg(long)]
        yes: bool,
    },
    /// Show USER's changed key beside the old one, and accept it.
    Trust {
        /// The other user.
        user: String,
        /// Your profile directory.
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
        /// Accept without asking.
        #[arg(long)]
        yes: bool,
    },
    /// The interactive mode (also what runs with no subcommand, with the
    /// profile in $CRYPTIC_CALL_PROFILE or ./profile).
    Shell {
        /// Your profile directory.
        #[arg(long, env = "CRYPTIC_CALL_PROFILE", default_value = "profile")]
        profile: PathBuf,
        /// Answer every incoming call at once.
        #[arg(long)]
        auto_answer: bool,
        /// Microphone: default, device:NAME, wav:PATH, tone[:HZ], silence
        /// (default: config.toml's `input`, else the default device).
        #[arg(long)]
        input: Option<String>,
        /// Speaker: default, device:NAME, wav:PATH, null (default:
        /// config.toml's `output`, else the default device).
        #[arg(long)]
        output: Option<String>,
        #[command(flatten)]
        processing: ProcessingArgs,
    },
}

/// The microphone's processing: echo cancellation, noise suppression and
/// gain control are on by default with a sound device, off for files,
/// tones and silence.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
struct ProcessingArgs {
    /// Echo cancellation on, also for a file or tone input.
    #[arg(long, conflicts_with = "no_aec")]
    aec: bool,
    /// Echo cancellation off.
    #[arg(long)]
    no_aec: bool,
    /// Noise suppression on, also for a file or tone input.
    #[arg(long, conflicts_with = "no_ns")]
    ns: bool,
    /// Noise suppression off.
    #[arg(long)]
    no_ns: bool,
    /// Automatic gain control off.
    #[arg(long)]
    no_agc: bool,
    /// Send 10 ms frames also from a file or tone (a microphone's are
    /// 10 ms already): about 20 ms less mouth to ear, for 1.5 times the
    /// bitrate and twice the packets.
    #[arg(long, conflicts_with = "save_bandwidth")]
    low_latency: bool,
    /// Send 20 ms frames also from a microphone: about half the packets
    /// and two thirds of the bitrate, for about 20 ms more mouth to ear.
    #[arg(long)]
    save_bandwidth: bool,
}

impl ProcessingArgs {
    /// `default` (what the input calls for) changed by the flags.
    fn apply(self, default: ProcessingConfig) -> ProcessingConfig {
        let pick = |on: bool, off: bool, was: bool| (was || on) && !off;
        default
            .with_echo_cancellation(pick(self.aec, self.no_aec, default.echo_cancellation))
            .with_noise_suppression(pick(self.ns, self.no_ns, default.noise_suppression))
            .with_gain_control(default.gain_control && !self.no_agc)
    }
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create a CA in a directory.
    Init {
        /// Where the CA's certificate and key go.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// Replace an existing CA (every certificate it issued stops working).
        #[arg(long)]
        force: bool,
    },
    /// Issue the server's certificate and key once, into a directory to
    /// copy to the server host (`server --tls DIR`).
    IssueServer {
        /// The CA directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// Names and addresses the certificate is issued for, repeatable.
        #[arg(long = "name", default_value = "localhost")]
        names: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Where server.crt, server.key and ca.crt go.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing server key in OUT.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a user (every certificate of theirs) or one certificate:
    /// adds it to the revocation list the server reads (`server --revoked`).
    Revoke {
        /// The user to revoke.
        #[arg(required_unless_present = "cert")]
        user: Option<String>,
        /// Revoke only this certificate (a profile's client.crt), by its SHA-256.
        #[arg(long, conflicts_with = "user")]
        cert: Option<PathBuf>,
        /// The CA directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// The list to update (default: revoked.txt in the CA directory).
        #[arg(long)]
        list: Option<PathBuf>,
    },
    /// Issue a user's profile directory.
    Issue {
        /// The user.
        user: String,
        /// The CA directory.
        #[arg(long, default_value = "ca")]
        dir: PathBuf,
        /// The server's address as users reach it (host:port). Several
        /// (repeated, or comma-separated) for nodes of one cluster: the
        /// client tries them in turn.
        #[arg(long, required = true, value_delimiter = ',')]
        server: Vec<String>,
        /// The name in the server's certificate (default: the host of
        /// --server, also when it is an IP address).
        #[arg(long)]
        server_name: Option<String>,
        /// Where the profile directory goes.
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing profile in OUT (its keys and history are lost).
        #[arg(long)]
        force: bool,
    },
}

/// `cryptic-call server`'s flags.
#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: String,
    /// The server's TLS directory made by `ca issue-server` (its
    /// certificate and key, and the CA certificate): the CA's private
    /// key stays off the server host.
    #[arg(long, required_unless_present = "ca", conflicts_with = "ca")]
    tls: Option<PathBuf>,
    /// Or the CA directory made by `ca init` (the server issues its own
    /// certificate at each start: the CA key must be on this host; for
    /// trials and the demo).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// With --ca: names and addresses the server certificate is issued for.
    #[arg(long = "name", default_value = "localhost")]
    names: Vec<String>,
    /// The revocation list written by `ca revoke`; read at start and
    /// again on SIGHUP (revoked users still connected are disconnected).
    #[arg(long)]
    revoked: Option<PathBuf>,
    /// Where the key directory lives.
    #[arg(long, default_value = "server-data")]
    data: PathBuf,
    /// A STUN or TURN server to advertise to clients, repeatable:
    /// `stun:HOST:PORT`, `turn:HOST:PORT`, `turn:HOST:PORT?transport=tcp`
    /// or `turns:HOST:PORT` (TLS) (no password: each user gets
    /// short-lived TURN REST credentials made with the TURN secret).
    #[arg(long = "ice-server")]
    ice_servers: Vec<String>,
    /// A file holding the secret shared with the TURN server (coturn
    /// `--static-auth-secret`); or set CRYPTIC_TURN_SECRET. Never on
    /// the command line.
    #[arg(long)]
    turn_secret_file: Option<PathBuf>,
    /// Hours a user's TURN credentials stay valid.
    #[arg(long, default_value_t = 12)]
    turn_credential_hours: u64,
    /// Cluster mode: share presence and route calls with other nodes
    /// through this Redis 7 (`redis://HOST:PORT`). Without it: one node.
    #[arg(long, value_name = "REDIS_URL")]
    cluster: Option<String>,
    /// This node's name in the cluster (default: host name and process id).
    #[arg(long, requires = "cluster")]
    node_id: Option<String>,
    /// With `--cluster rediss://...`: the CA (PEM) Redis' TLS certificate
    /// chains to (default: the system's trusted roots).
    #[arg(long, requires = "cluster", value_name = "PEM_FILE")]
    cluster_ca: Option<PathBuf>,
    /// Most simultaneous client connections.
    #[arg(long, default_value_t = 50_000)]
    max_connections: usize,
    /// Least time between two unanswered invites of one user (seconds).
    #[arg(long, default_value_t = 10)]
    invite_interval: u64,
    /// Most relay frames per second per call.
    #[arg(long, default_value_t = 2000)]
    relay_frames_per_second: u32,
    /// Abuse limits (defaults in docs/OPERATIONS.md).
    #[command(flatten)]
    limits: LimitArgs,
}

/// The server's abuse limits that an operator may want to change; unset
/// ones keep the server's defaults.
#[derive(clap::Args, Debug)]
struct LimitArgs {
    /// Most connections from one address (an IPv6 /64 counts as one).
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Most TLS handshakes in progress from one address.
    #[arg(long)]
    max_handshakes_per_ip: Option<usize>,
    /// Seconds a write to a client may take before the client is dropped.
    #[arg(long)]
    write_timeout: Option<u64>,
    /// Bytes queued for one client at most.
    #[arg(long)]
    queue_bytes: Option<usize>,
    /// Seconds an answered call may last.
    #[arg(long)]
    max_call_duration: Option<u64>,
    /// Seconds a call may use the relay.
    #[arg(long)]
    max_relay_duration: Option<u64>,
    /// Candidate messages forwarded per participant while a call rings.
    #[arg(long)]
    max_ringing_candidates: Option<u32>,
    /// Seconds an answered call waits for a user whose connection dropped
    /// to log in again before it ends (0: at once).
    #[arg(long)]
    reconnect_grace: Option<f64>,
    /// Key fetches of one user by one requester per key window.
    #[arg(long)]
    key_fetches_per_target: Option<u32>,
    /// Key fetches by one requester per key window.
    #[arg(long)]
    key_fetches_per_requester: Option<u32>,
    /// One-time keys of one user handed out per key window.
    #[arg(long)]
    one_time_keys_per_target: Option<u32>,
    /// Key publishes of one user per key window.
    #[arg(long)]
    key_publishes_per_user: Option<u32>,
    /// The key window, seconds.
    #[arg(long)]
    key_window: Option<u64>,
}

impl LimitArgs {
    fn apply(&self, l: &mut cryptic_signal::server::Limits) {
        let secs = Duration::from_secs;
        if let Some(v) = self.max_connections_per_ip {
            l.max_connections_per_ip = v;
        }
        if let Some(v) = self.max_handshakes_per_ip {
            l.max_handshakes_per_ip = v;
        }
        if let Some(v) = self.write_timeout {
            l.write_timeout = secs(v);
        }
        if let Some(v) = self.queue_bytes {
            l.queue_bytes = v;
        }
        if let Some(v) = self.max_call_duration {
            l.max_call_duration = secs(v);
        }
        if let Some(v) = self.max_relay_duration {
            l.max_relay_duration = secs(v);
        }
        if let Some(v) = self.max_ringing_candidates {
            l.max_ringing_candidates = v;
        }
        if let Some(v) = self.reconnect_grace {
            l.reconnect_grace = Duration::try_from_secs_f64(v).unwrap_or(Duration::ZERO);
        }
        if let Some(v) = self.key_fetches_per_target {
            l.key_fetches_per_target = v;
        }
        if let Some(v) = self.key_fetches_per_requester {
            l.key_fetches_per_requester = v;
        }
        if let Some(v) = self.one_time_keys_per_target {
            l.one_time_keys_per_target = v;
        }
        if let Some(v) = self.key_publishes_per_user {
            l.key_publishes_per_user = v;
        }
        if let Some(v) = self.key_window {
            l.key_window = secs(v);
        }
    }
}

mod keys {
    //! `keys`, `verify`, `trust`: the user's side of key verification.

    use std::path::Path;
    use std::process::ExitCode;

    use cryptic_signal::e2e::{key_fingerprint, safety_number, E2eStore};
    use cryptic_signal::profile::{Profile, ProfileLock};
    use cryptic_signal::wire::UserId;

    fn open(dir: &Path) -> Result<(Profile, ProfileLock, E2eStore), String> {
        let profile = Profile::load(dir).map_err(|e| e.to_string())?;
        let lock = ProfileLock::acquire(dir).map_err(|e| e.to_string())?;
        let e2e = profile.e2e().map_err(|e| e.to_string())?;
        Ok((profile, lock, e2e))
    }

    fn confirm(question: &str, yes: bool) -> bool {
        if yes {
            return true;
        }
        println!("{question} [y/N]");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
    }

    pub(super) fn show(dir: &Path) -> Result<ExitCode, String> {
        let (profile, _lock, e2e) = open(dir)?;
        println!(
            "{}'s identity key: {}",
            profile.user,
            key_fingerprint(&e2e.identity_key())
        );
        Ok(ExitCode::SUCCESS)
    }

    pub(super) fn verify(dir: &Path, user: &str, yes: bool) -> Result<ExitCode, String> {
        let peer = UserId::new(user).map_err(|e| format!("bad user name {user:?}: {e}"))?;
        let (profile, _lock, mut e2e) = open(dir)?;
        let Some(pin) = e2e.pinned_key(&peer).cloned() else {
            return Err(format!(
                "you have no key of {peer} yet: call {peer} once (or take a call) first"
            ));
        };
        let n = safety_number(&profile.user, &e2e.identity_key(), &peer, &pin.identity_key);
        println!("safety number of {} and {peer}:", profile.user);
        println!("  {}", n.digits);
        println!("  {}", n.emoji);
        println!(
            "{peer} sees the same number on their screen with `cryptic-call verify {}`.",
            profile.user
        );
        if pin.verified {
            println!("{peer} is already verified.");
            return Ok(ExitCode::SUCCESS);
        }
        if !confirm(&format!("Does {peer}'s number match this one?"), yes) {
            println!("{peer} stays not verified.");
            return Ok(ExitCode::from(1));
        }
        e2e.mark_verified(&peer).map_err(|e| e.to_string())?;
        println!("{peer} is verified.");
        Ok(ExitCode::SUCCESS)
    }

    pub(super) fn trust(dir: &Path, user: &str, yes: bool) -> Result<ExitCode, String> {
        let peer = UserId::new(user).map_err(|e| format!("bad user name {user:?}: {e}"))?;
        let (_profile, _lock, mut e2e) = open(dir)?;
        let Some(new) = e2e.pending_key(&peer).cloned() else {
            println!("{peer}'s key has not changed: nothing to accept.");
            return Ok(ExitCode::SUCCESS);
        };
        if let Some(old) = e2e.pinned_key(&peer) {
            println!("{peer}'s old key: {}", key_fingerprint(&old.identity_key));
        }
        println!("{peer}'s new key: {}", key_fingerprint(&new.identity_key));
        println!(
            "A new key means a new device, a reinstall, or someone in the middle: ask {peer}."
        );
        if !confirm(&format!("Accept {peer}'s new key?"), yes) {
            println!("{peer}'s new key is still refused.");
            return Ok(ExitCode::from(1));
        }
        e2e.accept_new_key(&peer).map_err(|e| e.to_string())?;
        println!(
            "{peer}'s new key is accepted. {peer} is not verified: compare your safety number with `cryptic-call verify {peer}`."
        );
        Ok(ExitCode::SUCCESS)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cryptic-call: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // The shell's stdin reader sits in a blocking read: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cryptic-call: {e}");
            ExitCode::from(2)
        }
    }
}

/// The TURN REST secret from `--turn-secret-file` or `CRYPTIC_TURN_SECRET`
/// (never from the command line, never printed).
fn turn_config(
    file: Option<&std::path::Path>,
    hours: u64,
) -> Result<Option<Arc<TurnConfig>>, String> {
    let env = std::env::var("CRYPTIC_TURN_SECRET").ok();
    let secret =
        match (file, env) {
            (Some(_), Some(_)) => return Err(
                "give the TURN secret once: --turn-secret-file or CRYPTIC_TURN_SECRET, not both"
                    .into(),
            ),
            (Some(f), None) => TurnSecret::from_file(f).map_err(|e| e.to_string())?,
            (None, Some(text)) => TurnSecret::new(&text)
                .map_err(|_| "CRYPTIC_TURN_SECRET is set but empty".to_string())?,
            (None, None) => return Ok(None),
        };
    if hours == 0 {
        return Err("--turn-credential-hours must be at least 1".into());
    }
    let mut turn = TurnConfig::new(secret);
    turn.validity = Duration::from_secs(hours.saturating_mul(3600));
    Ok(Some(Arc::new(turn)))
}

/// `cryptic-call server`: the signaling server until Ctrl-C.
async fn serve(server: Box<ServerArgs>) -> Result<ExitCode, String> {
    let ServerArgs {
        listen,
        tls,
        ca,
        names,
        revoked,
        data,
        ice_servers,
        turn_secret_file,
        turn_credential_hours,
        cluster,
        node_id,
        cluster_ca,
        max_connections,
        invite_interval,
        relay_frames_per_second,
        limits,
    } = *server;
    let turn = turn_config(turn_secret_file.as_deref(), turn_credential_hours)?;
    let tls = match (tls, ca) {
        (Some(dir), _) => ServerTls::load(&dir).map_err(|e| e.to_string())?,
        (None, Some(ca)) => {
            let ca = CertificateAuthority::load(&ca).map_err(|e| e.to_string())?;
            let cert = ca
                .issue_server(&names, Validity::days_from_now(365))
                .map_err(|e| e.to_string())?;
            eprintln!(
                "note: the CA's private key is on this host; in production make the \
                 server's certificate once with `ca issue-server` and start with --tls"
            );
            ServerTls {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
                ca_pem: ca.cert_pem().to_string(),
            }
        }
        (None, None) => return Err("give --tls DIR (from `ca issue-server`) or --ca DIR".into()),
    };
    let mut config = ServerConfig::new(
        listen.parse().map_err(|e| format!("bad --listen: {e}"))?,
        tls.cert_pem,
        tls.key_pem,
        tls.ca_pem,
        data,
    );
    config.revocation_file = revoked;
    if let Some(url) = cluster {
        let node = node_id.unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let node = node.trim_start_matches('-').to_string();
        let mut c = cryptic_signal::server::cluster::ClusterConfig::new(url, node)
            .map_err(|e| e.to_string())?;
        if let Some(path) = cluster_ca {
            let pem = std::fs::read_to_string(&path)
                .map_err(|e| format!("--cluster-ca {}: {e}", path.display()))?;
            c = c.with_redis_ca(pem);
        }
        config.cluster = Some(c);
    }
    config.ice_servers = ice_servers;
    config.turn = turn;
    config.limits.max_connections = max_connections;
    config.limits.invite_interval = Duration::from_secs(invite_interval);
    config.limits.relay_frames_per_second = relay_frames_per_second;
    limits.apply(&mut config.limits);
    let server = Server::bind(config).await.map_err(|e| e.to_string())?;
    println!(
        "signaling server listening on {}",
        server.local_addr().map_err(|e| e.to_string())?
    );
    let reloader = tokio::spawn(reload_on_sighup(server.handle()));
    let result = server.run(stop_signal()).await;
    reloader.abort();
    result.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM (what systemd sends to stop a
/// service): the server then says `server_shutdown` to every client.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Reloads the revocation list on each SIGHUP (a bad list is reported and
/// the one in force stays).
async fn reload_on_sighup(server: ServerHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot watch SIGHUP (no revocation list reloads): {e}");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match server.reload_revocations() {
            Ok(r) => println!(
                "revocation list reloaded: {} entries, {} connections ended",
                r.entries, r.ended
            ),
            Err(e) => eprintln!("revocation list not reloaded (the previous one stays): {e}"),
        }
    }
}

/// `cryptic-call ca ...`: the operator's certificate tooling.
fn ca(command: CaCommand) -> Result<ExitCode, String> {
    match command {
        CaCommand::Init { dir, force } => {
            let key = dir.join(CA_KEY_FILE);
            if key.exists() && !force {
                return Err(format!(
                    "{} already exists: a new CA would void every certificate it \
                     issued; not replaced (--force replaces it)",
                    key.display()
                ));
            }
            let ca = CertificateAuthority::create("Cryptic Call CA").map_err(|e| e.to_string())?;
            ca.save(&dir).map_err(|e| e.to_string())?;
            println!("CA written to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::Issue {
            user: name,
            dir,
            server,
            server_name,
            out,
            force,
        } => {
            if out.join(PROFILE_FILE).exists() && !force {
                return Err(format!(
                    "{} already holds a profile: not replaced (--force replaces it; \
                     its keys and history are lost)",
                    out.display()
                ));
            }
            let ca = CertificateAuthority::load(&dir).map_err(|e| e.to_string())?;
            let me = user(&name)?;
            let servers: Vec<String> = server
                .iter()
                .flat_map(|s| cryptic_call::link::split_addresses(s))
                .collect();
            let Some(first) = servers.first() else {
                return Err("--server names no address".into());
            };
            let server_name =
                server_name.unwrap_or_else(|| cryptic_call::config::server_host(first).to_string());
            let server = servers.join(",");
            let cert = ca
                .issue_client(&me, Validity::days_from_now(365))
                .map_err(|e| e.to_string())?;
            Profile::write(&out, &me, &server, &server_name, ca.cert_pem(), &cert)
                .map_err(|e| e.to_string())?;
            println!("profile of {name} written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::IssueServer {
            dir,
            names,
            days,
            out,
            force,
        } => {
            if days < 1 {
                return Err("--days must be at least 1".into());
            }
            let ca = CertificateAuthority::load(&dir).map_err(|e| e.to_string())?;
            let cert = ca
                .issue_server(&names, Validity::days_from_now(days))
                .map_err(|e| e.to_string())?;
            let tls = ServerTls {
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
                ca_pem: ca.cert_pem().to_string(),
            };
            tls.save(&out, force).map_err(|e| e.to_string())?;
            println!(
                "server certificate for {} written to {}: copy that directory to the \
                 server host and start it with `server --tls {}`",
                names.join(", "),
                out.display(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::Revoke {
            user: name,
            cert,
            dir,
            list,
        } => revoke(name.as_deref(), cert.as_deref(), &dir, list),
    }
}

/// `ca revoke`: adds a user or one certificate to the revocation list.
fn revoke(
    name: Option<&str>,
    cert: Option<&std::path::Path>,
    dir: &std::path::Path,
    list: Option<PathBuf>,
) -> Result<ExitCode, String> {
    let list = list.unwrap_or_else(|| dir.join("revoked.txt"));
    let mut r = if list.exists() {
        Revocations::load(&list).map_err(|e| e.to_string())?
    } else {
        Revocations::default()
    };
    let (what, added) = match (name, cert) {
        (Some(name), _) => (name.to_string(), r.revoke_user(user(name)?)),
        (None, Some(path)) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let der = cryptic_signal::certs::first_cert_der(&pem).map_err(|e| e.to_string())?;
            let who = cryptic_signal::certs::user_from_cert_der(&der)
                .map_or_else(|_| "?".to_string(), |u| u.to_string());
            (
                format!("the certificate of {who} in {}", path.display()),
                r.revoke_cert(fingerprint(&der)),
            )
        }
        (None, None) => return Err("name a user or give --cert FILE".into()),
    };
    if added {
        std::fs::write(&list, r.to_text())
            .map_err(|e| format!("cannot write {}: {e}", list.display()))?;
        println!("{what} revoked in {}", list.display());
    } else {
        println!("{what} was already revoked in {}", list.display());
    }
    println!("copy it to each server (`server --revoked FILE`) and send it SIGHUP to apply it");
    Ok(ExitCode::SUCCESS)
}

fn user(name: &str) -> Result<UserId, String> {
    UserId::new(name).map_err(|e| format!("bad user name {name:?}: {e:?}"))
}

/// The call options from the flags, with config.toml's defaults under them.
fn call_options(
    config: &Config,
    input: Option<String>,
    output: Option<String>,
    relay: bool,
    chacha: bool,
    processing: ProcessingArgs,
) -> Result<CallOptions, String> {
    let input = input.or_else(|| config.input.clone());
    let output = output.or_else(|| config.output.clone());
    let mut options = CallOptions::new(
        input
            .as_deref()
            .unwrap_or("default")
            .parse()
            .map_err(|e| format!("--input: {e}"))?,
        output
            .as_deref()
            .unwrap_or("default")
            .parse()
            .map_err(|e| format!("--output: {e}"))?,
    );
    options.processing = processing.apply(options.processing);
    // The flags win over the file; neither keeps what the input calls for.
    let low_latency = match (processing.low_latency, processing.save_bandwidth) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => config.low_latency,
    };
    match low_latency {
        Some(true) => options.frame = FrameDuration::Ms10,
        Some(false) => options.frame = FrameDuration::Ms20,
        None => {}
    }
    options.force_relay = relay || config.relay;
    options.relay_first = !config.wait_for_direct;
    options.prefer_chacha = chacha || config.chacha;
    Ok(options)
}

/// The profile a command works in: checked to be one, and its log file
/// opened there.
fn enter_profile(
    dir: &std::path::Path,
    verbose: u8,
) -> Result<(Config, cryptic_call::logging::LogGuard), String> {
    check_profile(dir)?;
    let config = Config::load(dir)?;
    // Kept until the command ends: the log file's writer flushes on drop.
    let guard = cryptic_call::logging::init_client(verbose, Some(dir));
    Ok((config, guard))
}

/// `demo`: runs the call, prints the summary; fails unless both saw the
/// same SAS.
async fn demo(options: &DemoOptions) -> Result<ExitCode, String> {
    println!("cryptic-call demo: alice calls bob through an embedded server on loopback");
    let summary = run_demo(options).await?;
    print_summary(&summary, &options.output_wav);
    let ok = summary.caller.sas.is_some() && summary.caller.sas == summary.callee.sas;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let verbose = cli.verbose;
    let command = cli.command.unwrap_or(Command::Shell {
        profile: std::env::var_os(cryptic_call::config::PROFILE_ENV)
            .map_or_else(|| PathBuf::from("profile"), PathBuf::from),
        auto_answer: false,
        input: None,
        output: None,
        processing: ProcessingArgs::default(),
    });
    match command {
        Command::Server(server) => {
            cryptic_call::logging::init_server(verbose, cli.log_format);
            return serve(server).await;
        }
        Command::Ca { .. } | Command::Demo { .. } | Command::Devices => {
            let _ = cryptic_call::logging::init_client(verbose, None);
        }
        _ => {}
    }
    match command {
        Command::Shell {
            profile,
            auto_answer,
            input,
            output,
            processing,
        } => {
            let (config, _log) = enter_profile(&profile, verbose)?;
            let options = call_options(&config, input, output, false, false, processing)?;
            let mut shell = cryptic_call::shell::ShellOptions::new(options);
            shell.auto_answer = auto_answer || config.auto_answer;
            cryptic_call::shell::run_shell(&profile, shell).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            seconds,
            output,
            devices,
            relay,
            low_latency,
            save_bandwidth,
        } => {
            let mut options = DemoOptions::new(output);
            options.relay = relay;
            options.low_latency = match (low_latency, save_bandwidth) {
                (false, false) => None,
                (fast, _) => Some(fast),
            };
            options.duration = Duration::from_secs(seconds);
            options.devices = devices;
            demo(&options).await
        }
        Command::Ca { command } => ca(command),
        Command::Server(server) => serve(server).await,
        Command::Call {
            user: peer,
            profile,
            input,
            output,
            duration,
            cancel_after,
            ring_timeout,
            relay,
            chacha,
            processing,
        } => {
            let (config, _log) = enter_profile(&profile, verbose)?;
            let peer = user(config.resolve(&peer))?;
            let mut options = call_options(&config, input, output, relay, chacha, processing)?;
            options.duration = duration.map(Duration::from_secs);
            options.cancel_after = cancel_after.map(Duration::from_secs_f64);
            options.ring_timeout = Duration::from_secs(ring_timeout);
            one_call(&profile, &config, Some(peer), options).await
        }
        Command::Listen {
            profile,
            auto_accept,
            accept_after,
            reject,
            relay,
            chacha,
            input,
            output,
            duration,
            processing,
        } => {
            if !auto_accept && !reject && accept_after.is_none() {
                return Err(
                    "listen needs --auto-accept, --accept-after SECS or --reject: to answer by hand, use the interactive `shell`"
                        .into(),
                );
            }
            let (config, _log) = enter_profile(&profile, verbose)?;
            let mut options = call_options(&config, input, output, relay, chacha, processing)?;
            options.duration = duration.map(Duration::from_secs);
            options.auto_reject = reject;
            options.auto_accept = if auto_accept {
                Some(Duration::ZERO)
            } else {
                accept_after.map(Duration::from_secs_f64)
            };
            one_call(&profile, &config, None, options).await
        }
        Command::History {
            profile,
            limit,
            json,
        } => {
            let path = history_path(&profile)?;
            let history = History::open(&path).map_err(|e| e.to_string())?;
            let calls = history.recent(limit).map_err(|e| e.to_string())?;
            if json {
                println!("{}", cryptic_call::history::to_json(&calls));
            } else if calls.is_empty() {
                println!("no calls yet");
            } else {
                println!("{}", header());
                for call in &calls {
                    println!("{}", format_record(call));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices => {
            let devices = cryptic_call::devices::list()?;
            println!("{}", cryptic_call::devices::table(&devices));
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { profile } => {
            check_profile(&profile)?;
            keys::show(&profile)
        }
        Command::Verify { user, profile, yes } => {
            check_profile(&profile)?;
            keys::verify(&profile, &user, yes)
        }
        Command::Trust { user, profile, yes } => {
            check_profile(&profile)?;
            keys::trust(&profile, &user, yes)
        }
    }
}

async fn one_call(
    profile_dir: &std::path::Path,
    config: &Config,
    callee: Option<UserId>,
    options: CallOptions,
) -> Result<ExitCode, String> {
    let profile = Profile::load(profile_dir).map_err(|e| e.to_string())?;
    let _lock =
        cryptic_signal::profile::ProfileLock::acquire(profile_dir).map_err(|e| e.to_string())?;
    if callee.as_ref() == Some(&profile.user) {
        return Err("you cannot call yourself".into());
    }
    // A missing microphone, speaker or file: one line, before anyone rings.
    cryptic_call::devices::check(&options.input, &options.output)?;
    let servers = cryptic_call::link::Servers::from_profile(&profile, config)?;
    let mut conn = servers
        .connect_first()
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    let mut e2e = profile.e2e().map_err(|e| e.to_string())?;
    cryptic_call::call::publish_keys(&mut conn, &mut e2e, 5).await?;
    if let Some(peer) = &callee {
        if !e2e.has_session(peer) {
            let bundle = conn.fetch_keys(peer).await.map_err(|e| match e {
                cryptic_signal::Error::Server {
                    code: cryptic_signal::wire::ErrorCode::NoKeys,
                    ..
                } => format!("no such user, or {peer} never signed in"),
                other => other.to_string(),
            })?;
            e2e.start_session(&bundle).map_err(|e| e.to_string())?;
        }
    }
    let me = conn.user().clone();
    let ice_servers = conn.ice_servers().to_vec();
    let (sender, receiver) = conn.split();
    let mut side = CallSide {
        me,
        e2e,
        sender,
        receiver,
        ice_servers,
        servers: Some(servers),
    };
    if callee.is_none() {
        println!("waiting for a call...");
    }
    // Ctrl-C or SIGTERM hangs up: the history row and the WAV are finished.
    let (controls, mut control_rx) = tokio::sync::mpsc::unbounded_channel();
    let stopper = tokio::spawn(async move {
        stop_signal().await;
        eprintln!("cryptic-call: hanging up (interrupted)");
        let _ = controls.send(Control::Hangup);
        // A call ends within a moment of the hang-up and the history is
        // written; with no call to end (still waiting), or on a second
        // signal, leave.
        tokio::select! {
            () = stop_signal() => {}
            () = tokio::time::sleep(Duration::from_secs(3)) => {}
        }
        std::process::exit(130);
    });
    let report = run_call_with(&mut side, callee, &options, None, &mut control_rx).await;
    stopper.abort();
    let report = report.map_err(|e| e.to_string())?;
    let verified = report
        .sas
        .as_ref()
        .and(report.peer.as_ref())
        .map(|p| side.e2e.pinned_key(p).is_some_and(|k| k.verified));
    cryptic_call::history::record_report(profile_dir, &report, verified);
    println!("{}", cryptic_call::shell::ended_line(&report));
    Ok(ExitCode::from(report.outcome.exit_code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(config: &str, input: &str, flags: ProcessingArgs) -> FrameDuration {
        let config = Config::parse(config).expect("config");
        call_options(&config, Some(input.into()), None, false, false, flags)
            .expect("options")
            .frame
    }

    #[test]
    fn a_microphone_sends_10_ms_frames_unless_told_to_save_bandwidth() {
        let none = ProcessingArgs::default();
        let fast = ProcessingArgs {
            low_latency: true,
            ..none
        };
        let thrifty = ProcessingArgs {
            save_bandwidth: true,
            ..none
        };
        assert_eq!(frame("", "default", none), FrameDuration::Ms10);
        assert_eq!(frame("", "device:pulse", none), FrameDuration::Ms10);
        assert_eq!(frame("", "tone", none), FrameDuration::Ms20);
        assert_eq!(frame("", "default", thrifty), FrameDuration::Ms20);
        assert_eq!(frame("", "tone", fast), FrameDuration::Ms10);
        assert_eq!(
            frame("low_latency = false", "default", none),
            FrameDuration::Ms20
        );
        assert_eq!(
            frame("low_latency = true", "tone", none),
            FrameDuration::Ms10
        );
        // The flag wins over the file.
        assert_eq!(
            frame("low_latency = false", "tone", fast),
            FrameDuration::Ms10
        );
        assert_eq!(
            frame("low_latency = true", "default", thrifty),
            FrameDuration::Ms20
        );
    }
}
