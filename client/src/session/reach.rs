//! Network reach inside the call: the direct path lost and found again.
//!
//! ```text
//!  our addresses changed ──network_changed──> rebind the agent (same credentials):
//!                                             new host candidates trickled, fresh
//!                                             checks, a new nomination (we control it)
//!  consent lost (PathLost) ──┐                or, no pair within ESCALATE_AFTER:
//!  no pair after a rebind ───┴──────────────> ICE restart: new ufrag/pwd and candidates,
//!                                             sealed `restart { generation }` -> peer
//!  peer's `restart { g }` ──> g > ours: restart too and answer with `restart { g }`
//!                             g = ours: take its credentials (glare, or the answer)
//!                             g < ours: stale, dropped
//!  no media on the pair for 1 s ──> server relay, the pair kept and probed with a
//!                                    consent check every 500 ms; answered: back
//!  while no pair: media on the server relay ("path lost, trying relay"); the caller
//!  restarts again after 3, 6, 12, 24, 24... s; a new pair selected: "back on direct"
//! ```
//!
//! The DTLS association and the SRTP contexts never change: only the
//! datagrams' way changes, and only authenticated media, an authenticated
//! STUN answer or a selected pair moves the media path.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cryptic_ice::Credentials;
use cryptic_signal::call::Role;
use cryptic_signal::payload::{Candidates, IceParams, Restart};

use super::{CallSession, Path, Sealer, SessionEvent};

/// After a network change, how long the rebound agent may take to find a
/// pair before ICE restarts through the signaling server.
pub(super) const ESCALATE_AFTER: Duration = Duration::from_secs(1);
/// While no pair is selected after a restart, the caller restarts again
/// after this long (the checks of a restart back off; a blackout may be
/// over), doubling each time up to [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(3);
/// The longest wait between two restarts of one loss (a peer that never
/// answers them, an older client, costs one sealed message this often).
pub(super) const RETRY_MAX: Duration = Duration::from_secs(24);
/// No authenticated media on the selected pair for this long, while media
/// flows every 20 ms, and the server relay takes over (the pair is kept).
pub(super) const SILENT_AFTER: Duration = Duration::from_secs(1);
/// A silent pair is probed with a consent check this often: an
/// authenticated answer brings media back on it.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(500);
/// A pair silent again within this long after it answered was not back.
pub(super) const REVIVAL_HELD: Duration = Duration::from_secs(3);
/// The longest wait before probing a pair that keeps falling silent.
pub(super) const HOLD_MAX: Duration = Duration::from_secs(16);

/// Why the direct path went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Loss {
    /// Consent expired on the selected pair.
    Consent,
    /// Our host addresses changed.
    Network,
    /// The peer restarted ICE.
    Peer,
    /// No authenticated media came on the selected pair for
    /// [`SILENT_AFTER`] (a blackout): the pair stays selected and is probed
    /// with consent checks until one is answered.
    Silent,
}

impl Loss {
    /// In words, for the user.
    pub(super) fn words(self) -> &'static str {
        match self {
            Loss::Consent => "path lost, trying relay",
            Loss::Network => "network changed, trying relay",
            Loss::Peer => "peer's path changed, trying relay",
            Loss::Silent => "no audio on the direct path, trying relay",
        }
    }
}

/// The reach state of one call.
#[derive(Debug, Default)]
pub(super) struct Reach {
    /// The ICE generation in use: 0 until the first restart, then the
    /// largest either side used.
    pub(super) generation: u32,
    /// The direct path went away and no new pair is selected yet.
    pub(super) lost: Option<Loss>,
    /// When to restart ICE (again).
    pub(super) restart_at: Option<Instant>,
    /// Our agent restarted: the next candidates go out in a `restart` with
    /// these credentials.
    pub(super) announce: Option<Credentials>,
    /// Restarts we started, and the peer's we answered or took.
    pub(super) restarts: u32,
    /// The wait before the caller's next restart of this loss.
    pub(super) retry_in: Option<Duration>,
    /// When the selected pair was found silent.
    pub(super) silent_since: Option<Instant>,
    /// When to probe the silent pair with a consent check again.
    pub(super) probe_at: Option<Instant>,
    /// When a silent pair last answered and got the media back.
    pub(super) revived_at: Option<Instant>,
    /// How long a pair that fell silent again soon after it answered waits
    /// before it is probed (doubling, so a pair that answers checks but
    /// carries no media does not flap).
    pub(super) hold: Duration,
}

