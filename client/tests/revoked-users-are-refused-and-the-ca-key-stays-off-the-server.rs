//! The CA key stays off the server, and a lost device is refused at once,
//! between real processes: `ca issue-server` makes the server's
//! certificate once; the server starts from that directory alone (no CA
//! key in it) and carries a call; `ca revoke` refuses a user at login with
//! a clear error, and a SIGHUP disconnects a revoked user who is still
//! connected; a bad list on reload keeps the one in force; `ca init` and
//! `ca issue` do not overwrite without `--force`.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn hangup(server: &Proc) {
    let ok = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
}

fn listen(profile: &Path) -> Proc {
    Proc::spawn(
        "listen",
        &[
            "listen",
            "--profile",
            profile.to_str().unwrap(),
            "--auto-accept",
            "--input",
            "silence",
            "--output",
            "null",
        ],
    )
}

fn issue(ca: &Path, user: &str, addr: &str, out: &Path) -> (bool, String) {
    cli(&[
        "ca",
        "issue",
        user,
        "--dir",
        ca.to_str().unwrap(),
        "--server",
        addr,
        "--server-name",
        "127.0.0.1",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn init_and_issue_refuse_to_overwrite_without_force() {
    let dir = TempDir::new("ca-force");
    let ca = dir.0.join("ca");
    let ca_s = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca_s]);
    let key = std::fs::read(ca.join("ca.key")).unwrap();
    let (ok, out) = cli(&["ca", "init", "--dir", ca_s]);
    assert!(
        !ok && out.contains("already exists") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(ca.join("ca.key")).unwrap(),
        key,
        "CA key kept"
    );
    run_ok(&["ca", "init", "--dir", ca_s, "--force"]);
    assert_ne!(
        std::fs::read(ca.join("ca.key")).unwrap(),
        key,
        "--force replaces"
    );

    let alice = dir.0.join("alice");
    assert!(issue(&ca, "alice", "127.0.0.1:1", &alice).0);
    let cert = std::fs::read(alice.join("client.crt")).unwrap();
    let (ok, out) = issue(&ca, "alice", "127.0.0.1:1", &alice);
    assert!(!ok && out.contains("already holds a profile"), "{out}");
    assert_eq!(std::fs::read(alice.join("client.crt")).unwrap(), cert);

    let tls = dir.0.join("tls");
    let server = [
        "ca",
        "issue-server",
        "--dir",
        ca_s,
        "--out",
        tls.to_str().unwrap(),
    ];
    run_ok(&server);
    let (ok, out) = cli(&server);
    assert!(!ok && out.contains("already exists"), "{out}");
    run_ok(&[&server[..], &["--force"]].concat());
}

#[test]
fn revoked_users_are_refused_at_login_and_disconnected_on_reload() {
    let dir = TempDir::new("revoke");
    let ca = dir.0.join("ca");
    let ca_s = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca_s]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|u| {
        let p = dir.0.join(u);
        assert!(issue(&ca, u, &addr, &p).0);
        p
    });
    // The server host gets only what `ca issue-server` wrote.
    let host = dir.0.join("server-host");
    run_ok(&[
        "ca",
        "issue-server",
        "--dir",
        ca_s,
        "--name",
        "127.0.0.1",
        "--out",
        host.to_str().unwrap(),
    ]);
    let mut files: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["ca.crt", "server.crt", "server.key"]);
    // Carol lost her laptop before the server started.
    let (ok, out) = cli(&["ca", "revoke", "carol", "--dir", ca_s]);
    assert!(ok, "{out}");
    let list = ca.join("revoked.txt");
    let mut server = Proc::spawn(
        "server",
        &[
            "server",
            "--tls",
            host.to_str().unwrap(),
            "--revoked",
            list.to_str().unwrap(),
            "--listen",
            &addr,
            "--data",
            dir.0.join("data").to_str().unwrap(),
        ],
    );
    server.wait_for("listening on", Duration::from_secs(20));

    // Carol is refused at login, in words.
    let mut c = listen(&carol);
    assert!(c.wait_exit(Duration::from_secs(10)));
    assert_eq!(c.code, Some(2), "{}", c.output());
    assert!(c.output().contains("revoked"), "{}", c.output());

    // A whole call through the server that holds no CA key.
    let mut b = listen(&bob);
    b.wait_for("waiting for a call", Duration::from_secs(20));
    let mut a = Proc::spawn(
        "alice",
        &[
            "call",
            "bob",
            "--profile",
            alice.to_str().unwrap(),
            "--input",
            "silence",
            "--output",
            "null",
            "--duration",
            "1",
        ],
    );
    assert!(a.wait_exit(Duration::from_secs(30)));
    assert_eq!(a.code, Some(0), "{}", a.output());
    assert!(b.wait_exit(Duration::from_secs(10)));

    // Bob waits for calls; he is revoked and the server reloads: he is
    // disconnected at once, and told why.
    let mut b = listen(&bob);
    b.wait_for("waiting for a call", Duration::from_secs(20));
    let (ok, out) = cli(&["ca", "revoke", "bob", "--dir", ca_s]);
    assert!(ok, "{out}");
    let t0 = std::time::Instant::now();
    hangup(&server);
    server.wait_for("2 entries, 1 connections ended", Duration::from_secs(5));
    assert!(b.wait_exit(Duration::from_secs(5)), "{}", b.output());
    println!("bob disconnected {:?} after SIGHUP", t0.elapsed());
    assert!(b.output().contains("revoked"), "{}", b.output());
    let mut b = listen(&bob);
    assert!(b.wait_exit(Duration::from_secs(10)));
    assert!(b.output().contains("revoked"), "{}", b.output());

    // A broken list on reload: the server says so and keeps the one in force.
    std::fs::write(&list, "user bob\nnonsense here\n").unwrap();
    hangup(&server);
    server.wait_for("not reloaded", Duration::from_secs(5));
    let mut b = listen(&bob);
    assert!(b.wait_exit(Duration::from_secs(10)));
    assert!(b.output().contains("revoked"), "{}", b.output());
    let mut a = listen(&alice);
    a.wait_for("waiting for a call", Duration::from_secs(20));
    a.kill();

    // Revoking one certificate: alice's profile is refused, a new one works.
    let (ok, out) = cli(&[
        "ca",
        "revoke",
        "--cert",
        alice.join("client.crt").to_str().unwrap(),
        "--dir",
        ca_s,
        "--list",
        list.to_str().unwrap(),
    ]);
    assert!(
        !ok && out.contains("line 2"),
        "the broken list is named: {out}"
    );
    std::fs::write(&list, "user bob\nuser carol\n").unwrap();
    let (ok, out) = cli(&[
        "ca",
        "revoke",
        "--cert",
        alice.join("client.crt").to_str().unwrap(),
        "--dir",
        ca_s,
    ]);
    assert!(ok && out.contains("the certificate of alice"), "{out}");
    hangup(&server);
    server.wait_for("3 entries", Duration::from_secs(5));
    let mut a = listen(&alice);
    assert!(a.wait_exit(Duration::from_secs(10)));
    assert!(a.output().contains("revoked"), "{}", a.output());
    let alice2 = dir.0.join("alice2");
    assert!(issue(&ca, "alice", &addr, &alice2).0);
    let mut a = listen(&alice2);
    a.wait_for("waiting for a call", Duration::from_secs(20));
    a.kill();
    assert!(!server.output().contains("panicked"), "{}", server.output());
}
