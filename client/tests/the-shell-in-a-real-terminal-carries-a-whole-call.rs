//! The interactive shell in a real terminal (tmux): alice and bob each sit
//! at a prompt; alice asks for help, mistypes a command, calls bob; bob is
//! told who calls and how to answer, and accepts; both see the same SAS
//! and one status line rewritten in place with the level meters; what
//! alice is typing is not split by it; Ctrl-C hangs up, `history` reads
//! as a table, and Ctrl-C twice quits. The screens are printed.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Option<Tmux> {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            cryptic_tests::skip(
                "tmux is needed to drive the shell in a terminal (scripts/setup installs it)",
            );
            return None;
        }
        Some(Tmux {
            socket: format!("cryptic-test-{}", std::process::id()),
        })
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// A window of 120 x 40 running `command`; when it ends, the pane
    /// says `EXITED <code>`.
    fn window(&self, name: &str, command: &str) {
        let shell = format!("{command}; echo EXITED $?; sleep 600");
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            &shell,
        ]);
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn line(&self, name: &str, text: &str) {
        self.tmux(&["send-keys", "-t", name, "-l", text]);
        self.keys(name, &["Enter"]);
    }

    fn screen(&self, name: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-t", name])
    }

    /// Waits until the screen holds `needle`; panics with the screen.
    fn wait(&self, name: &str, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let s = self.screen(name);
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "{name}'s screen never showed {needle:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

fn show(title: &str, screen: &str) {
    println!("----- {title} -----");
    for line in screen.trim_end().lines() {
        println!("|{line}");
    }
    println!("-----");
}

/// The line of the screen that starts like the status line of a call
/// with `peer`.
fn status_lines<'a>(screen: &'a str, peer: &str) -> Vec<&'a str> {
    screen
        .lines()
        .filter(|l| l.starts_with(&format!("{peer} ")) && l.contains(" mic "))
        .collect()
}

#[test]
fn two_users_call_through_the_shell_in_a_terminal() {
    let Some(tmux) = Tmux::start() else { return };
    let world = World::start("tmux", &["alice", "bob"]);
    let shell = |user: &str, input: &str| {
        format!(
            "{BIN} shell --profile {} --input {input} --output null",
            world.profile(user).display()
        )
    };
    tmux.window("alice", &shell("alice", "tone"));
    tmux.window("bob", &shell("bob", "silence"));
    let long = Duration::from_secs(20);
    tmux.wait("alice", "alice>", long);
    tmux.wait("bob", "bob>", long);

    // Help for one command, and a mistake named as such.
    tmux.line("alice", "help call");
    tmux.wait("alice", "call USER: call USER", long);
    tmux.line("alice", "frobnicate");
    tmux.wait("alice", "no command \"frobnicate\": type help", long);

    tmux.line("alice", "call alice");
    tmux.wait("alice", "you cannot call yourself", long);
    tmux.line("alice", "call zed");
    tmux.wait("alice", "no such user, or zed never signed in", long);
    tmux.line("alice", "accept");
    tmux.wait("alice", "accept: no call is ringing", long);
    tmux.line("alice", "devices");
    tmux.wait("alice", "the default", long);
    tmux.line("alice", "call bob");
    let ringing = tmux.wait("bob", "type accept to answer", long);
    // alice's status line says how her call is getting on.
    let calling = tmux.wait("alice", "calling bob... ringing", long);
    assert_eq!(calling.matches("calling bob").count(), 1, "{calling}");
    show("alice while bob's phone rings", &calling);
    // The hint follows the incoming-call line, not the other way round.
    let incoming = ringing.find("incoming call from alice").unwrap();
    assert!(incoming < ringing.find("type accept").unwrap(), "{ringing}");
    tmux.line("bob", "accept");
    let a = tmux.wait("alice", "short authentication string", long);
    let b = tmux.wait("bob", "short authentication string", long);
    let sas = |s: &str| {
        s.lines()
            .find(|l| l.contains("short authentication string"))
            .and_then(|l| l.rsplit(": ").next())
            .map(str::to_string)
    };
    assert_eq!(sas(&a), sas(&b), "alice:\n{a}\nbob:\n{b}");

    // A few seconds of call: one status line, rewritten in place, under
    // 80 columns, with alice's tone on her meter and on bob's speaker.
    tmux.wait("alice", "bob 0:03", long);
    let screen = tmux.wait("bob", "alice 0:03", long);
    let during = tmux.screen("alice");
    show("alice during the call", &during);
    show("bob during the call", &screen);
    let lines = status_lines(&during, "bob");
    assert_eq!(lines.len(), 1, "one status line:\n{during}");
    assert!(lines[0].chars().count() < 80, "{}", lines[0]);
    assert!(
        lines[0].contains("mic #"),
        "alice's tone on her meter: {}",
        lines[0]
    );
    let bob_status = status_lines(&screen, "alice");
    assert_eq!(bob_status.len(), 1, "{screen}");
    assert!(bob_status[0].contains("spk #"), "{}", bob_status[0]);

    // What alice types stays whole under the status updates.
    tmux.keys("alice", &["-l", "stat"]);
    std::thread::sleep(Duration::from_millis(2500));
    let typing = tmux.screen("alice");
    let last = typing.trim_end().lines().last().unwrap_or_default();
    assert_eq!(last, "alice> stat", "{typing}");
    tmux.keys("alice", &["-l", "s"]);
    tmux.keys("alice", &["Enter"]);
    tmux.wait("alice", "path=direct", long);
    tmux.line("alice", "mute");
    tmux.wait("alice", "mic muted", long);

    // Ctrl-C hangs up; both sides say how it ended, in words.
    tmux.keys("alice", &["C-c"]);
    tmux.wait("alice", "call ended: completed (you hung up)", long);
    tmux.wait("bob", "call ended: completed (alice hung up)", long);
    tmux.line("alice", "history");
    let after = tmux.wait("alice", "outcome", long);
    assert!(after.contains("completed"), "{after}");
    show("alice after the call", &after);
    assert!(
        status_lines(&after, "bob").is_empty(),
        "the status line is gone after the call:\n{after}"
    );

    // Ctrl-C twice quits; bob quits.
    tmux.keys("alice", &["C-c"]);
    tmux.wait("alice", "(Ctrl-C again to quit)", long);
    tmux.keys("alice", &["C-c"]);
    tmux.wait("alice", "EXITED 0", long);
    tmux.line("bob", "quit");
    tmux.wait("bob", "EXITED 0", long);
}
