//! The malicious server's mind, shared by the virtual-time attack and the
//! one between real processes: it poses as bob toward alice and as alice
//! toward bob, opens every sealed payload and seals it again for the other
//! leg with its own contributions, and grinds every value it is free to
//! choose once it could tell what the users will read.
//!
//! Between real processes it also terminates ICE and DTLS on both legs:
//! [`Mallory::media`] holds its own ICE descriptions for each leg, and what
//! the users send about theirs (credentials, candidates, fingerprints) goes
//! to [`Mallory::learnt`] instead of to the other user.
#![allow(dead_code, unreachable_pub)] // each test uses part of it

use cryptic_signal::callkey::{self, CallKey, EphemeralSecret, Side};
use cryptic_signal::e2e::E2eStore;
use cryptic_signal::payload::{
    Answer, Body, CertFingerprint, Contribution, IceParams, Invite, Payload, Reveal,
};
use cryptic_signal::wire::{CallId, Message, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Grinder tries per call.
pub const TRIES: u32 = 1_000_000;

/// Which leg of the attack: toward alice (the server poses as the callee)
/// or toward bob (it poses as the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    Alice,
    Bob,
}

/// What a user said about its own media, kept from the other user.
#[derive(Clone, Debug)]
pub enum Learnt {
    Ice(Leg, IceParams),
    Candidates(Leg, Vec<String>, bool),
    Fingerprint(Leg, CertFingerprint),
}

/// The server's own ICE descriptions, one per leg, for the call now.
#[derive(Clone, Debug)]
pub struct Media {
    pub to_alice: IceParams,
    pub to_bob: IceParams,
}

/// The server in the middle: one store per leg, its contributions, and
/// what it learnt.
pub struct Mallory {
    /// Poses as bob toward alice.
    pub as_bob: E2eStore,
    /// Poses as alice toward bob.
    pub as_alice: E2eStore,
    pub alice: UserId,
    pub bob: UserId,
    pub fp: CertFingerprint,
    rng: StdRng,
    /// The Unix time it writes in payloads (`None`: the system clock).
    unix: Option<u64>,
    /// Its own ICE toward each user, when it terminates media itself.
    pub media: Option<Media>,
    /// What the users said about their media (with `media` only).
    pub learnt: Vec<Learnt>,
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
    /// too late (over all calls).
    pub tries: u64,
    pub late_hits: u64,
    /// Reveal other values than the ones committed to (and skip the
    /// grinding).
    pub bad_reveal: bool,
    /// Leave the grinding to the caller ([`Mallory::grinds`]), so that a
    /// server with sockets keeps serving meanwhile.
    pub defer_grinding: bool,
    /// Grinding left to do (with `defer_grinding`).
    pub grinds: Vec<Grind>,
}

/// A million tries at the callee's nonce of the leg to alice, after alice
/// revealed: everything the grinder needs, owned.
pub struct Grind {
    shared: [u8; 32],
    transcript: Vec<u8>,
    at: usize,
    target: u32,
    base: u64,
}

impl Grind {
    /// Runs the tries; returns how many, and how many would have matched
    /// (too late: alice holds the answer already sent).
    pub fn run(mut self) -> (u64, u64) {
        let mut hits = 0;
        for i in 0..u64::from(TRIES) {
            // Any nonce will do: a counter from a random start.
            let at = self.at;
            self.transcript[at..at + 8].copy_from_slice(&(self.base ^ i).to_be_bytes());
            if fast_sas(&self.shared, &self.transcript) == self.target {
                hits += 1;
            }
        }
        (u64::from(TRIES), hits)
    }
}

impl Mallory {
    /// A server in the middle between `alice` and `bob` with its two
    /// stores, putting `fp` in its contributions.
    pub fn new(
        as_bob: E2eStore,
        as_alice: E2eStore,
        fp: CertFingerprint,
        seed: u64,
        unix: Option<u64>,
    ) -> Self {
        Self {
            as_bob,
            as_alice,
            alice: UserId::new("alice").expect("a user id"),
            bob: UserId::new("bob").expect("a user id"),
            fp,
            rng: StdRng::seed_from_u64(seed),
            unix,
            media: None,
            learnt: Vec::new(),
            to_bob: None,
            to_alice: None,
            invite_from_alice: None,
            invite_to_bob: None,
            answer_from_bob: None,
            answer_to_alice: None,
            sent: [0, 0],
            tries: 0,
            late_hits: 0,
            bad_reveal: false,
            defer_grinding: false,
            grinds: Vec::new(),
        }
    }

