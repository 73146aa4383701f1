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

use std::time::Duration;

use cryptic_call::history::Outcome;
use cryptic_dtls_srtp::Fingerprint;
use cryptic_signal::call::CallState;
use cryptic_signal::callkey::{self, CallKey, EphemeralSecret, Side};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::payload::{
    Answer, Body, CertFingerprint, Contribution, Invite, Payload, Reveal,
};
use cryptic_signal::wire::{B64Bytes, CallId, Message, UserId};
use kit::{bundle_of, Action, NetConfig, Users, When, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALICE: usize = 0;
const BOB: usize = 1;
const TRIES: u32 = 1_000_000;

/// The server in the middle: one store per leg, its contributions, and
/// what it learnt.
struct Mallory {
    /// Poses as bob toward alice.
    as_bob: E2eStore,
    /// Poses as alice toward bob.
    as_alice: E2eStore,
    alice: UserId,
    bob: UserId,
    fp: CertFingerprint,
    rng: StdRng,
    /// Toward bob it is the caller: its secret, contribution, commitment.
    to_bob: Option<(EphemeralSecret, Contribution, [u8; 32])>,
    /// Toward alice it is the callee.
    to_alice: Option<(EphemeralSecret, Contribution)>,
    invite_from_alice: Option<Invite>,
    invite_to_bob: Option<Invite>,
    answer_from_bob: Option<Answer>,
    answer_to_alice: Option<Answer>,
    sent: [u64; 2],
    /// Grinder tries, and how many would have matched had they not come
    /// too late.
    tries: u64,
    late_hits: u64,
    /// Reveal other values than the ones committed to (and skip the
    /// grinding).
    bad_reveal: bool,
}

impl Mallory {
    fn reseal(
        &mut self,
        to_bob: bool,
        call_id: CallId,
        body: Body,
    ) -> cryptic_signal::wire::Sealed {
        let (from, to) = if to_bob {
            (self.alice.clone(), self.bob.clone())
        } else {
            (self.bob.clone(), self.alice.clone())
        };
        let leg = usize::from(to_bob);
        let p = Payload::new(
            call_id,
            from,
            to.clone(),
            self.sent[leg],
            1_800_000_000,
            body,
        );
        self.sent[leg] += 1;
        let store = if to_bob {
            &mut self.as_alice
        } else {
            &mut self.as_bob
        };
        store.seal(&to, &p.to_bytes()).unwrap()
    }

    fn open(&mut self, from_alice: bool, sealed: &cryptic_signal::wire::Sealed) -> Payload {
        let (store, from) = if from_alice {
            (&mut self.as_bob, self.alice.clone())
        } else {
            (&mut self.as_alice, self.bob.clone())
        };
        Payload::from_bytes(&store.unseal(&from, sealed).unwrap()).unwrap()
    }

    fn contribution(&mut self) -> (EphemeralSecret, Contribution) {
        let secret = EphemeralSecret::from_bytes(self.rng.random());
        let c = Contribution::new(secret.public_key(), self.rng.random(), self.fp);
        (secret, c)
    }

    /// Rewrites one call message; everything without a sealed payload
    /// passes as it is.
    fn intercept(&mut self, msg: Message) -> Message {
        match msg {
            Message::CallInvite(mut m) => {
                let Body::Invite(inv) = self.open(true, &m.encrypted_payload).body else {
                    panic!("not an invite")
                };
                let (secret, c) = self.contribution();
                let commitment = callkey::commitment(&m.call_id, &c);
                let mine = Invite::new(
                    commitment,
                    inv.ice.clone(),
                    inv.audio_codecs.clone(),
                    inv.srtp_profiles.clone(),
                );
                self.invite_from_alice = Some(inv);
                self.invite_to_bob = Some(mine.clone());
                self.to_bob = Some((secret, c, commitment));
                m.encrypted_payload = self.reseal(true, m.call_id, Body::Invite(mine));
                Message::CallInvite(m)
            }
            Message::CallAnswer(mut m) => {
                let Body::Answer(ans) = self.open(false, &m.encrypted_payload).body else {
                    panic!("not an answer")
                };
                // Alice's values are still hidden behind her commitment: any
                // answer is a blind guess. Send one.
                let (secret, c) = self.contribution();
                let mine = Answer::new(
                    c,
                    ans.ice.clone(),
                    ans.audio_codecs.clone(),
                    ans.srtp_profiles.clone(),
                );
                self.answer_from_bob = Some(ans);
                self.answer_to_alice = Some(mine.clone());
                self.to_alice = Some((secret, c));
                m.encrypted_payload = self.reseal(false, m.call_id, Body::Answer(mine));
                Message::CallAnswer(m)
            }
            Message::CallIceCandidate(mut m) => {
                let from_alice = m.from_user == self.alice;
                let body = self.open(from_alice, &m.encrypted_candidate).body;
                let body = match body {
                    Body::Reveal(r) if self.bad_reveal => {
                        let _ = r;
                        let (_, other) = self.contribution();
                        Body::Reveal(Reveal::new(other))
                    }
                    Body::Reveal(r) => {
                        self.grind(m.call_id, &r.contribution);
                        let (_, mine, _) = self.to_bob.as_ref().expect("invited");
                        Body::Reveal(Reveal::new(*mine))
                    }
                    other => other,
                };
                m.encrypted_candidate = self.reseal(from_alice, m.call_id, body);
                Message::CallIceCandidate(m)
            }
            other => other,
        }
    }

    /// Alice has revealed: the attacker can now compute both SAS. It tries
    /// a million other nonces for its answer to alice, counting those that
    /// would make alice's SAS equal bob's; but alice holds the answer it
    /// already sent, so none of them can be used.
    fn grind(&mut self, call_id: CallId, alice_c: &Contribution) {
        let bob_sas = self.bob_leg_key(call_id).sas();
        let (secret, mine) = self.to_alice.as_ref().expect("answered");
        let (inv, ans) = (
            self.invite_from_alice.as_ref().expect("invited"),
            self.answer_to_alice.as_ref().expect("answered"),
        );
        let commitment = inv.commitment.0;
        let (alice_ik, bob_ik) = (
            self.as_bob
                .pinned_key(&self.alice)
                .expect("alice pinned")
                .identity_key
                .0,
            self.as_bob.identity_key().0,
        );
        let shared = secret.shared_secret(&alice_c.ephemeral_key.0).unwrap();
        let mut t = callkey::transcript(
            &call_id,
            &commitment,
            &Side {
                user: &self.alice,
                identity_key: alice_ik,
                contribution: alice_c,
                profiles: &inv.srtp_profiles,
                codecs: &inv.audio_codecs,
            },
            &Side {
                user: &self.bob,
                identity_key: bob_ik,
                contribution: mine,
                profiles: &ans.srtp_profiles,
                codecs: &ans.audio_codecs,
            },
        );
        // The callee's nonce sits at a fixed place in the transcript: the
        // grinder rewrites it in place, one hash and one HKDF per try.
        let at = t
            .windows(32)
            .position(|w| w == mine.call_nonce.0)
            .expect("the nonce is in the transcript");
        // The attacker's own fast implementation of the formula (ring's
        // SHA-256 and HKDF), checked against the library once.
        let digits = |sas: &str| sas.replace(' ', "").parse::<u32>().expect("six digits");
        assert_eq!(
            fast_sas(&shared, &t),
            digits(&CallKey::from_shared(&shared, &t).sas())
        );
        let (target, base) = (digits(&bob_sas), self.rng.random::<u64>());
        for i in 0..u64::from(TRIES) {
            // Any nonce will do: a counter from a random start.
            t[at..at + 8].copy_from_slice(&(base ^ i).to_be_bytes());
            self.tries += 1;
            if fast_sas(&shared, &t) == target {
                self.late_hits += 1;
            }
        }
    }

    /// K_call of the leg to bob, where the attacker is the caller.
    fn bob_leg_key(&self, call_id: CallId) -> CallKey {
        let (secret, mine, commitment) = self.to_bob.as_ref().expect("invited");
        let (inv, ans) = (
            self.invite_to_bob.as_ref().expect("invited"),
            self.answer_from_bob.as_ref().expect("answered"),
        );
        let t = callkey::transcript(
            &call_id,
            commitment,
            &Side {
                user: &self.alice,
                identity_key: self.as_alice.identity_key().0,
                contribution: mine,
                profiles: &inv.srtp_profiles,
                codecs: &inv.audio_codecs,
            },
            &Side {
                user: &self.bob,
                identity_key: self
                    .as_alice
                    .pinned_key(&self.bob)
                    .expect("bob")
                    .identity_key
                    .0,
                contribution: &ans.contribution,
                profiles: &ans.srtp_profiles,
                codecs: &ans.audio_codecs,
            },
        );
        secret
            .call_key(&ans.contribution.ephemeral_key.0, &t)
            .unwrap()
    }
}

/// The version-2 SAS (as a number) from an X25519 result and a
/// transcript, with ring.
fn fast_sas(shared: &[u8; 32], transcript: &[u8]) -> u32 {
    use ring::hkdf::{KeyType, Prk, Salt, HKDF_SHA256};
    struct Len(usize);
    impl KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let salt = ring::digest::digest(&ring::digest::SHA256, transcript);
    let prk = Salt::new(HKDF_SHA256, salt.as_ref()).extract(shared);
    let mut k = [0u8; 32];
    prk.expand(&[callkey::CALL_KEY_INFO_V2], Len(32))
        .and_then(|okm| okm.fill(&mut k))
        .expect("32 bytes");
    let mut out = [0u8; 4];
    Prk::new_less_safe(HKDF_SHA256, &k)
        .expand(&[callkey::SAS_INFO_V2], Len(4))
        .and_then(|okm| okm.fill(&mut out))
        .expect("4 bytes");
    u32::from_be_bytes(out) % 1_000_000
}

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
    let mallory = std::rc::Rc::new(std::cell::RefCell::new(Mallory {
        as_bob,
        as_alice,
        alice: alice.clone(),
        bob: bob.clone(),
        fp: CertFingerprint(*Fingerprint::of_der(&w.mitm_cert).as_bytes()),
        rng: StdRng::seed_from_u64(call),
        to_bob: None,
        to_alice: None,
        invite_from_alice: None,
        invite_to_bob: None,
        answer_from_bob: None,
        answer_to_alice: None,
        sent: [0, 0],
        tries: 0,
        late_hits: 0,
        bad_reveal,
    }));
    let m = mallory.clone();
    w.intercept = Some(Box::new(move |msg| m.borrow_mut().intercept(msg)));
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
