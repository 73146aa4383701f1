//! The demo, as a user runs it: the real `cryptic-call` binary in its own
//! process starts an embedded mTLS signaling server on loopback, two users
//! call each other through real ICE, DTLS and SRTP, both see the same short
//! authentication string, and what the callee heard is alice's tone.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::process::Command;

#[test]
fn the_demo_call_connects_secures_and_delivers_the_tone() {
    let dir = std::env::temp_dir().join(format!("cryptic-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("heard.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_cryptic-call"))
        .args(["demo", "--seconds", "2", "--output"])
        .arg(&wav)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "demo failed");
    assert!(stdout.contains("outcome        : completed"));
    assert!(stdout.contains("(match: nobody in the middle)"));
    assert!(stdout.contains("path           : direct"));
    let purity = cryptic_call::demo::tone_purity(&wav, cryptic_call::demo::DEMO_TONE_HZ)
        .expect("the callee heard audio");
    assert!(purity > 0.9, "tone purity {purity}");
    let _ = std::fs::remove_dir_all(&dir);
}