impl<S: Sealer> CallSession<S> {
    /// Our host addresses changed (the driver polls them): the agent moves
    /// to `hosts` at once, checks the peer's candidates from there and
    /// trickles the new candidates; when no pair is found within a second,
    /// ICE restarts through the signaling server. Nothing happens when the
    /// addresses are the same.
    pub fn network_changed(&mut self, now: Instant, hosts: Vec<SocketAddr>) {
        if self.ended || hosts == self.config.hosts {
            return;
        }
        tracing::info!(count = hosts.len(), "host addresses changed");
        self.config.hosts = hosts;
        // A callee still ringing has no agent yet: it starts on the new
        // addresses.
        let Some(agent) = self.ice.as_mut() else {
            return;
        };
        agent.rebind(now, &self.config.hosts);
        // The rebind announces the new candidates; the old ones are void.
        self.local_pending.clear();
        self.local_done = false;
        if self.report.answered.is_some() {
            self.direct_lost(Loss::Network);
            // No restart while there is no network yet (the old address
            // gone, the new one not there, only loopback left): the peer
            // could not reach the new credentials' checks anyway, and the
            // rebind on the coming address needs the old ones.
            let offline = self.config.hosts.iter().all(|h| h.ip().is_loopback());
            self.reach.restart_at = match self.reach.lost {
                Some(_) if !offline => Some(now + ESCALATE_AFTER),
                _ => None,
            };
        }
        self.process(now);
    }

    /// When the direct path counts as silent, if media is on it.
    pub(super) fn direct_silent_at(&self) -> Option<Instant> {
        let watch = self.media.is_some()
            && matches!(self.path, Path::Ice(_))
            && self.signaling_up
            && !self.config.force_relay
            && self.reach.lost.is_none();
        self.direct_heard
            .filter(|_| watch)
            .map(|t| t + SILENT_AFTER)
    }

    /// The peer's media stopped coming on the pair (a blackout, or a path
    /// dead one way): media moves to the server relay at once instead of
    /// waiting 30 s for consent to expire, and comes back when the peer's
    /// media comes on the pair again.
    pub(super) fn check_direct_silence(&mut self, now: Instant) {
        if super::due(self.direct_silent_at(), now) {
            tracing::info!("no media on the ICE pair: server relay");
            self.enter_silent(now);
        }
        if self.reach.lost != Some(Loss::Silent) {
            self.reach.probe_at = None;
            return;
        }
        if super::due(self.reach.probe_at, now) {
            self.reach.probe_at = Some(now + PROBE_EVERY);
            if let Some(agent) = self.ice.as_mut() {
                agent.probe_consent(now);
            }
        }
    }

    /// The selected pair is silent: media through the relay, the pair
    /// probed from now on.
    pub(super) fn enter_silent(&mut self, now: Instant) {
        self.direct_lost(Loss::Silent);
        if self.reach.lost != Some(Loss::Silent) {
            return;
        }
        // Silent again soon after it answered: it answers checks but does
        // not carry the media; wait longer each time before believing it.
        let relapse = self
            .reach
            .revived_at
            .is_some_and(|t| now < t + REVIVAL_HELD);
        self.reach.hold = if relapse {
            (self.reach.hold * 2).clamp(Duration::from_secs(1), HOLD_MAX)
        } else {
            Duration::ZERO
        };
        self.reach.silent_since = Some(now);
        self.reach.probe_at = Some(now + self.reach.hold);
    }

    /// A silent pair answered a check after it fell silent: it works both
    /// ways again, media goes back on it.
    pub(super) fn direct_revived(&mut self, now: Instant) {
        if self.reach.lost != Some(Loss::Silent) {
            return;
        }
        let Some(agent) = self.ice.as_ref() else {
            return;
        };
        let (Some(fresh), Some(since)) = (agent.consent_fresh_since(), self.reach.silent_since)
        else {
            return;
        };
        if fresh > since + self.reach.hold {
            if let Some(kind) = agent.selected().map(|p| p.kind) {
                tracing::info!("the silent ICE pair answers again");
                self.direct_heard = Some(now);
                self.reach.probe_at = None;
                self.reach.revived_at = Some(now);
                self.direct_found(kind);
            }
        }
    }

