//! The call's end-to-end part: sealed payloads with their context, and the
//! version-2 key schedule (commit, answer, reveal, K_call, SAS, SRTP keys
//! bound to K_call). See [`cryptic_signal::callkey`] for every byte.
//!
//! ```text
//!  caller                                   callee
//!  invite { commitment, ICE, codecs, profiles }  ->  admit (fresh, unseen), ring
//!                 <-  answer { ephemeral, nonce, fingerprint, ICE, ... }
//!  reveal { ephemeral, nonce, fingerprint }  ->  check against the commitment
//!  K_call = HKDF(X25519, salt = SHA-256(transcript))   (both, now)
//!  DTLS (fingerprints checked) -> exporter output -> HKDF(salt = K_call) -> SRTP
//! ```

use std::time::Instant;

use cryptic_signal::call::Role;
use cryptic_signal::callkey::{self, CallKey, EphemeralSecret, Side};
use cryptic_signal::payload::{
    Answer, AudioCodec, Body, CertFingerprint, Contribution, Expect, IceParams, Invite, Kind,
    Payload, Reveal, SrtpProfile,
};
use cryptic_signal::wire::{CallId, CallInvite, RejectReason, Sealed, UserId};
use rand::Rng;
use zeroize::Zeroizing;

use super::{CallSession, Sealer, SessionEvent, CODEC, SRTP_PROFILES};
use crate::history::Outcome;

/// What one side offered for the media: ICE, codecs, profiles.
#[derive(Clone, Debug)]
pub(super) struct Offer {
    pub(super) ice: IceParams,
    pub(super) codecs: Vec<AudioCodec>,
    pub(super) profiles: Vec<SrtpProfile>,
}

/// The key schedule's state for one call.
#[derive(Default)]
pub(super) struct KeySchedule {
    /// Our ephemeral X25519 secret, dropped once K_call exists.
    secret: Option<EphemeralSecret>,
    own: Option<Contribution>,
    peer: Option<Contribution>,
    /// The caller's commitment (ours when we call).
    commitment: Option<[u8; 32]>,
    call_key: Option<CallKey>,
    /// The counter of our next sealed payload in this call.
    sent: u64,
    /// The smallest counter we still accept from the peer.
    next_from_peer: u64,
    /// The invite we opened and admitted before the machine rang for it.
    admitted: Option<(CallId, Invite)>,
}

impl KeySchedule {
    /// Forgets everything (a new call starts).
    pub(super) fn reset(&mut self) {
        let admitted = self.admitted.take();
        *self = KeySchedule::default();
        self.admitted = admitted;
    }

    pub(super) fn has_call_key(&self) -> bool {
        self.call_key.is_some()
    }

    /// The fingerprint the peer's DTLS certificate must have.
    pub(super) fn peer_fingerprint(&self) -> Option<CertFingerprint> {
        self.peer.map(|c| c.dtls_fingerprint)
    }

    pub(super) fn sas(&self) -> Option<String> {
        self.call_key.as_ref().map(CallKey::sas)
    }

    /// The exporter output bound to K_call for `profile`.
    pub(super) fn bind_srtp(
        &self,
        exported: &[u8],
        profile: SrtpProfile,
    ) -> Option<Zeroizing<Vec<u8>>> {
        Some(self.call_key.as_ref()?.bind_srtp(exported, profile))
    }
}

impl<S: Sealer> CallSession<S> {
    /// Our fresh contribution: an ephemeral key, a nonce, our fingerprint.
    fn contribute(&mut self) -> Contribution {
        let secret = EphemeralSecret::from_bytes(self.rng.random());
        let fp = CertFingerprint(*self.dtls.local_fingerprint().as_bytes());
        let own = Contribution::new(secret.public_key(), self.rng.random(), fp);
        self.keys.secret = Some(secret);
        self.keys.own = Some(own);
        own
    }

    fn seal_body(
        &mut self,
        now: Instant,
        peer: &UserId,
        body: Body,
    ) -> Result<Sealed, cryptic_signal::Error> {
        let call_id = self
            .report
            .call_id
            .ok_or(cryptic_signal::Error::InvalidState("no call"))?;
        let payload = Payload::new(
            call_id,
            self.config.me.clone(),
            peer.clone(),
            self.keys.sent,
            self.unix_now(now),
            body,
        );
        self.keys.sent += 1;
        self.sealer.seal(peer, &payload.to_bytes())
    }

    /// The invite: a commitment to our contribution, not the contribution.
    pub(super) fn seal_invite(
        &mut self,
        now: Instant,
        peer: &UserId,
        offer: &Offer,
    ) -> Result<Sealed, cryptic_signal::Error> {
        self.keys.reset();
        let own = self.contribute();
        let call_id = self
            .report
            .call_id
            .ok_or(cryptic_signal::Error::InvalidState("no call"))?;
        let commitment = callkey::commitment(&call_id, &own);
        self.keys.commitment = Some(commitment);
        let body = Invite::new(
            commitment,
            offer.ice.clone(),
            offer.codecs.clone(),
            offer.profiles.clone(),
        );
        self.seal_body(now, peer, Body::Invite(body))
    }

