//! Figures, not a check (ignored; run by hand as root): wide-band PESQ of
//! the same speech through a whole call of ours and through GStreamer's
//! Opus pipeline (`opusenc` at the bitrate our calls start at, 32 kbit/s,
//! with its default constrained VBR and with hard CBR as ours, `rtpjitterbuffer`,
//! `opusdec` with FEC and PLC), on the same namespace path: clean, 5 %
//! random loss with 40 ± 10 ms one-way delay, and Gilbert-Elliott burst
//! loss with the same delay. Every datagram goes through the impairment
//! relay in the router namespace, seeded alike for both.
//!
//! Needs gst-launch-1.0 with the base and good plugins
//! (`gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good`),
//! sox, espeak-ng and a Python with numpy and pesq (`PESQ_PYTHON`, default
//! the venv `audio/quality/pesq.sh` makes under target/).
//!
//! `cargo test -p cryptic-call --test call-quality-beside-gstreamer -- --ignored --nocapture`
//! (QUALITY_ONLY=clean picks paths by name, QUALITY_KEEP=DIR keeps the
//! recordings, QUALITY_DEBUG=1 prints the receiving client's output,
//! QUALITY_FRAME_MS=10 sends 10 ms frames as a microphone does: both of our
//! clients with `--low-latency`, GStreamer with `frame-size=10`, and both
//! at the 48 kbit/s our calls start at with 10 ms frames)
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// A path between alice and bob: its name and the relay's loss, one-way
/// delay and jitter (ms).
struct Impairment {
    name: &'static str,
    loss: &'static str,
    delay: &'static str,
    jitter: &'static str,
    /// The loss GStreamer's encoder is told to plan FEC for (ours learns it
    /// from the receiver's reports).
    plan_percent: &'static str,
}

const PATHS: [Impairment; 3] = [
    Impairment {
        name: "clean",
        loss: "0",
        delay: "0",
        jitter: "0",
        plan_percent: "0",
    },
    Impairment {
        name: "5% random loss, 40+-10 ms",
        loss: "0.05",
        delay: "40",
        jitter: "10",
        plan_percent: "5",
    },
    Impairment {
        name: "Gilbert-Elliott bursts (about 5%), 40+-10 ms",
        loss: "ge:0.02:0.4",
        delay: "40",
        jitter: "10",
        plan_percent: "5",
    },
];

/// The frame length both send, ms (QUALITY_FRAME_MS: 20, as a file
/// sends, or 10, as a microphone does).
fn frame_ms() -> u32 {
    match std::env::var("QUALITY_FRAME_MS").as_deref() {
        Ok("10") => 10,
        _ => 20,
    }
}

/// The bitrate our calls start at with that frame (`CallOptions::bitrate`,
/// 1.5 times it for 10 ms frames), given to GStreamer's encoder too.
fn bitrate() -> u32 {
    if frame_ms() == 10 {
        48_000
    } else {
        32_000
    }
}

/// Our clients' flags for the frame length.
fn frame_flags() -> &'static [&'static str] {
    if frame_ms() == 10 {
        &["--low-latency"]
    } else {
        &[]
    }
}

const SCORE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pesq_aligned.py");

fn relay(lab: &Lab, path: &Impairment, seed: &str) -> Proc {
    lab.impairment_relay(path.loss, path.delay, path.jitter, seed, "45")
}

