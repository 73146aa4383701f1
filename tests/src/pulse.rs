//! A private PulseAudio daemon with no hardware, for tests that go through
//! real sound devices (cpal, ALSA's PulseAudio plugin): see
//! `../shared/TESTING.md`.
#![allow(clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private PulseAudio daemon with no hardware: a null sink `spk` (the
/// speaker, default sink), a null sink `micfeed` whose monitor is remapped
/// as the source `mic` (the microphone, default source). Stopped by its
/// process id when dropped.
pub struct Pulse {
    child: Option<Child>,
    dir: PathBuf,
    /// The daemon's address for `PULSE_SERVER` (`unix:/...`).
    pub server: String,
}

impl Pulse {
    /// Starts the daemon and waits (polling `pactl info`, at most 10 s)
    /// until it answers. `Err` carries the reason to print when skipping.
    pub fn start(name: &str) -> Result<Self, String> {
        Self::start_with(name, "")
    }

    /// As [`Pulse::start`], with more `default.pa` lines after the devices
    /// (for example a `module-loopback` from `spk.monitor` to `micfeed`:
    /// an echo path, what is played coming back into the microphone).
    pub fn start_with(name: &str, extra: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("cryptic-audio-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "run"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("temp dir: {e}"))?;
        }
        let socket = dir.join("native");
        let pa = format!(
            "load-module module-native-protocol-unix auth-anonymous=1 socket={}\n\
             load-module module-null-sink sink_name=spk format=s16le rate=48000 channels=1\n\
             load-module module-null-sink sink_name=micfeed format=s16le rate=48000 channels=1\n\
             load-module module-remap-source master=micfeed.monitor source_name=mic\n\
             set-default-sink spk\n\
             set-default-source mic\n{extra}",
            socket.display()
        );
        std::fs::write(dir.join("default.pa"), pa).map_err(|e| format!("default.pa: {e}"))?;
        let child = Command::new("pulseaudio")
            .args(["-n", "-F"])
            .arg(dir.join("default.pa"))
            .args([
                "--daemonize=no",
                "--system=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--realtime=no",
                "--high-priority=no",
                "--disable-shm=yes",
            ])
            .arg(format!(
                "--log-target=file:{}",
                dir.join("pa.log").display()
            ))
            .env("HOME", dir.join("home"))
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run pulseaudio ({e}); install pulseaudio"))?;
        let mut pulse = Self {
            child: Some(child),
            server: format!("unix:{}", socket.display()),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if pulse.pactl(&["info"]).is_some() {
                return Ok(pulse);
            }
            if let Some(Ok(Some(status))) = pulse.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(pulse.dir.join("pa.log")).unwrap_or_default();
                return Err(format!("pulseaudio exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                return Err("pulseaudio did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command for a PulseAudio client talking to this daemon.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PULSE_SERVER", &self.server)
            .env("HOME", self.dir.join("home"))
            .env("XDG_RUNTIME_DIR", self.dir.join("run"));
        c
    }

    /// Runs pactl; its standard output when it succeeded.
    pub fn pactl(&self, args: &[&str]) -> Option<String> {
        let out = self
            .command("pactl")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The current latency of sink `name` in microseconds (`pactl list
    /// sinks`).
    pub fn sink_latency_usec(&self, name: &str) -> Option<u64> {
        let list = self.pactl(&["list", "sinks"])?;
        let mut in_sink = false;
        for line in list.lines() {
            let line = line.trim();
            if let Some(n) = line.strip_prefix("Name: ") {
                in_sink = n == name;
            } else if in_sink {
                if let Some(rest) = line.strip_prefix("Latency: ") {
                    return rest.split_whitespace().next()?.parse().ok();
                }
            }
        }
        None
    }

    /// Points this process's ALSA `default` device at the daemon: must run
    /// before cpal opens ALSA.
    pub fn route_alsa_here(&self) {
        std::env::set_var("PULSE_SERVER", &self.server);
    }

    /// A scratch directory removed with the daemon.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the daemon now (by its process id).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts PulseAudio or prints why the test is skipped.
pub fn pulse_or_skip(name: &str) -> Option<Pulse> {
    pulse_or_skip_with(name, "")
}

/// As [`pulse_or_skip`], with more `default.pa` lines (see
/// [`Pulse::start_with`]).
pub fn pulse_or_skip_with(name: &str, extra: &str) -> Option<Pulse> {
    match Pulse::start_with(name, extra) {
        Ok(p) => Some(p),
        Err(reason) => {
            crate::skip(format!("PulseAudio cannot start here: {reason}"));
            None
        }
    }
}