    /// The answer: our contribution in full.
    pub(super) fn seal_answer(
        &mut self,
        now: Instant,
        peer: &UserId,
        offer: &Offer,
    ) -> Result<Sealed, cryptic_signal::Error> {
        let own = self.contribute();
        let body = Answer::new(
            own,
            offer.ice.clone(),
            offer.codecs.clone(),
            offer.profiles.clone(),
        );
        self.seal_body(now, peer, Body::Answer(body))
    }

    /// Seals a `call_ice_candidate` body (candidates, or a restart).
    pub(super) fn seal_candidates(
        &mut self,
        now: Instant,
        body: Body,
    ) -> Result<Sealed, cryptic_signal::Error> {
        let peer = self
            .report
            .peer
            .clone()
            .ok_or(cryptic_signal::Error::InvalidState("no peer"))?;
        self.seal_body(now, &peer, body)
    }

    /// Opens a payload `from` sealed and checks its context.
    fn open(
        &mut self,
        from: &UserId,
        call_id: CallId,
        sealed: &Sealed,
        kinds: &[Kind],
        min_counter: u64,
    ) -> Result<Payload, cryptic_signal::Error> {
        let payload = Payload::from_bytes(&self.sealer.unseal(from, sealed)?)?;
        payload.check(&Expect {
            kinds,
            call_id,
            from,
            to: &self.config.me,
            min_counter,
        })?;
        Ok(payload)
    }

    /// Whether the call machine would ring for this invite (rather than
    /// answer busy or drop it).
    pub(super) fn would_ring(&self, invite: &CallInvite) -> bool {
        if invite.to_user != self.config.me {
            return false;
        }
        match self.machine.call() {
            None => true,
            Some((id, peer, _)) => {
                id != invite.call_id
                    && match self.machine.state() {
                        cryptic_signal::call::CallState::Ended
                        | cryptic_signal::call::CallState::Idle => true,
                        cryptic_signal::call::CallState::Inviting => peer == &invite.from_user,
                        _ => false,
                    }
            }
        }
    }

    /// Opens an invite, checks its context, its offer and its freshness,
    /// and remembers it for the ring; the reason in words otherwise.
    pub(super) fn admit(&mut self, now: Instant, invite: &CallInvite) -> Result<(), String> {
        let from = &invite.from_user;
        let payload = self
            .open(
                from,
                invite.call_id,
                &invite.encrypted_payload,
                &[Kind::Invite],
                0,
            )
            .map_err(|e| format!("could not open the invite from {from}: {e}"))?;
        let Body::Invite(body) = payload.body else {
            return Err("not an invite".into());
        };
        compatible(&body.audio_codecs, &body.srtp_profiles)?;
        let now_unix = self.unix_now(now);
        self.sealer
            .admit_invite(&invite.call_id, payload.sent_at, now_unix)
            .map_err(|e| e.to_string())?;
        self.keys.admitted = Some((invite.call_id, body));
        Ok(())
    }

    pub(super) fn on_incoming(&mut self, now: Instant, call_id: CallId, from: UserId) {
        self.report.call_id = Some(call_id);
        self.report.peer = Some(from.clone());
        self.report.role = Role::Callee;
        self.report.started = Some(now);
        let admitted = self.keys.admitted.take().filter(|(id, _)| *id == call_id);
        self.keys.reset();
        let Some((_, invite)) = admitted else {
            // Cannot happen: every ringing invite was admitted first.
            self.report.reason = "the invite was not checked".into();
            self.forced = Some(Outcome::Failed);
            let _ = self.machine.reject(now, RejectReason::Incompatible);
            return;
        };
        self.keys.commitment = Some(invite.commitment.0);
        self.keys.next_from_peer = 1;
        self.theirs = Some(Offer {
            ice: invite.ice,
            codecs: invite.audio_codecs,
            profiles: invite.srtp_profiles,
        });
        self.events
            .push_back(SessionEvent::Incoming { from: from.clone() });
        if self.glare_peer.as_ref() == Some(&from) {
            self.accept_at = Some(now);
        } else if self.config.auto_reject {
            let _ = self.machine.reject(now, RejectReason::Declined);
        } else if let Some(d) = self.config.auto_accept {
            self.accept_at = Some(now + d);
        }
    }