    /// What the user should know about the path beyond its name (while the
    /// direct path is being found again).
    pub fn path_note(&self) -> Option<&'static str> {
        self.reach.lost.map(|l| match l {
            Loss::Silent => "no audio on the direct path, watching it",
            _ => "direct path lost, restarting ICE",
        })
    }

    /// The direct path went away: media goes through the server relay when
    /// it is up, and the user is told.
    pub(super) fn direct_lost(&mut self, loss: Loss) {
        match self.reach.lost {
            // The pair fell silent first (the old link went with its
            // address) and then the addresses changed: the user learns
            // the cause.
            Some(Loss::Silent) if loss == Loss::Network => {}
            Some(_) => return,
            None if !matches!(self.path, Path::Ice(_)) => return,
            None => {}
        }
        self.reach.lost = Some(loss);
        self.events
            .push_back(SessionEvent::DirectLost(loss.words()));
        if self.signaling_up {
            self.set_path(Path::Relay);
        }
    }

    /// ICE selected a pair: media takes it (unless the user forced the
    /// relay), and a lost direct path is back.
    pub(super) fn direct_found(&mut self, kind: cryptic_ice::PathKind) {
        if self.config.force_relay {
            return;
        }
        self.set_path(Path::Ice(kind));
        if self.reach.lost.take().is_some() {
            self.reach.restart_at = None;
            self.reach.retry_in = None;
            self.events.push_back(SessionEvent::DirectBack);
        }
    }

    /// Starts an ICE restart of the next generation (the sealed `restart`
    /// follows from the agent's `Restarted` event). Needs the signaling
    /// server: the peer learns the new credentials only from it.
    pub(super) fn restart_ice(&mut self, now: Instant) {
        if !self.signaling_up || self.report.answered.is_none() || self.ended {
            return;
        }
        let Some(agent) = self.ice.as_mut() else {
            return;
        };
        // A peer that jumped to the last generation leaves none to start.
        let Some(next) = self.reach.generation.checked_add(1) else {
            return;
        };
        self.reach.generation = next;
        self.reach.restarts = self.reach.restarts.saturating_add(1);
        tracing::info!(generation = self.reach.generation, "ICE restart");
        agent.restart(now);
        self.schedule_retry(now);
    }

    /// The caller restarts again while no pair comes (one side drives the
    /// retries, so they never cross), waiting twice as long each time.
    fn schedule_retry(&mut self, now: Instant) {
        if self.report.role != Role::Caller {
            self.reach.restart_at = None;
            return;
        }
        let wait = self.reach.retry_in.unwrap_or(RETRY_FIRST);
        self.reach.retry_in = Some((wait * 2).min(RETRY_MAX));
        self.reach.restart_at = Some(now + wait);
    }

    /// Timers of the reach: a rebind that found nothing, or a restart to
    /// try again.
    pub(super) fn reach_timeout(&mut self, now: Instant) {
        if !super::due(self.reach.restart_at, now) {
            return;
        }
        self.reach.restart_at = None;
        if self.reach.lost.is_some() {
            self.restart_ice(now);
        }
    }

    /// The peer's sealed `restart` (opened and checked).
    pub(super) fn on_restart(&mut self, now: Instant, restart: Restart) {
        let g = restart.generation;
        if self.report.answered.is_none() || self.ended || g == 0 || g < self.reach.generation {
            tracing::debug!(generation = g, "stale or early ICE restart dropped");
            return;
        }
        let creds = match Credentials::new(restart.ice.ice_ufrag, restart.ice.ice_pwd) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("ICE restart with bad credentials dropped: {e}");
                return;
            }
        };
        if self.ice.is_none() {
            return;
        }
        if g > self.reach.generation {
            // The peer restarted first: so do we, and answer with our new
            // description at its generation.
            self.reach.generation = g;
            self.reach.restarts = self.reach.restarts.saturating_add(1);
            self.direct_lost(Loss::Peer);
            if let Some(agent) = self.ice.as_mut() {
                agent.restart(now);
            }
            self.schedule_retry(now);
        }
        if let Some(agent) = self.ice.as_mut() {
            if let Err(e) = agent.set_remote_credentials(now, creds) {
                tracing::debug!("peer's restart credentials refused: {e}");
                return;
            }
        }
        self.add_remote(now, &restart.ice.candidates, restart.ice.end_of_candidates);
    }

    /// The peer's trickled candidates, if they belong to our generation.
    pub(super) fn on_candidates(&mut self, now: Instant, update: Candidates) {
        if update.generation != self.reach.generation {
            tracing::debug!(
                generation = update.generation,
                "candidates of another ICE generation dropped"
            );
            return;
        }
        self.add_remote(now, &update.candidates, update.end_of_candidates);
    }

    /// Our pending candidates as the body to seal: a `restart` right after
    /// our agent restarted, trickled `candidates` otherwise.
    pub(super) fn candidates_body(&mut self) -> cryptic_signal::payload::Body {
        use cryptic_signal::payload::Body;
        let candidates = std::mem::take(&mut self.local_pending);
        match self.reach.announce.take() {
            Some(c) => Body::Restart(Restart::new(
                self.reach.generation,
                IceParams::new(c.ufrag, c.pwd, candidates, self.local_done),
            )),
            None => Body::Candidates(
                Candidates::new(candidates, self.local_done).for_generation(self.reach.generation),
            ),
        }
    }
}
