//! A man in the middle on the media path: alice and bob on two hosts whose
//! router (network namespaces made by the test) redirects their UDP to an
//! attacker. The attacker forwards ICE's STUN untouched, so a path is
//! found, but terminates DTLS toward each side with its own certificate
//! (OpenSSL's s_server toward bob, s_client toward alice). Both sides must
//! abort the call as a security failure before any key is released or any
//! audio played. Runs as root (CI does); skips with a reason elsewhere.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn a_relay_terminating_dtls_with_its_own_certificate_is_caught_by_both_users() {
    if Command::new("python3").arg("--version").output().is_err()
        || Command::new("openssl").arg("version").output().is_err()
    {
        cryptic_tests::skip("python3 and openssl are needed for the attacker");
        return;
    }
    let Some(lab) = Lab::build() else { return };
    let router = lab.ns("r");
    assert!(
        lab.redirect_udp_between_peers(),
        "iptables in the router namespace"
    );
    let dir = TempDir::new("mitm");
    let (cert, key) = (dir.0.join("mitm.crt"), dir.0.join("mitm.key"));
    assert!(sh(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=mitm",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    let spawn = |name: &str, args: &[&str]| {
        let mut all = vec!["netns", "exec", router.as_str()];
        all.extend_from_slice(args);
        ProcCmd::spawn(name, "ip", &all)
    };
    let forwarder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mitm_forwarder.py");
    let mut mitm = spawn(
        "mitm",
        &[
            "python3",
            forwarder,
            "10.77.1.1:5001",
            "10.77.2.1:5002",
            "127.0.0.1:5003",
            "127.0.0.1:5004",
            "60",
        ],
    );
    mitm.wait_for("mitm ready", Duration::from_secs(10));
    let dtls_args = |role: &str| -> Vec<String> {
        let mut v: Vec<String> = vec!["openssl".into(), role.into(), "-dtls1_2".into()];
        if role == "s_server" {
            v.extend([
                "-accept".into(),
                "127.0.0.1:5003".into(),
                "-naccept".into(),
                "1".into(),
            ]);
        } else {
            v.extend(["-connect".into(), "127.0.0.1:5004".into()]);
        }
        v.extend([
            "-cert".into(),
            cert.display().to_string(),
            "-key".into(),
            key.display().to_string(),
        ]);
        v.extend(["-use_srtp".into(), "SRTP_AEAD_AES_128_GCM".into()]);
        v
    };
    let server_args = dtls_args("s_server");
    let mut fake_alice = spawn(
        "openssl s_server",
        &server_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    // The signaling server and the two users.
    let _server = lab.start_server(&dir.0, &["alice", "bob"]);
    // DTLS on the direct path, where this attacker sits: calls start on
    // the server relay by default, and records of the honest handshake
    // there and the attacker's here then mix, failing the handshake
    // ("failed", not "security-abort"; no key or audio either way).
    for u in ["alice", "bob"] {
        std::fs::write(
            dir.0.join(u).join("config.toml"),
            "wait_for_direct = true\n",
        )
        .unwrap();
    }
    let heard = dir.0.join("bob-heard.wav");
    let bob_out = format!("wav:{}", heard.display());
    let mut bob = lab.listen(
        &dir.0,
        "bob",
        "b",
        &["--auto-accept", "--input", "tone:440", "--output", &bob_out],
    );
    let mut alice = lab.call(
        &dir.0,
        "alice",
        "a",
        "bob",
        &["--input", "tone:440", "--output", "null", "--duration", "5"],
    );
    // Handshake with alice too once the call is under way (the forwarder
    // holds s_client's datagrams until it has seen alice).
    bob.wait_for("incoming call from alice", Duration::from_secs(20));
    let client_args = dtls_args("s_client");
    let mut fake_bob = spawn(
        "openssl s_client",
        &client_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    assert!(
        alice.wait_exit(Duration::from_secs(40)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(40)), "{}", bob.output());
    fake_alice.wait_exit_or_kill();
    fake_bob.wait_exit_or_kill();
    println!("alice:\n{}\nbob:\n{}", alice.output(), bob.output());
    println!(
        "attacker toward bob:\n{}\nattacker toward alice:\n{}",
        fake_alice.output(),
        fake_bob.output()
    );
    for p in [&alice, &bob] {
        assert!(
            p.output().contains("call ended: security-abort"),
            "{}",
            p.output()
        );
        assert!(!p.output().contains("call secured"), "{}", p.output());
    }
    // Bob never played a frame: no keys, no audio.
    if let Ok(samples) = cryptic_audio::read_wav_48k_mono(&heard) {
        assert!(samples.iter().all(|&s| s == 0), "bob heard something");
    }
    fake_alice.kill();
    fake_bob.kill();
    mitm.kill();
}
