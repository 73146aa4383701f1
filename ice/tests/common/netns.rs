//! Network namespaces made by the test: two clients, each behind its own
//! NAT router namespace (iptables MASQUERADE, optionally `--random-fully`
//! for a symmetric-like NAT), and a "public" namespace with coturn. Nothing
//! is connected to the host; everything is deleted on drop.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

pub const TURN: &str = "203.0.113.1:3478";

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether namespaces, veths and iptables can be used here; prints the
/// reason when not.
pub fn available() -> bool {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("ciprobe{}x{n}", std::process::id());
    let ok = Command::new("ip").args(["netns", "add", &probe]).output();
    match ok {
        Ok(o) if o.status.success() => {
            let ipt = Command::new("ip")
                .args(["netns", "exec", &probe, "iptables", "-t", "nat", "-L"])
                .output();
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
            match ipt {
                Ok(o) if o.status.success() => true,
                _ => {
                    cryptic_tests::skip(
                        "iptables cannot run in a network namespace (package iptables, root)",
                    );
                    false
                }
            }
        }
        Ok(o) => {
            cryptic_tests::skip(format!(
                "cannot create network namespaces: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            false
        }
        Err(e) => {
            cryptic_tests::skip(format!("`ip` (package iproute2) not runnable: {e}"));
            false
        }
    }
}

pub struct Topology {
    pub public: String,
    pub routers: [String; 2],
    pub clients: [String; 2],
}

impl Topology {
    /// Builds the topology; `symmetric` makes both NATs pick a random port
    /// per destination.
    pub fn new(tag: &str, symmetric: bool) -> Self {
        let id = std::process::id() % 100_000;
        let n = |s: &str| format!("ci{tag}{s}{id}");
        let t = Self {
            public: n("p"),
            routers: [n("ra"), n("rb")],
            clients: [n("ca"), n("cb")],
        };
        for ns in [
            &t.public,
            &t.routers[0],
            &t.routers[1],
            &t.clients[0],
            &t.clients[1],
        ] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let p = t.public.as_str();
        sh(&["ip", "-n", p, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", p, "addr", "add", "203.0.113.1/24", "dev", "br0"]);
        sh(&["ip", "-n", p, "link", "set", "br0", "up"]);
        // Like a server on the Internet, the public side has a default route:
        // coturn closes an allocation whose relay socket gets ENETUNREACH
        // (a peer's private host candidate); here such packets just vanish.
        sh(&["ip", "-n", p, "route", "add", "default", "dev", "br0"]);
        for i in 0..2 {
            let (r, c) = (t.routers[i].as_str(), t.clients[i].as_str());
            let wan_ip = format!("203.0.113.{}/24", i + 2);
            let lan = format!("10.{}.0", i + 1);
            sh(&[
                "ip",
                "link",
                "add",
                "wan",
                "netns",
                r,
                "type",
                "veth",
                "peer",
                "name",
                &format!("port{i}"),
                "netns",
                p,
            ]);
            sh(&[
                "ip",
                "-n",
                p,
                "link",
                "set",
                &format!("port{i}"),
                "master",
                "br0",
            ]);
            sh(&["ip", "-n", p, "link", "set", &format!("port{i}"), "up"]);
            sh(&["ip", "-n", r, "addr", "add", &wan_ip, "dev", "wan"]);
            sh(&["ip", "-n", r, "link", "set", "wan", "up"]);
            sh(&[
                "ip", "link", "add", "lan", "netns", r, "type", "veth", "peer", "name", "eth0",
                "netns", c,
            ]);
            sh(&[
                "ip",
                "-n",
                r,
                "addr",
                "add",
                &format!("{lan}.1/24"),
                "dev",
                "lan",
            ]);
            sh(&["ip", "-n", r, "link", "set", "lan", "up"]);
            sh(&[
                "ip",
                "-n",
                c,
                "addr",
                "add",
                &format!("{lan}.2/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", c, "link", "set", "eth0", "up"]);
            sh(&[
                "ip",
                "-n",
                c,
                "route",
                "add",
                "default",
                "via",
                &format!("{lan}.1"),
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                r,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
            let mut masq = vec![
                "ip",
                "netns",
                "exec",
                r,
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
            ];
            let src = format!("{lan}.0/24");
            masq.extend(["-s", &src, "-o", "wan", "-j", "MASQUERADE"]);
            if symmetric {
                masq.push("--random-fully");
            }
            sh(&masq);
            // Unsolicited packets to the router itself are dropped before
            // conntrack confirms them, so they leave no entry that would
            // clash with a later outbound mapping (a cone NAT keeps ports).
            sh(&[
                "ip",
                "netns",
                "exec",
                r,
                "iptables",
                "-A",
                "INPUT",
                "-i",
                "wan",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW,INVALID",
                "-j",
                "DROP",
            ]);
            sh(&[
                "ip", "netns", "exec", r, "iptables", "-P", "FORWARD", "DROP",
            ]);
            sh(&[
                "ip", "netns", "exec", r, "iptables", "-A", "FORWARD", "-i", "lan", "-o", "wan",
                "-j", "ACCEPT",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                r,
                "iptables",
                "-A",
                "FORWARD",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ]);
        }
        t
    }

    /// Drops everything client `i`'s router forwards (a cut path), or lifts
    /// the cut.
    pub fn cut(&self, i: usize, on: bool) {
        let r = self.routers[i].as_str();
        let op = if on { "-I" } else { "-D" };
        sh(&[
            "ip", "netns", "exec", r, "iptables", op, "FORWARD", "-j", "DROP",
        ]);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [
            &self.public,
            &self.routers[0],
            &self.routers[1],
            &self.clients[0],
            &self.clients[1],
        ] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The `ice-peer` binary: Cargo's path in tests, next to `examples/`
/// otherwise.
fn peer_exe() -> String {
    match option_env!("CARGO_BIN_EXE_ice-peer") {
        Some(p) => p.to_owned(),
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("ice-peer")
                .display()
                .to_string()
        }
    }
}

/// An `ice-peer` process in a namespace, signaled over its stdin/stdout
/// (the shared test spawner underneath; `quit` when dropped).
pub struct Peer {
    proc: cryptic_tests::Proc,
}

impl Peer {
    pub fn spawn(ns: &str, args: &[&str]) -> Self {
        let how = cryptic_tests::Spawn {
            namespace: Some(ns),
            stderr_to_test: true,
            quit_line: Some("quit"),
        };
        Self {
            proc: cryptic_tests::Proc::start_with("ice-peer", &peer_exe(), args, how),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.proc.type_line(line);
    }

    /// The next line starting with `prefix` (others are skipped).
    pub fn expect(&mut self, prefix: &str, limit: Duration) -> String {
        let line = self.proc.wait_until(&format!("{prefix:?}"), limit, |l| {
            l.starts_with(prefix) || l.starts_with("error")
        });
        assert!(
            !line.starts_with("error") || prefix == "error",
            "peer: {line}"
        );
        line
    }

    /// Signaling lines (credentials, candidates) up to end-of-candidates.
    pub fn offer(&mut self, limit: Duration) -> Vec<String> {
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let l = self
                .proc
                .next_line(left)
                .expect("peer did not finish gathering");
            if let Some(rest) = l.strip_prefix("restarted ") {
                out.push(format!("cred {rest}"));
            } else if l.starts_with("cred ") || l.starts_with("cand ") {
                out.push(l);
            } else if l == "eoc" {
                out.push(l);
                return out;
            }
        }
    }
}

/// Hands each side the other's offer at once; returns both `selected`
/// lines and the time from then until both selected.
pub fn handshake(a: &mut Peer, b: &mut Peer, limit: Duration) -> (String, String, Duration) {
    let (oa, ob) = (a.offer(limit), b.offer(limit));
    let start = Instant::now();
    for l in &ob {
        a.send(l);
    }
    for l in &oa {
        b.send(l);
    }
    let sa = a.expect("selected", limit);
    let sb = b.expect("selected", limit);
    (sa, sb, start.elapsed())
}

/// Standard peer arguments for client namespace `i`.
pub fn peer_args(controlling: bool, extra: &[&'static str]) -> Vec<&'static str> {
    let mut v = vec![
        "--role",
        if controlling {
            "controlling"
        } else {
            "controlled"
        },
        "--stun",
        TURN,
        "--turn",
        TURN,
        "--user",
        "alice",
        "--pass",
        "secret",
    ];
    v.extend_from_slice(extra);
    v
}
