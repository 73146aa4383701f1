//! Network namespaces made by the test: two clients, each behind its own
//! NAT router namespace (iptables MASQUERADE, optionally `--random-fully`
//! for a symmetric-like NAT), and a "public" namespace with coturn. Nothing
//! is connected to the host; everything is deleted on drop.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cryptic_tests::netns::Lab;

pub const TURN: &str = "203.0.113.1:3478";

/// Whether namespaces, veths and iptables can be used here; prints the
/// reason when not (fails under `CRYPTIC_REQUIRE_ENV=1`).
pub fn available() -> bool {
    Lab::new("ciprobe").is_some()
}

/// Two clients, each behind its own NAT router, and a public network
/// (203.0.113.0/24, a bridge in `public`) where the routers' WAN sides and
/// coturn live. Built on the shared namespace lab; deleted on drop.
pub struct Topology {
    pub public: String,
    pub routers: [String; 2],
    pub clients: [String; 2],
    lab: Lab,
}

impl Topology {
    /// Builds the topology; `symmetric` makes both NATs pick a random port
    /// per destination.
    pub fn new(tag: &str, symmetric: bool) -> Self {
        let mut lab = Lab::new(&format!("ci{tag}")).expect("network namespaces (checked first)");
        let public = lab.host("p");
        let routers = [lab.host("ra"), lab.host("rb")];
        let clients = [lab.host("ca"), lab.host("cb")];
        for (i, r) in routers.iter().enumerate() {
            let wan = format!("203.0.113.{}/24", i + 2);
            lab.veth((r, "wan", Some(&wan)), (&public, &format!("port{i}"), None));
        }
        lab.bridge(&public, "br0", "203.0.113.1/24", &["port0", "port1"]);
        // Like a server on the Internet, the public side has a default route:
        // coturn closes an allocation whose relay socket gets ENETUNREACH
        // (a peer's private host candidate); here such packets just vanish.
        lab.default_dev(&public, "br0");
        for i in 0..2 {
            let (r, c) = (routers[i].as_str(), clients[i].as_str());
            let lan = format!("10.{}.0", i + 1);
            let (gw, host) = (format!("{lan}.1"), format!("{lan}.2/24"));
            lab.veth(
                (r, "lan", Some(&format!("{gw}/24"))),
                (c, "eth0", Some(&host)),
            );
            lab.default_route(c, &gw);
            lab.forwarding(r);
            lab.nat(r, &format!("{lan}.0/24"), "lan", "wan", symmetric);
        }
        Topology {
            public,
            routers,
            clients,
            lab,
        }
    }

    /// Drops everything client `i`'s router forwards (a cut path), or lifts
    /// the cut.
    pub fn cut(&self, i: usize, on: bool) {
        let op = if on { "-I" } else { "-D" };
        let done = self
            .lab
            .iptables(&self.routers[i], &[op, "FORWARD", "-j", "DROP"]);
        assert!(done, "cut {on} on router {i}");
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
            ..cryptic_tests::Spawn::default()
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
