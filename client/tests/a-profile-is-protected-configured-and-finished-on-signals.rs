//! The user's state: a directory that is not a profile is refused by every
//! command (and nothing is created in it); `$CRYPTIC_CALL_PROFILE` works
//! for every command; `ca issue` names the server by the host of
//! `--server` (an IP address here); `config.toml` gives default devices
//! and aliases; `call` interrupted by SIGTERM or SIGINT still writes its
//! history row and a whole WAV; `history` is a table in local time with
//! the reason, and JSON for scripts.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CRYPTIC_CALL_PROFILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_directory_that_is_not_a_profile_is_refused_by_every_command() {
    let dir = TempDir::new("notaprofile");
    let d = dir.0.to_str().unwrap();
    for args in [
        vec!["history", "--profile", d],
        vec!["keys", "--profile", d],
        vec!["verify", "bob", "--profile", d, "--yes"],
        vec!["call", "bob", "--profile", d],
        vec!["listen", "--profile", d, "--auto-accept"],
        vec!["shell", "--profile", d],
    ] {
        let (code, out) = run(&args, &[]);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(out.contains("is not a profile"), "{args:?}: {out}");
        assert_eq!(out.lines().count(), 1, "one line: {out}");
    }
    // The same through the environment.
    let (code, out) = run(&["history"], &[("CRYPTIC_CALL_PROFILE", d)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(d), "{out}");
    let left: Vec<_> = std::fs::read_dir(d).unwrap().collect();
    assert!(left.is_empty(), "nothing created in {d}: {left:?}");
}