/// Our call: alice says the speech, bob records what he hears.
fn ours(lab: &Lab, dir: &Path, speech: &Path, path: &Impairment, seed: &str) -> PathBuf {
    let mut relay = relay(lab, path, seed);
    let heard = dir.join("ours-heard.wav");
    let _ = std::fs::remove_file(&heard);
    let out = format!("wav:{}", heard.display());
    let mut args = vec!["--auto-accept", "--input", "silence", "--output", &out];
    args.extend_from_slice(frame_flags());
    let mut bob = lab.listen(dir, "bob", "b", &args);
    let input = format!("wav:{}", speech.display());
    let mut args = vec!["--input", &input, "--output", "null", "--duration", "12"];
    args.extend_from_slice(frame_flags());
    let mut alice = lab.call(dir, "alice", "a", "bob", &args);
    assert!(
        alice.wait_exit(Duration::from_secs(60)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    relay.wait_exit_or_kill();
    if std::env::var_os("QUALITY_DEBUG").is_some() {
        println!("{}", bob.output());
    }
    heard
}

/// GStreamer's pipeline on the same path, alice's namespace to bob's.
fn gstreamer(
    lab: &Lab,
    dir: &Path,
    speech: &Path,
    path: &Impairment,
    seed: &str,
    bitrate_type: &str,
) -> PathBuf {
    let mut relay = relay(lab, path, seed);
    let heard = dir.join("gst-heard.wav");
    let _ = std::fs::remove_file(&heard);
    // The relay learns bob's address from bob's first datagram (it only
    // ever answers): one from the receiving port, before it binds.
    let hello = "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
                 s.bind(('10.77.2.2', 6000)); s.sendto(b'hi', ('10.77.1.2', 6001))";
    let b = lab.ns("b");
    assert!(Command::new("ip")
        .args(["netns", "exec", &b, "python3", "-c", hello])
        .status()
        .unwrap()
        .success());
    let recv = format!(
        "udpsrc port=6000 caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96 \
         ! rtpjitterbuffer do-lost=true ! rtpopusdepay ! opusdec use-inband-fec=true plc=true \
         ! audioconvert ! audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 \
         ! wavenc ! filesink location={}",
        heard.display()
    );
    let mut args = vec!["netns", "exec", &b, "gst-launch-1.0", "-e"];
    args.extend(recv.split(' '));
    let mut receiver = ProcCmd::spawn("gst-recv", "ip", &args);
    receiver.wait_for("PLAYING", Duration::from_secs(10));
    let send = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample \
         ! audio/x-raw,rate=48000,channels=1 \
         ! opusenc bitrate={} frame-size={} bitrate-type={bitrate_type} inband-fec=true packet-loss-percentage={} \
         ! rtpopuspay pt=96 ! udpsink host=10.77.2.2 port=6000 bind-port=6001",
        speech.display(),
        bitrate(),
        frame_ms(),
        path.plan_percent
    );
    let a = lab.ns("a");
    let mut args = vec!["netns", "exec", &a, "gst-launch-1.0"];
    args.extend(send.split(' '));
    let mut sender = ProcCmd::spawn("gst-send", "ip", &args);
    assert!(
        sender.wait_exit(Duration::from_secs(60)),
        "{}",
        sender.output()
    );
    std::thread::sleep(Duration::from_secs(1));
    // -e: an interrupt ends the stream, so the WAV gets its header.
    let _ = Command::new("kill")
        .args(["-INT", &receiver.pid().to_string()])
        .status();
    assert!(
        receiver.wait_exit(Duration::from_secs(10)),
        "{}",
        receiver.output()
    );
    relay.wait_exit_or_kill();
    heard
}

fn pesq(python: &str, dir: &Path, reference: &Path, heard: &Path) -> String {
    let to16k = |from: &Path, name: &str| {
        let to = dir.join(name);
        assert!(Command::new("sox")
            .arg("-V1")
            .arg(from)
            .args(["-r", "16000"])
            .arg(&to)
            .status()
            .unwrap()
            .success());
        to
    };
    let (r, d) = (to16k(reference, "ref16k.wav"), to16k(heard, "deg16k.wav"));
    let out = Command::new(python)
        .arg(SCORE)
        .arg(&r)
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "figures for the note: needs GStreamer and PESQ, run by hand"]
fn whole_call_quality_beside_gstreamer_on_the_same_paths() {
    let python = std::env::var("PESQ_PYTHON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/pesq-venv/bin/python"
        )
        .to_string()
    });
    for tool in ["gst-launch-1.0", "sox", python.as_str()] {
        if Command::new(tool).arg("--version").output().is_err() {
            cryptic_tests::skip(format!("{tool} is needed for these figures"));
            return;
        }
    }
    let Some(lab) = Lab::build() else { return };
    assert!(lab.redirect_udp_between_peers(), "iptables in the router");
    let dir = TempDir::new("quality-vs-gst");
    let Some(reference) = speech_wav(&dir.0) else {
        return;
    };
    // A second of silence first: the speech starts once both ends play,
    // so neither pipeline is scored on its start-up.
    let speech = dir.0.join("speech-after-1s.wav");
    assert!(Command::new("sox")
        .arg(&reference)
        .arg(&speech)
        .args(["pad", "1", "0"])
        .status()
        .unwrap()
        .success());
    let _server = lab.start_server(&dir.0, &["alice", "bob"]);
    let mut rows = vec![
        "| path | ours (CBR) | GStreamer (constrained VBR) | GStreamer (CBR) |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    // QUALITY_ONLY=clean: only the paths whose name holds that.
    let only = std::env::var("QUALITY_ONLY").unwrap_or_default();
    let seeds = std::env::var("QUALITY_SEEDS").unwrap_or_else(|_| "11".into());
    for path in PATHS.iter().filter(|p| p.name.contains(only.as_str())) {
        // QUALITY_SEEDS=11,12,13: the impairment relay's seeds; each path
        // is scored once per seed and the scores averaged (one seed's
        // loss pattern decides which words are hit).
        let (mut sums, mut n) = ([0.0f64; 3], 0.0);
        let (mut a, mut g) = (PathBuf::new(), PathBuf::new());
        for seed in seeds.split(',') {
            a = ours(&lab, &dir.0, &speech, path, seed);
            let o: f64 = pesq(&python, &dir.0, &reference, &a).parse().unwrap();
            let mut row = [o, 0.0, 0.0];
            for (k, kind) in ["constrained-vbr", "cbr"].into_iter().enumerate() {
                g = gstreamer(&lab, &dir.0, &speech, path, seed, kind);
                row[k + 1] = pesq(&python, &dir.0, &reference, &g).parse().unwrap();
            }
            println!(
                "{} seed {seed}: ours {:.2}, GStreamer CVBR {:.2}, GStreamer CBR {:.2}",
                path.name, row[0], row[1], row[2]
            );
            for (s, r) in sums.iter_mut().zip(row) {
                *s += r;
            }
            n += 1.0;
        }
        let [ours, cvbr, cbr] = sums.map(|s| format!("{:.2}", s / n));
        println!(
            "{}: ours {ours}, GStreamer CVBR {cvbr}, CBR {cbr}",
            path.name
        );
        // QUALITY_KEEP=DIR: keep both recordings and the reference there.
        if let Some(keep) = std::env::var_os("QUALITY_KEEP") {
            let keep = Path::new(&keep);
            std::fs::create_dir_all(keep).unwrap();
            let tag: String = path
                .name
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap()
                .into();
            std::fs::copy(&a, keep.join(format!("{tag}-ours.wav"))).unwrap();
            std::fs::copy(&g, keep.join(format!("{tag}-gst.wav"))).unwrap();
            std::fs::copy(&reference, keep.join("reference.wav")).unwrap();
        }
        rows.push(format!("| {} | {ours} | {cvbr} | {cbr} |", path.name));
    }
    println!(
        "\nPESQ-WB, same speech, {} kbit/s, {} ms frames, mean over seeds {seeds}\n{}\n",
        bitrate() / 1000,
        frame_ms(),
        rows.join("\n")
    );
}
