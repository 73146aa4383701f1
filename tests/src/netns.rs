//! The namespace lab: hosts, routers, NATs and links made of Linux network
//! namespaces that exist only for one test (never connected to the host),
//! deleted when the [`Lab`] is dropped.
//!
//! Every topology the tests use is a few calls on one builder: ICE's two
//! clients behind NAT routers and a public network with coturn, the
//! client's three hosts behind one router, and so on.
//!
//! ```no_run
//! # use cryptic_tests::netns::Lab;
//! let Some(mut lab) = Lab::new("demo") else { return };
//! let (r, a) = (lab.host("r"), lab.host("a"));
//! lab.veth((&a, "eth0", Some("10.9.1.2/24")), (&r, "a0", Some("10.9.1.1/24")));
//! lab.default_route(&a, "10.9.1.1");
//! lab.forwarding(&r);
//! ```

use std::process::Command;

/// Namespaces made by one test; all deleted on drop.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    made: Vec<String>,
}

/// Runs `args`; whether it succeeded.
fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Lab {
    /// An empty lab whose namespaces are named `<tag><name><pid>`, or
    /// `None` after [`crate::skip`] when namespaces or iptables inside them
    /// cannot be used here (needs root, iproute2 and iptables).
    pub fn new(tag: &str) -> Option<Lab> {
        let lab = Lab {
            prefix: format!("{tag}{}", std::process::id() % 100_000),
            made: Vec::new(),
        };
        // Tests of one process run in parallel: one probe name each.
        static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = lab.ns(&format!("probe{n}"));
        let _ = run(&["ip", "netns", "del", &probe]);
        if let Err(e) = run(&["ip", "netns", "add", &probe]) {
            crate::skip(format!(
                "cannot create network namespaces (root and iproute2 needed): {e}"
            ));
            return None;
        }
        let ipt = run(&["ip", "netns", "exec", &probe, "iptables", "-t", "nat", "-L"]);
        let _ = run(&["ip", "netns", "del", &probe]);
        if let Err(e) = ipt {
            crate::skip(format!(
                "iptables cannot run in a network namespace (package iptables): {e}"
            ));
            return None;
        }
        Some(lab)
    }

    /// The namespace of host `name` (made or not).
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Makes host `name` (a namespace with loopback up); returns its
    /// namespace.
    pub fn host(&mut self, name: &str) -> String {
        let ns = self.ns(name);
        let _ = run(&["ip", "netns", "del", &ns]);
        self.sh(&["ip", "netns", "add", &ns]);
        self.made.push(ns.clone());
        self.sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a set-up command that must succeed.
    ///
    /// # Panics
    ///
    /// When it fails: the lab could be made, so a step that fails is a bug
    /// in the test.
    pub fn sh(&self, args: &[&str]) {
        if let Err(e) = run(args) {
            panic!("setting up the namespace lab: {e}");
        }
    }

    /// Runs `args` inside namespace `ns`; whether it succeeded.
    pub fn exec(&self, ns: &str, args: &[&str]) -> bool {
        let mut all = vec!["ip", "netns", "exec", ns];
        all.extend_from_slice(args);
        run(&all).is_ok()
    }

    /// `iptables ARGS` inside `ns`; whether it succeeded.
    pub fn iptables(&self, ns: &str, args: &[&str]) -> bool {
        let mut all = vec!["iptables"];
        all.extend_from_slice(args);
        self.exec(ns, &all)
    }

    /// A cable: a veth pair from device `a.1` in namespace `a.0` to `b.1`
    /// in `b.0`, each end up and with its address (`10.0.0.1/24`) if given.
    pub fn veth(&self, a: (&str, &str, Option<&str>), b: (&str, &str, Option<&str>)) {
        self.sh(&[
            "ip", "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns",
            b.0,
        ]);
        for (ns, dev, cidr) in [a, b] {
            if let Some(cidr) = cidr {
                self.sh(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]);
            }
            self.sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// A bridge `dev` in `ns` with address `cidr` (a switch the veths in
    /// `ports` plug into), up.
    pub fn bridge(&self, ns: &str, dev: &str, cidr: &str, ports: &[&str]) {
        self.sh(&["ip", "-n", ns, "link", "add", dev, "type", "bridge"]);
        self.sh(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]);
        self.sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        for p in ports {
            self.sh(&["ip", "-n", ns, "link", "set", p, "master", dev]);
        }
    }

    /// The default route of `ns` via `gateway`.
    pub fn default_route(&self, ns: &str, gateway: &str) {
        self.sh(&["ip", "-n", ns, "route", "add", "default", "via", gateway]);
    }

    /// The default route of `ns` out of device `dev` (no gateway: packets
    /// to unknown networks leave and vanish, as on the Internet).
    pub fn default_dev(&self, ns: &str, dev: &str) {
        self.sh(&["ip", "-n", ns, "route", "add", "default", "dev", dev]);
    }

    /// Makes `ns` forward IPv4 (a router).
    pub fn forwarding(&self, ns: &str) {
        self.sh(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
    }

    /// Makes router `ns` a NAT for `lan` (`10.1.0.0/24`) out of `wan`:
    /// masquerade (`symmetric`: a random port per destination), only
    /// replies come back in, and unsolicited packets to the router itself
    /// are dropped before conntrack confirms them (so they leave no entry
    /// that would clash with a later outbound mapping: a cone NAT keeps
    /// ports).
    pub fn nat(&self, ns: &str, lan: &str, lan_dev: &str, wan: &str, symmetric: bool) {
        let mut masq = vec![
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            lan,
            "-o",
            wan,
            "-j",
            "MASQUERADE",
        ];
        if symmetric {
            masq.push("--random-fully");
        }
        let rules: [&[&str]; 5] = [
            &masq,
            &[
                "-A",
                "INPUT",
                "-i",
                wan,
                "-m",
                "conntrack",
                "--ctstate",
                "NEW,INVALID",
                "-j",
                "DROP",
            ],
            &["-P", "FORWARD", "DROP"],
            &["-A", "FORWARD", "-i", lan_dev, "-o", wan, "-j", "ACCEPT"],
            &[
                "-A",
                "FORWARD",
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "ACCEPT",
            ],
        ];
        for r in rules {
            assert!(self.iptables(ns, r), "NAT rule {r:?} in {ns}");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}
