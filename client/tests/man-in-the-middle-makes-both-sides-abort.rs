//! A man in the middle on the media path: alice and bob on two hosts whose
//! router (network namespaces made by the test) redirects their UDP to an
//! attacker. The attacker forwards ICE's STUN untouched, so a path is
//! found, but terminates DTLS toward each side with its own certificate
//! (OpenSSL's s_server toward bob, s_client toward alice). Both sides must
//! abort the call as a security failure before any key is released or any
//! audio played. Runs as root (CI does); skips with a reason elsewhere.
//!
//! Twice: with the default settings the handshake starts on the server
//! relay, which this attacker does not hold, and stays on the path it
//! started on: the attack is then named (the attacker's records came
//! first) or harmless (the call secures with the honest SAS and the
//! attacker's records are dropped); with `wait_for_direct` the handshake
//! runs on the attacker's path and both sides must name it.

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
    // Default settings: the handshake starts on the relay.
    let Some(round) = attack(false) else { return };
    let secured = |p: &str| p.contains("call secured");
    if secured(&round.alice) || secured(&round.bob) {
        // Harmless: both secured with each other (one SAS), audio flowed.
        let sas = |p: &str| {
            p.lines()
                .find(|l| l.contains("call secured"))
                .map(|l| l.rsplit(": ").next().unwrap_or("").to_string())
        };
        assert!(
            secured(&round.alice) && secured(&round.bob),
            "one side secured alone:\nalice:\n{}\nbob:\n{}",
            round.alice,
            round.bob
        );
        assert_eq!(sas(&round.alice), sas(&round.bob), "SAS differ");
        assert!(
            round.bob_heard.iter().any(|&s| s != 0),
            "secured but bob heard nothing"
        );
        println!("default settings: the attacker was ignored; the call secured on the relay");
    } else {
        assert_named(&round);
        println!("default settings: the attacker came first and was named");
    }
    // DTLS on the direct path, where this attacker sits: both name it.
    let Some(round) = attack(true) else { return };
    assert_named(&round);
}

/// What the two users printed and what bob heard.
struct Round {
    alice: String,
    bob: String,
    bob_heard: Vec<i16>,
}

fn assert_named(round: &Round) {
    for p in [&round.alice, &round.bob] {
        assert!(p.contains("call ended: security-abort"), "{p}");
        assert!(!p.contains("call secured"), "{p}");
    }
    // Bob never played a frame: no keys, no audio.
    assert!(
        round.bob_heard.iter().all(|&s| s == 0),
        "bob heard something"
    );
}

/// One call between alice and bob with the attacker on their UDP path.
fn attack(wait_for_direct: bool) -> Option<Round> {
    let lab = Lab::build()?;
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
    if wait_for_direct {
        for u in ["alice", "bob"] {
            std::fs::write(
                dir.0.join(u).join("config.toml"),
                "wait_for_direct = true\n",
            )
            .unwrap();
        }
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
    println!(
        "wait_for_direct={wait_for_direct}\nalice:\n{}\nbob:\n{}",
        alice.output(),
        bob.output()
    );
    println!(
        "attacker toward bob:\n{}\nattacker toward alice:\n{}",
        fake_alice.output(),
        fake_bob.output()
    );
    fake_alice.kill();
    fake_bob.kill();
    mitm.kill();
    Some(Round {
        alice: alice.output(),
        bob: bob.output(),
        bob_heard: cryptic_audio::read_wav_48k_mono(&heard).unwrap_or_default(),
    })
}
