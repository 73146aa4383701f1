//! Alice and bob on two hosts whose router drops every UDP datagram (network
//! namespaces made by the test): only TCP reaches the third host, where the
//! signaling server and a real coturn run. The server advertises coturn as
//! `turn:...?transport=tcp` (coturn without UDP listeners) or as `turns:`
//! (TLS, with a certificate from the deployment's CA), with per-user TURN
//! REST credentials. ICE allocates over the stream, finds the pair through
//! the relay, and the call completes on `turn-relay`: the media flow
//! through coturn, not the signaling server. Runs as root (CI does); skips
//! with a reason elsewhere.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

/// Drops every UDP datagram the router forwards.
fn block_all_udp(lab: &Lab) -> bool {
    lab.lab
        .iptables(&lab.ns("r"), &["-A", "FORWARD", "-p", "udp", "-j", "DROP"])
}

fn coturn_available() -> bool {
    if std::process::Command::new("turnserver")
        .arg("--help")
        .output()
        .is_err()
    {
        cryptic_tests::skip("turnserver (Debian package coturn) is not installed");
        return false;
    }
    true
}

/// coturn on the server host (10.77.3.2:3478, TLS on 5349 when `tls`
/// names a certificate and key), TURN REST secret `secret`.
fn start_coturn(lab: &Lab, dir: &std::path::Path, secret: &str, tls: Option<(&str, &str)>) -> Proc {
    let ns = lab.ns("s");
    let mut args: Vec<String> = [
        "netns",
        "exec",
        &ns,
        "turnserver",
        "-n",
        "--listening-ip=10.77.3.2",
        "--relay-ip=10.77.3.2",
        "--listening-port=3478",
        "--use-auth-secret",
        "--realm=test.local",
        "--fingerprint",
        "--no-udp",
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        "--min-port=49400",
        "--max-port=49420",
        "--log-file=stdout",
        "--simple-log",
        "-v",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--static-auth-secret={secret}"));
    args.push(format!("--userdb={}/turndb", dir.display()));
    args.push(format!("--pidfile={}/turnserver.pid", dir.display()));
    match tls {
        Some((cert, key)) => {
            args.push("--tls-listening-port=5349".into());
            args.push(format!("--cert={cert}"));
            args.push(format!("--pkey={key}"));
        }
        None => args.push("--no-tls".into()),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = ProcCmd::spawn("coturn", "ip", &args);
    let port = if tls.is_some() { "5349" } else { "3478" };
    p.wait_until("its TCP listener", Duration::from_secs(10), |l| {
        l.contains("TCP listener opened on") && l.trim_end().ends_with(&format!("10.77.3.2:{port}"))
    });
    p
}

/// One call from alice to bob with `ice_server` advertised; both must end
/// completed on the TURN relay.
fn call_through(ice_server: &str, tls: bool) {
    // One lab per process at a time: its namespace names are per process.
    static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    if !coturn_available() {
        return;
    }
    let Some(lab) = Lab::build() else { return };
    assert!(block_all_udp(&lab), "iptables in the router namespace");
    let dir = TempDir::new("turn-stream");
    let secret = format!("turn-secret-{:016x}", rand::random::<u64>());
    let secret_file = dir.0.join("turn.secret");
    std::fs::write(&secret_file, &secret).unwrap();
    let server = lab.start_server_with(
        &dir.0,
        &["alice", "bob"],
        &[
            "--ice-server",
            ice_server,
            "--turn-secret-file",
            secret_file.to_str().unwrap(),
        ],
    );
    let tls_files = tls.then(|| {
        // The deployment's CA (the one the signaling server's certificate
        // chains to) signs coturn's certificate too.
        let out = dir.0.join("turn-tls");
        run_ok(&[
            "ca",
            "issue-server",
            "--dir",
            dir.0.join("ca").to_str().unwrap(),
            "--name",
            "10.77.3.2",
            "--out",
            out.to_str().unwrap(),
        ]);
        (out.join("server.crt"), out.join("server.key"))
    });
    let tls_paths = tls_files
        .as_ref()
        .map(|(c, k)| (c.to_str().unwrap(), k.to_str().unwrap()));
    let coturn = start_coturn(&lab, &dir.0, &secret, tls_paths);
    let mut bob = lab.listen(
        &dir.0,
        "bob",
        "b",
        &["--auto-accept", "--input", "tone:440", "--output", "null"],
    );
    let mut alice = lab.call(
        &dir.0,
        "alice",
        "a",
        "bob",
        &["--input", "tone:440", "--output", "null", "--duration", "3"],
    );
    assert!(
        alice.wait_exit(Duration::from_secs(60)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(5)), "{}", bob.output());
    println!("{}\n{}", alice.output(), bob.output());
    for p in [&alice, &bob] {
        let out = p.output();
        // The call starts on the server relay while ICE checks run (the
        // first status line may say so) and moves to coturn's relay.
        let last = out.lines().rfind(|l| l.contains("path=")).unwrap_or("");
        assert!(last.contains("path=turn-relay"), "{out}");
        assert!(out.contains("path turn-relay"), "{out}");
        assert!(!out.contains("no direct path"), "{out}");
        assert!(out.contains("call ended: completed"), "{out}");
    }
    // UDP is dropped between every two hosts and the media did not stay
    // on the signaling server's relay: coturn, over the stream, carried it.
    drop((server, coturn));
}

#[test]
fn a_call_without_udp_goes_through_turn_over_tcp() {
    call_through("turn:10.77.3.2:3478?transport=tcp", false);
}

#[test]
fn a_call_without_udp_goes_through_turn_over_tls_with_a_certificate_from_our_ca() {
    call_through("turns:10.77.3.2:5349", true);
}
