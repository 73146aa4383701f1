//! End-to-end tests of Cryptic Call across crates, with real peers, and the
//! helpers every crate's tests share (dev-only).
//!
//! One file per scenario under `tests/`, named for the behaviour it checks.
//!
//! # Tests that need a tool or a privilege
//!
//! A test that cannot run here (no `openssl`, no network namespaces, no
//! PulseAudio...) calls [`skip`] with the reason and returns. Under
//! `CRYPTIC_REQUIRE_ENV=1` (CI sets it) [`skip`] fails the test instead, so a
//! missing install step can never turn into a green run that tested nothing.

use std::fmt::Display;

pub mod link;
pub mod netns;
pub mod pulse;

/// The environment variable that turns skips into failures.
pub const REQUIRE_ENV: &str = "CRYPTIC_REQUIRE_ENV";

/// Whether every tool and privilege a test needs must be present.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Says why a test cannot run here: prints `SKIP: reason`, or under
/// `CRYPTIC_REQUIRE_ENV=1` panics with it.
///
/// # Panics
///
/// Under `CRYPTIC_REQUIRE_ENV=1`, always: that is its purpose.
pub fn skip(reason: impl Display) {
    assert!(
        !required(),
        "{REQUIRE_ENV}=1 but this test cannot run here: {reason}"
    );
    eprintln!("SKIP: {reason}");
}

/// A fresh temporary directory named after `tag`, removed when dropped.
///
/// # Panics
///
/// When the system's temporary directory is not writable.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("cryptic-{tag}-"))
        .tempdir()
        .expect("a writable temporary directory")
}

/// How [`Proc::start_with`] runs a program.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spawn<'a> {
    /// Inside this network namespace (`ip netns exec`).
    pub namespace: Option<&'a str>,
    /// Leave standard error on the test's own (only stdout is read).
    pub stderr_to_test: bool,
    /// Written to standard input when the process is dropped, before it is
    /// given two seconds to exit and then killed.
    pub quit_line: Option<&'static str>,
    /// More environment variables for the program (for example
    /// `PULSE_SERVER`, to reach a private PulseAudio daemon).
    pub env: &'a [(&'a str, &'a str)],
}

/// A running program whose output lines arrive on a channel: the one
/// process spawner of every crate's tests. Killed when dropped.
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    /// The exit code, once it exited.
    pub code: Option<i32>,
    quit_line: Option<&'static str>,
}

impl Proc {
    /// Runs `program` with `args`, stdout and stderr read as lines, stdin
    /// piped (and kept open: some programs quit on end of input).
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn start(name: &str, program: &str, args: &[&str]) -> Self {
        Self::start_with(name, program, args, Spawn::default())
    }

    /// As [`Proc::start`], inside the network namespace `ns`.
    pub fn start_in(ns: &str, name: &str, program: &str, args: &[&str]) -> Self {
        let how = Spawn {
            namespace: Some(ns),
            ..Spawn::default()
        };
        Self::start_with(name, program, args, how)
    }

    /// As [`Proc::start`], the way `how` says.
    ///
    /// # Panics
    ///
    /// When the program cannot be started.
    pub fn start_with(name: &str, program: &str, args: &[&str], how: Spawn<'_>) -> Self {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};
        let mut cmd = match how.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .envs(how.env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if how.stderr_to_test {
                Stdio::inherit()
            } else {
                Stdio::piped()
            });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let (tx, lines) = std::sync::mpsc::channel();
        let mut outs: Vec<Box<dyn std::io::Read + Send>> =
            vec![Box::new(child.stdout.take().expect("piped"))];
        if let Some(err) = child.stderr.take() {
            outs.push(Box::new(err));
        }
        for out in outs {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
            code: None,
            quit_line: how.quit_line,
        }
    }

    /// The next line within `limit`, if any (also kept in [`Proc::seen`]).
    pub fn next_line(&mut self, limit: std::time::Duration) -> Option<String> {
        let line = self.lines.recv_timeout(limit).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits (bounded) for a line satisfying `pred`; panics with the output
    /// so far, naming `what`, when none comes.
    pub fn wait_until(
        &mut self,
        what: &str,
        within: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next_line(left) {
                Some(line) if pred(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "{} never printed {what}; output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (bounded) for a line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, within: std::time::Duration) -> String {
        self.wait_until(&format!("{needle:?}"), within, |l| l.contains(needle))
    }

    /// Waits (bounded) for the process to exit (panics when it does not),
    /// collecting its output and its exit code ([`Proc::code`]); returns
    /// true.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // The reader threads end when the pipes close.
                while let Ok(line) = self
                    .lines
                    .recv_timeout(std::time::Duration::from_millis(200))
                {
                    self.seen.push(line);
                }
                self.code = status.code();
                return true;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {within:?}; output:\n{}",
                self.name,
                self.seen.join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops the process and collects what it printed.
    pub fn wait_exit_or_kill(&mut self) {
        self.kill();
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(2)) {
            self.seen.push(line);
        }
    }

    /// Everything it printed so far, one line each.
    pub fn output(&self) -> String {
        self.seen.join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Types a line into its standard input.
    ///
    /// # Panics
    ///
    /// When the process closed its standard input.
    pub fn type_line(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("spawned with a piped stdin");
        writeln!(stdin, "{line}").expect("the process reads its input");
        stdin.flush().expect("the process reads its input");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(q) = self.quit_line {
            use std::io::Write as _;
            if let Some(stdin) = self.child.stdin.as_mut() {
                let _ = writeln!(stdin, "{q}");
                let _ = stdin.flush();
            }
            let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while std::time::Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        self.kill();
    }
}
