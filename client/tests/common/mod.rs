//! Real processes of the real binary: a CA, a signaling server over mTLS on
//! loopback, and users' profiles, all in a temp dir; every process is
//! stopped by its pid when the test ends.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

pub mod cluster;

pub const BIN: &str = env!("CARGO_BIN_EXE_cryptic-call");

/// A temporary directory (removed when dropped) and its path.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = cryptic_tests::temp_dir(tag);
        TempDir(dir.path().to_path_buf(), dir)
    }
}

pub use cryptic_tests::Proc;

/// Starting our binary (or any program) the way these tests do.
pub trait Spawn {
    /// `cryptic-call ARGS`.
    fn spawn(name: &str, args: &[&str]) -> Proc;
    /// `cryptic-call ARGS` inside a network namespace.
    fn spawn_in(ns: &str, name: &str, args: &[&str]) -> Proc;
    /// Any program.
    fn spawn_cmd(name: &str, program: &str, args: &[&str]) -> Proc;
}

impl Spawn for Proc {
    fn spawn(name: &str, args: &[&str]) -> Proc {
        Proc::start(name, BIN, args)
    }

    fn spawn_in(ns: &str, name: &str, args: &[&str]) -> Proc {
        Proc::start_in(ns, name, BIN, args)
    }

    fn spawn_cmd(name: &str, program: &str, args: &[&str]) -> Proc {
        Proc::start(name, program, args)
    }
}

