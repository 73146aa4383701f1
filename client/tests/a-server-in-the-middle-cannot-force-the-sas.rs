//! A malicious signaling server against the version-2 call key, and the same
//! attacker against version 1.
//!
//! The server hands out its own key bundles at first contact (alice's
//! "bob" and bob's "alice" are the server's keys), so it holds both
//! end-to-end sessions: it opens every sealed payload and seals it again for
//! the other leg. It terminates DTLS toward both users with its own
//! certificate (whose fingerprint it puts in the payloads, so both users'
//! certificate checks pass), and it grinds every value it is free to choose,
//! a million tries per call, looking for values that make both users read
//! the same six digits.
//!
//! Version 2 leaves it nothing to grind at the moment it could tell: it
//! commits to bob before bob answers, and answers alice before alice
//! reveals. Over 20 calls the two users' SAS never match. Version 1 let the
//! callee choose its nonce after reading the caller's; the same grinder
//! wins there (the last test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;
mod mallory;

use std::time::Duration;

use cryptic_call::history::Outcome;
use cryptic_dtls_srtp::Fingerprint;
use cryptic_signal::call::CallState;
use cryptic_signal::callkey::CallKey;
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::payload::CertFingerprint;
use cryptic_signal::wire::{B64Bytes, CallId, UserId};
use kit::{bundle_of, Action, NetConfig, Users, When, World};
use mallory::{Mallory, TRIES};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALICE: usize = 0;
const BOB: usize = 1;

/// One call from alice to bob through the malicious server; returns both
/// reports and what the server did.
fn attacked_call(
    call: u64,
    bad_reveal: bool,
) -> (
    cryptic_call::session::SessionReport,
    cryptic_call::session::SessionReport,
    u64,
    u64,
) {
    let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
    // First contact through the malicious server: each user gets the
    // server's bundle for the other.
    let (mut a, mut b) = (E2eStore::in_memory(), E2eStore::in_memory());
    let (mut as_bob, mut as_alice) = (E2eStore::in_memory(), E2eStore::in_memory());
    a.start_session(&bundle_of(&mut as_bob, &bob)).unwrap();
    b.start_session(&bundle_of(&mut as_alice, &alice)).unwrap();
    as_alice.start_session(&bundle_of(&mut b, &bob)).unwrap();
    let mut users = Users::with_stores(&["alice", "bob"], vec![a, b]);
    let net = NetConfig {
        dtls_mitm: true,
        ..NetConfig::default()
    };
    let mut w = World::new(&mut users, net, 7_000 + call, |_, c| c);
    let fp = CertFingerprint(*Fingerprint::of_der(&w.mitm_cert).as_bytes());
    let mut m = Mallory::new(as_bob, as_alice, fp, call, Some(1_800_000_000));
    m.bad_reveal = bad_reveal;
    let mallory = std::rc::Rc::new(std::cell::RefCell::new(m));
    let m = mallory.clone();
    w.intercept = Some(Box::new(move |msg| {
        m.borrow_mut()
            .intercept(msg)
            .expect("without media of its own the server forwards every message")
    }));
    w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
    let ringing = When::After(CallState::Ringing, Duration::from_millis(300));
    w.at(BOB, ringing, Action::Accept);
    let active = When::After(CallState::Active, Duration::from_secs(1));
    w.at(ALICE, active, Action::Hangup);
    w.run(Duration::from_secs(60));
    let (ra, rb) = (w.report(ALICE), w.report(BOB));
    drop(w);
    let m = mallory.borrow();
    (ra, rb, m.tries, m.late_hits)
}

#[test]
fn over_twenty_calls_a_grinding_server_in_the_middle_never_makes_the_sas_match() {
    for call in 0..20u64 {
        let (ra, rb, tries, late_hits) = attacked_call(call, false);
        println!(
            "call {call}: alice reads {:?}, bob reads {:?}; the server ground {tries} values, {late_hits} would have matched too late",
            ra.sas, rb.sas
        );
        // The attack got as far as it can: both calls secured and carried
        // audio through the server's certificate.
        assert!(
            ra.sas.is_some() && rb.sas.is_some(),
            "call {call}: {} / {}",
            ra.reason,
            rb.reason
        );
        assert!(tries >= u64::from(TRIES));
        assert_ne!(ra.sas, rb.sas, "call {call}: the server forced the SAS");
    }
}

#[test]
fn a_reveal_that_does_not_match_the_commitment_aborts_the_call() {
    let (ra, rb, _, _) = attacked_call(99, true);
    assert_eq!(rb.outcome, Outcome::SecurityAbort, "{}", rb.reason);
    assert!(
        rb.reason.contains("does not match its commitment"),
        "{}",
        rb.reason
    );
    assert!(rb.sas.is_none() && ra.sas.is_none());
    assert_eq!(ra.frames_played + rb.frames_played, 0);
}

/// The version-1 derivation under the same grinder: the callee's nonce is
/// chosen after the caller's is read, so the server grinds the nonce of its
/// answer to alice until alice's SAS equals the one bob already shows.
#[test]
fn the_same_grinder_beats_the_version_1_call_key() {
    let mut rng = StdRng::seed_from_u64(1);
    let id = |rng: &mut StdRng| CallId::random(rng);
    let fp_a = "sha-256 AA:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    let fp_b = "sha-256 BB:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    let fp_m = "sha-256 CC:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    let call_id = id(&mut rng);
    // Leg to bob: the server is the caller; bob answered with his nonce.
    let (m_nonce, bob_nonce) = (B64Bytes(rng.random()), B64Bytes(rng.random()));
    let bob_sas = CallKey::derive(&call_id, &m_nonce, &bob_nonce)
        .short_auth_string(fp_m, fp_b)
        .unwrap();
    // Leg to alice: alice's nonce arrived in her invite; the server grinds
    // the nonce of its answer.
    let alice_nonce = B64Bytes(rng.random());
    let (mut tries, base) = (0u64, rng.random::<u64>());
    let found = loop {
        tries += 1;
        let mut nonce = B64Bytes([7; 32]);
        nonce.0[..8].copy_from_slice(&(base ^ tries).to_be_bytes());
        let sas = CallKey::derive(&call_id, &alice_nonce, &nonce)
            .short_auth_string(fp_a, fp_m)
            .unwrap();
        if sas == bob_sas {
            break Some(sas);
        }
        if tries >= 20 * u64::from(TRIES) {
            break None;
        }
    };
    println!("version 1: the server forced {bob_sas} on both legs after {tries} tries");
    assert_eq!(found, Some(bob_sas));
}