    /// Forgets the last call (counters, contributions, what was learnt).
    pub fn next_call(&mut self, media: Option<Media>) {
        self.media = media;
        self.learnt.clear();
        self.to_bob = None;
        self.to_alice = None;
        self.invite_from_alice = None;
        self.invite_to_bob = None;
        self.answer_from_bob = None;
        self.answer_to_alice = None;
        self.sent = [0, 0];
    }

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
            self.unix.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("after 1970")
                    .as_secs()
            }) as i64,
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
    /// passes as it is. `None`: the message is kept from its recipient
    /// (candidates, when the server terminates media itself).
    pub fn intercept(&mut self, msg: Message) -> Option<Message> {
        match msg {
            Message::CallInvite(mut m) => {
                let Body::Invite(inv) = self.open(true, &m.encrypted_payload).body else {
                    panic!("not an invite")
                };
                let (secret, c) = self.contribution();
                let commitment = callkey::commitment(&m.call_id, &c);
                let ice = match &self.media {
                    Some(media) => {
                        self.learnt.push(Learnt::Ice(Leg::Alice, inv.ice.clone()));
                        media.to_bob.clone()
                    }
                    None => inv.ice.clone(),
                };
                let mine = Invite::new(
                    commitment,
                    ice,
                    inv.audio_codecs.clone(),
                    inv.srtp_profiles.clone(),
                );
                self.invite_from_alice = Some(inv);
                self.invite_to_bob = Some(mine.clone());
                self.to_bob = Some((secret, c, commitment));
                m.encrypted_payload = self.reseal(true, m.call_id, Body::Invite(mine));
                Some(Message::CallInvite(m))
            }
            Message::CallAnswer(mut m) => {
                let Body::Answer(ans) = self.open(false, &m.encrypted_payload).body else {
                    panic!("not an answer")
                };
                // Alice's values are still hidden behind her commitment: any
                // answer is a blind guess. Send one.
                let (secret, c) = self.contribution();
                let ice = match &self.media {
                    Some(media) => {
                        self.learnt.push(Learnt::Ice(Leg::Bob, ans.ice.clone()));
                        let fp = ans.contribution.dtls_fingerprint;
                        self.learnt.push(Learnt::Fingerprint(Leg::Bob, fp));
                        media.to_alice.clone()
                    }
                    None => ans.ice.clone(),
                };
                let mine = Answer::new(c, ice, ans.audio_codecs.clone(), ans.srtp_profiles.clone());
                self.answer_from_bob = Some(ans);
                self.answer_to_alice = Some(mine.clone());
                self.to_alice = Some((secret, c));
                m.encrypted_payload = self.reseal(false, m.call_id, Body::Answer(mine));
                Some(Message::CallAnswer(m))
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
                        if self.media.is_some() {
                            let fp = r.contribution.dtls_fingerprint;
                            self.learnt.push(Learnt::Fingerprint(Leg::Alice, fp));
                        }
                        self.grind(m.call_id, &r.contribution);
                        let (_, mine, _) = self.to_bob.as_ref().expect("invited");
                        Body::Reveal(Reveal::new(*mine))
                    }
                    Body::Candidates(c) if self.media.is_some() => {
                        let leg = if from_alice { Leg::Alice } else { Leg::Bob };
                        self.learnt.push(Learnt::Candidates(
                            leg,
                            c.candidates,
                            c.end_of_candidates,
                        ));
                        return None;
                    }
                    other => other,
                };
                m.encrypted_candidate = self.reseal(from_alice, m.call_id, body);
                Some(Message::CallIceCandidate(m))
            }
            other => Some(other),
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
        let t = callkey::transcript(
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
        let job = Grind {
            shared: *shared,
            transcript: t,
            at,
            target: digits(&bob_sas),
            base: self.rng.random::<u64>(),
        };
        if self.defer_grinding {
            self.grinds.push(job);
        } else {
            let (tries, hits) = job.run();
            self.tries += tries;
            self.late_hits += hits;
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