pub fn run_ok(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "cryptic-call {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a running server and a profile per user.
pub struct World {
    pub dir: TempDir,
    pub server: Proc,
    pub addr: String,
    /// More flags the server was started with.
    pub server_extra: Vec<String>,
}

impl World {
    pub fn start(tag: &str, users: &[&str]) -> Self {
        Self::start_behind(tag, users, None)
    }

    /// As [`World::start`], with more flags for the server.
    pub fn start_with_server_flags(tag: &str, users: &[&str], flags: &[&str]) -> Self {
        Self::start_full(tag, users, None, flags)
    }

    /// As [`World::start`], with the users' profiles pointing at `front`
    /// (something in front of the server) instead of the server itself.
    pub fn start_behind(tag: &str, users: &[&str], front: Option<&str>) -> Self {
        Self::start_full(tag, users, front, &[])
    }

    fn start_full(tag: &str, users: &[&str], front: Option<&str>, flags: &[&str]) -> Self {
        let dir = TempDir::new(tag);
        let ca = dir.0.join("ca");
        run_ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        for u in users {
            run_ok(&[
                "ca",
                "issue",
                u,
                "--dir",
                ca.to_str().unwrap(),
                "--server",
                front.unwrap_or(&addr),
                "--out",
                dir.0.join(u).to_str().unwrap(),
            ]);
        }
        let server_extra: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let server = Self::spawn_server(&dir.0, &addr, &server_extra);
        World {
            dir,
            server,
            addr,
            server_extra,
        }
    }

    fn spawn_server(dir: &Path, addr: &str, extra: &[String]) -> Proc {
        let ca = dir.join("ca");
        let data = dir.join("server-data");
        let mut args = vec![
            "server",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            "localhost",
            "--name",
            "127.0.0.1",
            "--listen",
            addr,
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend(extra.iter().map(String::as_str));
        let mut server = Proc::spawn("server", &args);
        server.wait_for("listening on", Duration::from_secs(20));
        server
    }

    /// Stops the server (by its pid) and starts it again on the same
    /// address with the same data.
    pub fn restart_server(&mut self) {
        self.server.kill();
        self.server = Self::spawn_server(&self.dir.0, &self.addr, &self.server_extra);
    }

    /// Stops the server.
    pub fn stop_server(&mut self) {
        self.server.kill();
    }

    /// Starts a stopped server again.
    pub fn start_server(&mut self) {
        self.server = Self::spawn_server(&self.dir.0, &self.addr, &self.server_extra);
    }

    pub fn profile(&self, user: &str) -> PathBuf {
        self.dir.0.join(user)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// `cryptic-call listen` for `user`, waiting until it is ready.
    pub fn listen(&self, user: &str, extra: &[&str]) -> Proc {
        let profile = self.profile(user);
        let mut args = vec!["listen", "--profile", profile.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut p = Proc::spawn(user, &args);
        p.wait_for("waiting for a call", Duration::from_secs(20));
        p
    }

    /// `cryptic-call listen` for `user` with more environment, not
    /// waited for.
    pub fn listen_env(&self, user: &str, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let profile = self.profile(user);
        let mut args = vec!["listen", "--profile", profile.to_str().unwrap()];
        args.extend_from_slice(extra);
        Proc::start_with(
            user,
            BIN,
            &args,
            cryptic_tests::Spawn {
                env,
                ..Default::default()
            },
        )
    }

    /// `cryptic-call call <peer>` for `user`.
    pub fn call(&self, user: &str, peer: &str, extra: &[&str]) -> Proc {
        let profile = self.profile(user);
        let mut args = vec!["call", peer, "--profile", profile.to_str().unwrap()];
        args.extend_from_slice(extra);
        Proc::spawn(user, &args)
    }

    /// The newest history line of `user`.
    pub fn last_history(&self, user: &str) -> String {
        let out = Command::new(BIN)
            .args([
                "history",
                "--profile",
                self.profile(user).to_str().unwrap(),
                "--limit",
                "1",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// Speech from espeak-ng at 48 kHz mono, or `None` (with the reason
/// printed) when espeak-ng or sox is missing.
pub fn speech_wav(dir: &Path) -> Option<PathBuf> {
    let raw = dir.join("speech-raw.wav");
    let out = dir.join("speech48k.wav");
    let ok = Command::new("espeak-ng")
        .args(["-w", raw.to_str().unwrap()])
        .arg("Cryptic call carries this sentence from alice to bob, end to end encrypted, over a real network stack.")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        && Command::new("sox")
            .arg(&raw)
            .args(["-r", "48000", "-c", "1", "-b", "16"])
            .arg(&out)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if ok {
        Some(out)
    } else {
        cryptic_tests::skip(
            "espeak-ng and sox are needed for the speech WAV (scripts/setup installs them)",
        );
        None
    }
}

/// 10 ms RMS envelope.
pub fn envelope(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks(480)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// The best Pearson correlation of `b` against `a` over lags of 0 to
/// `max_lag` envelope steps (b later than a), and that lag.
pub fn best_alignment(a: &[f64], b: &[f64], max_lag: usize) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for lag in 0..=max_lag.min(b.len().saturating_sub(1)) {
        let n = a.len().min(b.len() - lag);
        if n < 50 {
            break;
        }
        let (x, y) = (&a[..n], &b[lag..lag + n]);
        let mx = x.iter().sum::<f64>() / n as f64;
        let my = y.iter().sum::<f64>() / n as f64;
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for i in 0..n {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx).powi(2);
            syy += (y[i] - my).powi(2);
        }
        let r = sxy / (sxx.sqrt() * syy.sqrt()).max(1e-9);
        if r > best.0 {
            best = (r, lag);
        }
    }
    best
}

/// Splits `a` into segments of `seg` envelope steps; aligns each against
/// `b` within `window` steps of `lag`; returns the mean best correlation
/// over segments that carry sound, and each segment's value.
pub fn segment_alignment(
    a: &[f64],
    b: &[f64],
    lag: usize,
    seg: usize,
    window: usize,
) -> (f64, Vec<f64>) {
    let peak = a.iter().cloned().fold(0.0, f64::max);
    let mut rs = Vec::new();
    for (i, s) in a.chunks_exact(seg).enumerate() {
        if s.iter().cloned().fold(0.0, f64::max) < peak * 0.1 {
            continue; // a pause: nothing to follow
        }
        let start = i * seg + lag;
        let lo = start.saturating_sub(window);
        let hi = (start + window).min(b.len().saturating_sub(seg));
        let mut best = f64::MIN;
        for off in lo..=hi {
            let y = &b[off..off + seg];
            let mx = s.iter().sum::<f64>() / seg as f64;
            let my = y.iter().sum::<f64>() / seg as f64;
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for k in 0..seg {
                sxy += (s[k] - mx) * (y[k] - my);
                sxx += (s[k] - mx).powi(2);
                syy += (y[k] - my).powi(2);
            }
            best = best.max(sxy / (sxx.sqrt() * syy.sqrt()).max(1e-9));
        }
        if best > f64::MIN {
            rs.push((best * 1000.0).round() / 1000.0);
        }
    }
    let mean = if rs.is_empty() {
        0.0
    } else {
        rs.iter().sum::<f64>() / rs.len() as f64
    };
    (mean, rs)
}

/// Three hosts behind a router, made with the shared namespace lab (not
/// connected to the host): alice at 10.77.1.2, bob at 10.77.2.2, the server
/// at 10.77.3.2. Deleted when dropped.
pub struct Lab {
    pub lab: cryptic_tests::netns::Lab,
}

impl Lab {
    pub fn ns(&self, host: &str) -> String {
        self.lab.ns(host)
    }

    /// Builds the lab, or prints why it cannot and returns `None`.
    pub fn build() -> Option<Lab> {
        let mut lab = cryptic_tests::netns::Lab::new("cc")?;
        let router = lab.host("r");
        lab.forwarding(&router);
        for (i, host) in ["a", "b", "s"].iter().enumerate() {
            let ns = lab.host(host);
            let net = i + 1;
            let (gw, addr) = (format!("10.77.{net}.1"), format!("10.77.{net}.2/24"));
            lab.veth(
                (&ns, "eth0", Some(&addr)),
                (&router, &format!("{host}0"), Some(&format!("{gw}/24"))),
            );
            lab.default_route(&ns, &gw);
        }
        Some(Lab { lab })
    }

    /// Drops UDP between alice's and bob's hosts in the router (TCP to the
    /// server still flows).
    pub fn block_udp_between_peers(&self) -> bool {
        let router = self.ns("r");
        [
            ("10.77.1.0/24", "10.77.2.0/24"),
            ("10.77.2.0/24", "10.77.1.0/24"),
        ]
        .iter()
        .all(|(src, dst)| {
            self.lab.iptables(
                &router,
                &[
                    "-A", "FORWARD", "-p", "udp", "-s", src, "-d", dst, "-j", "DROP",
                ],
            )
        })
    }
}

/// Where the lab's signaling server listens.
pub const LAB_SERVER: &str = "10.77.3.2:8443";

impl Lab {
    /// A CA and a profile per user in `dir`, and the signaling server
    /// running on the lab's server host, ready.
    pub fn start_server(&self, dir: &Path, users: &[&str]) -> Proc {
        self.start_server_with(dir, users, &[])
    }

    /// [`Lab::start_server`] with more arguments for the server (say
    /// `--ice-server` and `--turn-secret-file`).
    pub fn start_server_with(&self, dir: &Path, users: &[&str], extra: &[&str]) -> Proc {
        let ca = dir.join("ca");
        run_ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
        for u in users {
            run_ok(&[
                "ca",
                "issue",
                u,
                "--dir",
                ca.to_str().unwrap(),
                "--server",
                LAB_SERVER,
                "--server-name",
                "10.77.3.2",
                "--out",
                dir.join(u).to_str().unwrap(),
            ]);
        }
        let data = dir.join("server-data");
        let mut args = vec![
            "server",
            "--ca",
            ca.to_str().unwrap(),
            "--name",
            "10.77.3.2",
            "--listen",
            LAB_SERVER,
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut server = Proc::spawn_in(&self.ns("s"), "server", &args);
        server.wait_for("listening on", Duration::from_secs(20));
        server
    }

    /// `cryptic-call listen` for `user` (profile in `dir`) on host `host`,
    /// ready for a call.
    pub fn listen(&self, dir: &Path, user: &str, host: &str, extra: &[&str]) -> Proc {
        let profile = dir.join(user);
        let mut args = vec!["listen", "--profile", profile.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut p = Proc::spawn_in(&self.ns(host), user, &args);
        p.wait_for("waiting for a call", Duration::from_secs(20));
        p
    }

    /// `cryptic-call call <peer>` for `user` (profile in `dir`) on `host`.
    pub fn call(&self, dir: &Path, user: &str, host: &str, peer: &str, extra: &[&str]) -> Proc {
        let profile = dir.join(user);
        let mut args = vec!["call", peer, "--profile", profile.to_str().unwrap()];
        args.extend_from_slice(extra);
        Proc::spawn_in(&self.ns(host), user, &args)
    }

    /// Starts `tests/impairment_forwarder.py` in the router (after
    /// [`redirect_udp_between_peers`](Self::redirect_udp_between_peers)):
    /// `loss` (a fraction, or `ge:P:R` for Gilbert-Elliott bursts), one-way
    /// `delay_ms` and `jitter_ms`, a `seed`, and how long it runs (s).
    pub fn impairment_relay(
        &self,
        loss: &str,
        delay_ms: &str,
        jitter_ms: &str,
        seed: &str,
        seconds: &str,
    ) -> Proc {
        let relay = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/impairment_forwarder.py");
        let router = self.ns("r");
        let args = [
            "netns",
            "exec",
            &router,
            "python3",
            relay,
            "10.77.1.1:5001",
            "10.77.2.1:5002",
            loss,
            delay_ms,
            jitter_ms,
            seed,
            seconds,
        ];
        let mut p = ProcCmd::spawn("impairment", "ip", &args);
        p.wait_for("impairment ready", Duration::from_secs(10));
        p
    }

    /// Redirects the peers' UDP to ports on the router (10.77.1.1:5001 for
    /// alice's traffic, 10.77.2.1:5002 for bob's), for a relay of the test's.
    pub fn redirect_udp_between_peers(&self) -> bool {
        let router = self.ns("r");
        [
            "-s 10.77.1.0/24 -d 10.77.2.0/24 -j DNAT --to-destination 10.77.1.1:5001",
            "-s 10.77.2.0/24 -d 10.77.1.0/24 -j DNAT --to-destination 10.77.2.1:5002",
        ]
        .iter()
        .all(|rule| {
            let mut args = vec!["-t", "nat", "-A", "PREROUTING", "-p", "udp"];
            args.extend(rule.split(' '));
            self.lab.iptables(&router, &args)
        })
    }
}

/// Spawning any program (not only our binary) with collected output.
pub struct ProcCmd;

impl ProcCmd {
    pub fn spawn(name: &str, program: &str, args: &[&str]) -> Proc {
        Proc::start(name, program, args)
    }
}

/// The longest run of near-silent 20 ms windows in the WAV at `wav` from
/// its first loud window to its end (but the last 200 ms, where the call
/// ends): how long a steady tone was not heard.
pub fn longest_silence(wav: &Path) -> Duration {
    const WINDOW: usize = 960; // 20 ms at 48 kHz
    let samples = cryptic_audio::read_wav_48k_mono(wav).unwrap();
    let rms: Vec<f64> = samples
        .chunks(WINDOW)
        .map(|w| (w.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
        .collect();
    let mut sorted = rms.clone();
    sorted.sort_by(f64::total_cmp);
    let loud = sorted[sorted.len() * 3 / 4] * 0.2;
    let first = rms.iter().position(|r| *r > loud).unwrap_or(0);
    let last = rms.len().saturating_sub(11).max(first);
    let (mut run, mut longest) = (0usize, 0usize);
    for r in &rms[first..=last] {
        run = if *r > loud { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    Duration::from_millis(20 * longest as u64)
}

/// Points the profile in `dir` at `servers` (one `host:port`, or several
/// comma-separated), keeping its user and server name.
pub fn set_profile_server(dir: &Path, servers: &str) {
    let path = dir.join("profile.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["server"] = serde_json::Value::String(servers.to_string());
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// A TCP forwarder on loopback in front of the server that the test can
/// cut (every connection through it closed at once, new ones closed as
/// they come) and let through again, or freeze (the connections through
/// it stay open but carry nothing more, as when a path dies; new ones
/// pass). Threads, stopped when dropped.
pub struct Cutter {
    pub addr: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Both sockets of each connection, and its freeze switch.
    conns: std::sync::Arc<std::sync::Mutex<Vec<(std::net::TcpStream, FreezeSwitch)>>>,
}

type FreezeSwitch = std::sync::Arc<std::sync::atomic::AtomicBool>;

impl Cutter {
    /// Forwards to `upstream` (`host:port`), open.
    pub fn start(upstream: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<(std::net::TcpStream, FreezeSwitch)>>> = Arc::default();
        let (o, s, c, up) = (
            open.clone(),
            stop.clone(),
            conns.clone(),
            upstream.to_string(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = std::net::TcpStream::connect(&up) else {
                    continue;
                };
                let frozen: FreezeSwitch = Arc::default();
                let mut list = c.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    let frozen = frozen.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                // Frozen: read and dropped, never closed.
                                Ok(_) if frozen.load(Ordering::SeqCst) => {}
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                list.push((client, frozen.clone()));
                list.push((server, frozen));
            }
        });
        Cutter {
            addr,
            open,
            stop,
            conns,
        }
    }

    /// Closes every connection through it and every new one until
    /// [`Cutter::restore`].
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for (c, _) in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The connections through it now carry nothing more, and stay open;
    /// new ones pass.
    pub fn freeze(&self) {
        for (_, f) in self.conns.lock().unwrap().iter() {
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }
}
