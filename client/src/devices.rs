//! Sound devices as the user sees them: a table with the defaults marked,
//! a check of the chosen input and output before anyone's phone rings, and
//! ALSA's own diagnostics kept off the terminal (they go to the log).

use std::io::{Read, Seek};

use cryptic_audio::{DeviceInfo, SinkSpec, SourceSpec};

/// Runs `f` with standard error sent to a scratch file; returns what it
/// wrote there (ALSA prints its complaints straight to file descriptor 2).
pub fn quietly<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::os::fd::AsFd;
    let scratch = std::env::temp_dir().join(format!(
        "cryptic-call-stderr-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&scratch);
    let _ = std::fs::remove_file(&scratch);
    let saved = rustix::io::dup(std::io::stderr().as_fd());
    let (Ok(mut file), Ok(saved)) = (file, saved) else {
        return (f(), String::new());
    };
    if rustix::stdio::dup2_stderr(&file).is_err() {
        return (f(), String::new());
    }
    let out = f();
    let _ = rustix::stdio::dup2_stderr(&saved);
    let mut noise = String::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_string(&mut noise);
    }
    (out, noise)
}

/// Opens the input and the output once and closes them: a missing file
/// or device is one line naming it, before the invite leaves.
pub fn check(input: &SourceSpec, output: &SinkSpec) -> Result<(), String> {
    let (result, noise) = quietly(|| crate::voice::Voice::check(input, output));
    for line in noise.lines().filter(|l| !l.trim().is_empty()) {
        tracing::debug!("sound system: {line}");
    }
    result.map_err(|e| plain_device_error(input, output, &e.to_string()))
}

/// One line for a device that cannot be used.
fn plain_device_error(input: &SourceSpec, output: &SinkSpec, e: &str) -> String {
    let e = e.strip_prefix("audio: ").unwrap_or(e);
    let first = e.lines().next().unwrap_or(e);
    let device_input = matches!(input, SourceSpec::Default | SourceSpec::Device(_));
    let device_output = matches!(output, SinkSpec::Default | SinkSpec::Device(_));
    if first.starts_with("input") && device_input {
        format!(
            "no usable microphone ({input}): {}; choose one with --input device:NAME \
             (`cryptic-call devices` lists them) or --input silence",
            detail(first)
        )
    } else if first.starts_with("output") && device_output {
        format!(
            "no usable speaker ({output}): {}; choose one with --output device:NAME \
             (`cryptic-call devices` lists them) or --output null",
            detail(first)
        )
    } else {
        first.to_string()
    }
}

fn detail(line: &str) -> &str {
    let rest = line.split_once(": ").map_or(line, |(_, rest)| rest);
    let rest = rest.strip_prefix("sound device: ").unwrap_or(rest);
    rest.trim_end_matches('.')
}

/// The devices, with ALSA's noise kept off the terminal.
pub fn list() -> Result<Vec<DeviceInfo>, String> {
    let (result, noise) = quietly(cryptic_audio::list_devices);
    for line in noise.lines().filter(|l| !l.trim().is_empty()) {
        tracing::debug!("sound system: {line}");
    }
    result.map_err(|e| format!("cannot list the sound devices: {e}"))
}

/// The devices as a table: id (what `device:ID`, `input ID` and
/// `output ID` take), name, what it does, and the defaults marked `*`.
pub fn table(devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return "no sound devices found (use --input tone|silence|wav:FILE and \
                --output null|wav:FILE)"
            .into();
    }
    let mut out = format!("  {:<24} {:<32} {:<4} {:<4}\n", "id", "name", "in", "out");
    for d in devices {
        let mark = |has: bool, default: bool| match (has, default) {
            (true, true) => "yes*",
            (true, false) => "yes",
            _ => "-",
        };
        let star = if d.default_input || d.default_output {
            '*'
        } else {
            ' '
        };
        out.push_str(&format!(
            "{star} {:<24} {:<32} {:<4} {:<4}\n",
            cut(&d.id, 24),
            cut(&d.name, 32),
            mark(d.input, d.default_input),
            mark(d.output, d.default_output),
        ));
    }
    out.push_str("* the default (yes* where it is the default for that direction)");
    out
}

fn cut(s: &str, n: usize) -> String {
    let s = s.lines().next().unwrap_or_default();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n - 1).collect();
        c.push('~');
        c
    }
}

/// A device the user named: a spec (`default`, `device:ID`, `wav:PATH`,
/// `tone`, ...) or a bare device id or name from [`list`].
pub fn parse_input(name: &str, devices: &[DeviceInfo]) -> Result<SourceSpec, String> {
    if let Some(id) = find(name, devices, |d| d.input) {
        return Ok(SourceSpec::Device(id));
    }
    name.parse::<SourceSpec>().map_err(|_| {
        format!(
            "no microphone called {name:?}: type `devices` to see them \
             (or give default, tone, silence, wav:FILE)"
        )
    })
}

/// As [`parse_input`], for the speaker.
pub fn parse_output(name: &str, devices: &[DeviceInfo]) -> Result<SinkSpec, String> {
    if let Some(id) = find(name, devices, |d| d.output) {
        return Ok(SinkSpec::Device(id));
    }
    name.parse::<SinkSpec>().map_err(|_| {
        format!(
            "no speaker called {name:?}: type `devices` to see them \
             (or give default, null, wav:FILE)"
        )
    })
}

fn find(name: &str, devices: &[DeviceInfo], can: impl Fn(&DeviceInfo) -> bool) -> Option<String> {
    devices
        .iter()
        .find(|d| can(d) && (d.id == name || d.name == name))
        .map(|d| d.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_alsa_prints_is_caught_and_our_own_lines_are_not() {
        let (v, noise) = quietly(|| {
            // Straight to the file descriptor, as C code writes (the test
            // harness captures only eprintln!).
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"ALSA lib pcm.c:2722:(snd_pcm_open_noupdate) Unknown PCM default\n",
            );
            7
        });
        assert_eq!(v, 7);
        assert!(noise.contains("Unknown PCM"), "{noise:?}");
    }

    #[test]
    fn a_device_error_is_one_line_naming_the_device() {
        let e = plain_device_error(
            &SourceSpec::Default,
            &SinkSpec::Null,
            "audio: input default: no sound device matches \"default\"",
        );
        assert!(e.starts_with("no usable microphone (default)"), "{e}");
        assert!(!e.contains('\n'));
        let e = plain_device_error(
            &SourceSpec::Silence,
            &SinkSpec::Device("hw:9".into()),
            "audio: output device:hw:9: sound device: cannot open",
        );
        assert!(e.starts_with("no usable speaker (device:hw:9)"), "{e}");
    }
}
