//! A Redis-backed cluster for tests: a private `redis-server` and N
//! signaling nodes (`server --cluster redis://...`) on loopback, and
//! profiles of users whose server is one node or another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cryptic_signal::client::{connect, Receiver, Sender};
use cryptic_signal::profile::Profile;
use cryptic_signal::wire::UserId;

use super::{run_ok, Proc, Spawn, TempDir};

pub fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private redis-server, ready when `redis-cli ping` answers.
pub fn redis(port: u16) -> Option<Proc> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        cryptic_tests::skip("redis-server (Debian package redis-server) is not installed");
        return None;
    }
    let p = port.to_string();
    let proc = Proc::start(
        "redis",
        "redis-server",
        &[
            "--port",
            &p,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("redis-cli").args(["-p", &p, "ping"]).output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
            return Some(proc);
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not answer PING"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private redis-server that speaks only TLS (certificate and key in
/// `tls_dir`, as `ca issue-server` writes them), ready when `redis-cli
/// --tls` gets `PONG`.
pub fn redis_tls(port: u16, tls_dir: &Path, ca_crt: &Path) -> Option<Proc> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        cryptic_tests::skip("redis-server (Debian package redis-server) is not installed");
        return None;
    }
    let p = port.to_string();
    let path = |n: &str| tls_dir.join(n).to_str().unwrap().to_owned();
    let proc = Proc::start(
        "redis-tls",
        "redis-server",
        &[
            "--port",
            "0",
            "--tls-port",
            &p,
            "--tls-cert-file",
            &path("server.crt"),
            "--tls-key-file",
            &path("server.key"),
            "--tls-ca-cert-file",
            ca_crt.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("redis-cli")
            .args([
                "--tls",
                "--cacert",
                ca_crt.to_str().unwrap(),
                "-p",
                &p,
                "ping",
            ])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
            return Some(proc);
        }
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not answer PING"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Cluster {
    pub dir: TempDir,
    pub redis: Proc,
    pub redis_port: u16,
    pub nodes: Vec<(Proc, String)>,
}

impl Cluster {
    pub fn start(tag: &str, n: usize) -> Option<Cluster> {
        Self::start_with(tag, n, false, &[])
    }

    /// With `tls`, Redis listens only for TLS, with a certificate from the
    /// deployment's CA, and the nodes reach it at `rediss://` with
    /// `--cluster-ca`; `flags` go to every node.
    pub fn start_with(tag: &str, n: usize, tls: bool, flags: &[&str]) -> Option<Cluster> {
        let dir = TempDir::new(tag);
        let redis_port = port();
        let ca = dir.0.join("ca");
        run_ok(&["ca", "init", "--dir", ca.to_str().unwrap()]);
        let ca_crt = ca.join("ca.crt");
        let redis = if tls {
            let rt = dir.0.join("redis-tls");
            run_ok(&[
                "ca",
                "issue-server",
                "--dir",
                ca.to_str().unwrap(),
                "--name",
                "127.0.0.1",
                "--out",
                rt.to_str().unwrap(),
            ]);
            redis_tls(redis_port, &rt, &ca_crt)?
        } else {
            redis(redis_port)?
        };
        let server_tls = dir.0.join("tls");
        run_ok(&[
            "ca",
            "issue-server",
            "--dir",
            ca.to_str().unwrap(),
            "--name",
            "127.0.0.1",
            "--out",
            server_tls.to_str().unwrap(),
        ]);
        let scheme = if tls { "rediss" } else { "redis" };
        let url = format!("{scheme}://127.0.0.1:{redis_port}");
        let mut nodes = Vec::new();
        for i in 0..n {
            let addr = format!("127.0.0.1:{}", port());
            let data = dir.0.join(format!("data{i}"));
            let node = format!("node{i}");
            let mut args = vec![
                "server",
                "--tls",
                server_tls.to_str().unwrap(),
                "--listen",
                &addr,
                "--data",
                data.to_str().unwrap(),
                "--cluster",
                &url,
                "--node-id",
                &node,
            ];
            if tls {
                args.extend(["--cluster-ca", ca_crt.to_str().unwrap()]);
            }
            args.extend_from_slice(flags);
            let mut p = Proc::spawn(&node, &args);
            p.wait_for("listening on", Duration::from_secs(20));
            nodes.push((p, addr));
        }
        Some(Cluster {
            dir,
            redis,
            redis_port,
            nodes,
        })
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.0.join("ca")
    }

    /// A profile of `user` whose server is node `i`.
    pub fn profile(&self, user: &str, i: usize) -> PathBuf {
        let out = self.dir.0.join(format!("{user}-at-{i}"));
        if !out.exists() {
            run_ok(&[
                "ca",
                "issue",
                user,
                "--dir",
                self.ca().to_str().unwrap(),
                "--server",
                &self.nodes[i].1,
                "--server-name",
                "127.0.0.1",
                "--out",
                out.to_str().unwrap(),
            ]);
        }
        out
    }

    pub async fn login(&self, user: &str, i: usize) -> (Sender, Receiver) {
        login(&self.profile(user, i)).await
    }
}

pub async fn login(profile: &Path) -> (Sender, Receiver) {
    let p = Profile::load(profile).unwrap();
    connect(&p.client_config().unwrap()).await.unwrap().split()
}

pub fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}