    /// The callee's answer: its contribution. We reveal ours and hold K_call.
    pub(super) fn on_answer(&mut self, now: Instant, sealed: Sealed) {
        let (Some(peer), Some(call_id)) = (self.report.peer.clone(), self.report.call_id) else {
            return;
        };
        let min = self.keys.next_from_peer;
        let answer = match self.open(&peer, call_id, &sealed, &[Kind::Answer], min) {
            Ok(p) => {
                self.keys.next_from_peer = p.counter + 1;
                match p.body {
                    Body::Answer(a) => a,
                    _ => return,
                }
            }
            Err(e) => {
                self.fail(
                    now,
                    Outcome::Failed,
                    format!("could not open the answer: {e}"),
                );
                return;
            }
        };
        if let Err(why) = compatible(&answer.audio_codecs, &answer.srtp_profiles) {
            self.fail(now, Outcome::Failed, why);
            return;
        }
        self.keys.peer = Some(answer.contribution);
        self.theirs = Some(Offer {
            ice: answer.ice,
            codecs: answer.audio_codecs,
            profiles: answer.srtp_profiles,
        });
        self.cancel_at = None;
        let Some(own) = self.keys.own else { return };
        match self.seal_body(now, &peer, Body::Reveal(Reveal::new(own))) {
            Ok(sealed) => {
                if let Err(e) = self.machine.send_candidate(sealed) {
                    tracing::debug!("reveal not sent: {e}");
                }
            }
            Err(e) => {
                self.fail(now, Outcome::Failed, format!("cannot seal the reveal: {e}"));
                return;
            }
        }
        if let Err(e) = self.derive_call_key() {
            self.security_abort(now, format!("call key: {e}"));
            return;
        }
        self.on_answered(now);
    }

    /// A sealed `call_ice_candidate`: the caller's reveal, candidates, or
    /// an ICE restart.
    pub(super) fn on_candidate(&mut self, now: Instant, sealed: Sealed) {
        let (Some(peer), Some(call_id)) = (self.report.peer.clone(), self.report.call_id) else {
            return;
        };
        let kinds = [Kind::Reveal, Kind::Candidates, Kind::Restart];
        let min = self.keys.next_from_peer;
        let payload = match self.open(&peer, call_id, &sealed, &kinds, min) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("sealed candidate message dropped: {e}");
                return;
            }
        };
        self.keys.next_from_peer = payload.counter + 1;
        match payload.body {
            Body::Reveal(r) => self.on_reveal(now, call_id, r.contribution),
            Body::Candidates(u) => self.on_candidates(now, u),
            Body::Restart(r) => self.on_restart(now, r),
            _ => {}
        }
    }

    fn on_reveal(&mut self, now: Instant, call_id: CallId, caller: Contribution) {
        if self.report.role != Role::Callee || self.keys.peer.is_some() {
            return;
        }
        if self.keys.commitment != Some(callkey::commitment(&call_id, &caller)) {
            self.security_abort(
                now,
                "the caller's revealed key does not match its commitment: someone is in the \
                 middle; call aborted"
                    .into(),
            );
            return;
        }
        self.keys.peer = Some(caller);
        if let Err(e) = self.derive_call_key() {
            self.security_abort(now, format!("call key: {e}"));
        }
    }

    /// K_call from the exchange and the transcript; the ephemeral secret
    /// is dropped.
    fn derive_call_key(&mut self) -> Result<(), String> {
        let (Some(own), Some(peer), Some(commitment)) =
            (self.keys.own, self.keys.peer, self.keys.commitment)
        else {
            return Err("the exchange is incomplete".into());
        };
        let (Some(call_id), Some(peer_user)) = (self.report.call_id, self.report.peer.clone())
        else {
            return Err("no call".into());
        };
        let (Some(ours), Some(theirs)) = (self.ours.clone(), self.theirs.clone()) else {
            return Err("the offers are incomplete".into());
        };
        let peer_key = self
            .sealer
            .peer_identity_key(&peer_user)
            .ok_or("the peer's identity key is not pinned")?;
        let me = self.config.me.clone();
        let mine = Side {
            user: &me,
            identity_key: self.sealer.identity_key(),
            contribution: &own,
            profiles: &ours.profiles,
            codecs: &ours.codecs,
        };
        let theirs = Side {
            user: &peer_user,
            identity_key: peer_key,
            contribution: &peer,
            profiles: &theirs.profiles,
            codecs: &theirs.codecs,
        };
        let (caller, callee) = match self.report.role {
            Role::Caller => (mine, theirs),
            Role::Callee => (theirs, mine),
        };
        let transcript = callkey::transcript(&call_id, &commitment, &caller, &callee);
        let secret = self.keys.secret.take().ok_or("no ephemeral key")?;
        let key = secret
            .call_key(&peer.ephemeral_key.0, &transcript)
            .map_err(|e| e.to_string())?;
        self.keys.call_key = Some(key);
        Ok(())
    }

    fn security_abort(&mut self, now: Instant, reason: String) {
        self.forced = Some(Outcome::SecurityAbort);
        self.report.reason = reason;
        self.machine.security_abort(now);
    }
}

/// A codec and an SRTP profile we share with an offer, or why not.
fn compatible(codecs: &[AudioCodec], profiles: &[SrtpProfile]) -> Result<(), String> {
    if !codecs.contains(&CODEC) {
        return Err("incompatible: no audio codec in common".into());
    }
    if !profiles
        .iter()
        .any(|p| SRTP_PROFILES.iter().any(|(q, _)| q == p))
    {
        return Err("incompatible: no SRTP profile in common".into());
    }
    Ok(())
}