#[test]
fn the_environment_config_file_and_server_name_make_a_call_with_no_flags() {
    let world = World::start("config", &["alice", "bob"]);
    // `ca issue --server 127.0.0.1:PORT` with no --server-name: the IP.
    let profile = std::fs::read_to_string(world.profile("alice").join("profile.json")).unwrap();
    assert!(
        profile.contains("\"server_name\": \"127.0.0.1\""),
        "{profile}"
    );
    // alice's config: silent devices, bob under an alias.
    std::fs::write(
        world.profile("alice").join("config.toml"),
        "input = \"silence\"\noutput = \"null\"\n[contacts]\nbuddy = \"bob\"\n",
    )
    .unwrap();
    std::fs::write(world.profile("bob").join("config.toml"), "relya = true\n").unwrap();
    let (code, out) = run(
        &[
            "history",
            "--profile",
            world.profile("bob").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "history does not read the config: {out}");
    let mut bad = world.listen_env("bob", &["--auto-accept"], &[]);
    assert!(bad.wait_exit(Duration::from_secs(10)));
    assert!(bad.output().contains("line 1"), "{}", bad.output());
    std::fs::write(
        world.profile("bob").join("config.toml"),
        "input = \"silence\"\noutput = \"null\"\n",
    )
    .unwrap();
    let mut bob = world.listen_env("bob", &["--auto-accept"], &[]);
    bob.wait_for("waiting for a call", Duration::from_secs(20));
    let alice_dir = world.profile("alice");
    let mut alice = Proc::start_with(
        "alice",
        BIN,
        &["call", "buddy", "--duration", "1"],
        cryptic_tests::Spawn {
            env: &[("CRYPTIC_CALL_PROFILE", alice_dir.to_str().unwrap())],
            ..Default::default()
        },
    );
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    assert!(bob.wait_exit(Duration::from_secs(10)));
    // history through the environment: a header, local time, the reason.
    let (code, out) = run(
        &["history"],
        &[("CRYPTIC_CALL_PROFILE", alice_dir.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("when"), "{out}");
    let row = lines.next().unwrap();
    assert!(
        row.contains("completed") && row.contains("you hung up"),
        "{out}"
    );
    let date = row.split_whitespace().next().unwrap();
    assert!(
        date.len() == 10 && date.matches('-').count() == 2,
        "a local date: {out}"
    );
    let (_, json) = run(
        &[
            "history",
            "--json",
            "--profile",
            alice_dir.to_str().unwrap(),
        ],
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["peer"], "bob");
    assert_eq!(v[0]["outcome"], "completed");
    assert_eq!(v[0]["verified"], false);
    assert!(v[0]["duration_s"].as_f64().unwrap() >= 1.0);
    // The log file in the profile says how the call went, and holds no key.
    let logs = std::fs::read_dir(alice_dir.join("logs")).unwrap();
    let text: String = logs
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(
        text.contains("call ended") && text.contains("peer=bob"),
        "{text}"
    );
    let key = std::fs::read_to_string(alice_dir.join("client.key")).unwrap();
    for line in key.lines().filter(|l| l.len() > 20) {
        assert!(!text.contains(line), "the private key is in the log");
    }
}

#[test]
fn an_interrupted_call_leaves_its_history_and_a_whole_recording() {
    let world = World::start("sigterm", &["alice", "bob"]);
    for (signal, n) in [("-TERM", 1), ("-INT", 2)] {
        let wav = world.path(&format!("heard-{n}.wav"));
        let mut bob = world.listen(
            "bob",
            &["--auto-accept", "--input", "tone", "--output", "null"],
        );
        let mut alice = world.call(
            "alice",
            "bob",
            &["--input", "silence", "--output", wav.to_str().unwrap()],
        );
        alice.wait_for("call secured", Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(2));
        let sent = Command::new("kill")
            .args([signal, &alice.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        assert!(
            alice.wait_exit(Duration::from_secs(10)),
            "{}",
            alice.output()
        );
        assert_eq!(alice.code, Some(0), "{}", alice.output());
        assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
        assert!(bob.output().contains("alice hung up"), "{}", bob.output());
        let history = world.last_history("alice");
        assert!(history.contains("completed"), "{history}");
        let samples = cryptic_audio::read_wav_48k_mono(&wav).unwrap();
        assert!(samples.len() > 48_000, "{} samples", samples.len());
    }
}

#[test]
fn ca_init_and_ca_issue_refuse_to_overwrite_without_force() {
    let dir = TempDir::new("overwrite");
    let ca = dir.0.join("ca");
    let ca = ca.to_str().unwrap();
    run_ok(&["ca", "init", "--dir", ca]);
    let (code, out) = run(&["ca", "init", "--dir", ca], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--force"), "{out}");
    let p = dir.0.join("p");
    let p = p.to_str().unwrap();
    let issue = [
        "ca", "issue", "alice", "--dir", ca, "--server", "h:1", "--out", p,
    ];
    run_ok(&issue);
    let (code, out) = run(&issue, &[]);
    assert_eq!(code, 2, "{out}");
    run_ok(&[&issue[..], &["--force"]].concat());
}

#[test]
fn a_shell_stopped_mid_call_hangs_up_records_and_leaves() {
    let world = World::start("shellterm", &["alice", "bob"]);
    let mut bob = world.listen(
        "bob",
        &["--auto-accept", "--input", "tone", "--output", "null"],
    );
    let wav = world.path("shell-heard.wav");
    let profile = world.profile("alice");
    let mut alice = Proc::spawn_cmd(
        "alice",
        BIN,
        &[
            "shell",
            "--profile",
            profile.to_str().unwrap(),
            "--input",
            "silence",
            "--output",
            wav.to_str().unwrap(),
        ],
    );
    alice.wait_for("signed in as alice", Duration::from_secs(20));
    alice.type_line("call bob");
    alice.wait_for("call secured", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let sent = Command::new("kill")
        .args(["-TERM", &alice.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert!(
        alice.wait_exit(Duration::from_secs(10)),
        "{}",
        alice.output()
    );
    assert_eq!(alice.code, Some(0), "{}", alice.output());
    assert!(
        alice
            .output()
            .contains("call ended: completed (you hung up)"),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    assert!(world.last_history("alice").contains("completed"));
    let samples = cryptic_audio::read_wav_48k_mono(&wav).unwrap();
    assert!(samples.len() > 48_000, "{} samples", samples.len());
}
