//! A real coturn (`turnserver`) started by the test and stopped by its
//! process id.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const USER: &str = "alice";
pub const PASS: &str = "secret";

pub struct Coturn {
    child: Child,
    /// Every log line so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Whether `turnserver` is installed; prints why not when it is missing.
pub fn available() -> bool {
    let ok = Command::new("turnserver")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        cryptic_tests::skip("turnserver (Debian package coturn) is not installed");
    }
    ok
}

/// Starts coturn on `ip:port` relaying on `ip` within `relay_ports`, with
/// extra arguments; `wrap` prefixes the command (e.g. `ip netns exec NS`).
/// Ready once its UDP listener is open.
pub fn start(
    wrap: &[&str],
    ip: &str,
    port: u16,
    relay_ports: (u16, u16),
    extra: &[&str],
) -> Coturn {
    start_ready(wrap, ip, port, relay_ports, extra, Listener::Udp)
}

/// Which listener the test waits for, and whether TLS is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `UDP listener opened on`; TLS off (`--no-tls`).
    Udp,
    /// `TCP listener opened on` for `port`; TLS off.
    Tcp,
    /// `TLS/TCP listener opened on` for `port`; TLS on (give
    /// `--tls-listening-port`, `--cert` and `--pkey` in `extra`).
    Tls,
}

/// [`start`], ready when `listener` is open.
pub fn start_ready(
    wrap: &[&str],
    ip: &str,
    port: u16,
    relay_ports: (u16, u16),
    extra: &[&str],
    listener: Listener,
) -> Coturn {
    let tmp = cryptic_tests::temp_dir(&format!("ice-coturn-{port}"));
    let dir = tmp.path().to_path_buf();
    let (prog, pre) = match wrap.split_first() {
        Some((p, rest)) => (*p, rest.to_vec()),
        None => ("turnserver", vec![]),
    };
    let mut cmd = Command::new(prog);
    cmd.args(&pre);
    if !wrap.is_empty() {
        cmd.arg("turnserver");
    }
    cmd.args([
        "-n",
        &format!("--listening-ip={ip}"),
        &format!("--relay-ip={ip}"),
        &format!("--listening-port={port}"),
        "--lt-cred-mech",
        &format!("--user={USER}:{PASS}"),
        "--realm=test.local",
        "--fingerprint",
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        &format!("--min-port={}", relay_ports.0),
        &format!("--max-port={}", relay_ports.1),
        &format!("--userdb={}/turndb", dir.display()),
        "--log-file=stdout",
        "--simple-log",
        &format!("--pidfile={}/turnserver.pid", dir.display()),
        "-v",
    ]);
    if listener != Listener::Tls {
        cmd.arg("--no-tls");
    }
    cmd.args(extra);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    // With TLS, ready means the TLS port's listener, which coturn opens
    // after the plain one (waiting for the plain one raced in CI).
    let tls_port = extra
        .iter()
        .find_map(|a| a.strip_prefix("--tls-listening-port="))
        .map(str::to_owned);
    let needle = match (listener, tls_port) {
        (Listener::Tls, Some(tls)) => format!("{ip}:{tls}"),
        _ => format!("{ip}:{port}"),
    };
    let ready = match listener {
        Listener::Udp => "UDP listener opened on",
        // "TCP listener opened on", or "TLS/TCP ..." with TLS on.
        Listener::Tcp | Listener::Tls => "TCP listener opened on",
    };
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("COTURN_LOG").is_some() {
                eprintln!("coturn: {line}");
            }
            log2.lock().unwrap().push(line.clone());
            if line.contains(ready) && line.trim_end().ends_with(&needle) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("coturn did not open its listener");
    Coturn {
        child,
        log,
        addr: format!("{ip}:{port}").parse().unwrap(),
        _dir: tmp,
    }
}

impl Coturn {
    /// Waits up to `limit` for `n` log lines containing `needle`.
    pub fn wait_log(&self, needle: &str, n: usize, limit: Duration) -> bool {
        let end = std::time::Instant::now() + limit;
        while std::time::Instant::now() < end {
            if self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
                >= n
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        // Child::kill signals this child's own pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
