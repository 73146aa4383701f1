//! The Cryptic ChaCha20-Poly1305 SRTP profile carries the call when both
//! users prefer it, and AES-128-GCM does when only one does.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

fn call(alice_chacha: bool, bob_chacha: bool) -> (String, String) {
    let world = World::start(
        &format!("chacha-{alice_chacha}-{bob_chacha}"),
        &["alice", "bob"],
    );
    let mut bob_args = vec!["--auto-accept", "--input", "tone", "--output", "null"];
    if bob_chacha {
        bob_args.push("--chacha");
    }
    let mut bob = world.listen("bob", &bob_args);
    let mut alice_args = vec!["--input", "tone", "--output", "null", "--duration", "2"];
    if alice_chacha {
        alice_args.push("--chacha");
    }
    let mut alice = world.call("alice", "bob", &alice_args);
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(5)), "{}", bob.output());
    (alice.output(), bob.output())
}

#[test]
fn both_preferring_chacha_get_chacha_and_one_alone_gets_aes_gcm() {
    let (a, b) = call(true, true);
    for out in [&a, &b] {
        assert!(out.contains("cipher=ChaCha20-Poly1305"), "{out}");
        assert!(out.contains("call ended: completed"), "{out}");
    }
    let (a, b) = call(true, false);
    for out in [&a, &b] {
        assert!(out.contains("cipher=AES-128-GCM"), "{out}");
        assert!(out.contains("call ended: completed"), "{out}");
    }
}
