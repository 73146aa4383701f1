//! The call state machine, sans-IO.
//!
//! ```text
//!            place_call                 call_answer            media_connected
//!   Idle ─────────────────> Inviting ───────────────> Connecting ──────────────> Active
//!     │  call_invite           │ reject / cancel / timeout  │ hangup / connect timeout │ hangup
//!     └──────────> Ringing ────┴──────────> Ended <─────────┴──────────────────────────┘
//!                     │ accept ─────────────> Connecting
//! ```
//!
//! # How to drive it
//!
//! One [`CallMachine`] per user. It does no I/O and never reads the clock:
//! every method takes `now`. After any call into it, drain
//! [`CallMachine::poll_transmit`] (send each [`Message`] on the signaling
//! connection) and [`CallMachine::poll_event`] (show the user, open sealed
//! payloads), then sleep until [`CallMachine::poll_timeout`] and call
//! [`CallMachine::handle_timeout`]. Feed every call message received from the
//! server to [`CallMachine::handle_message`]. Sealing and opening payloads is
//! the caller's job ([`crate::e2e`]): the machine carries [`Sealed`] values.
//!
//! Rules: one call at a time; a second incoming invite is answered
//! `call_reject busy`; an unanswered invite or an unanswered ring ends after
//! [`CallConfig::ring_timeout`] (45 s by default); an answered call that does
//! not reach media within [`CallConfig::connect_timeout`] ends. **Glare**: when
//! two users invite each other at once, the call whose `call_id` is smaller
//! (comparing the 16 bytes) survives on both sides; the side whose own invite
//! lost cancels it (`call_hangup` reason `glare`) and rings for the other.
//! Every state change is an [`CallEvent::State`] with its [`Reason`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::wire::{
    CallAnswer, CallHangup, CallIceCandidate, CallId, CallInvite, CallReject, ErrorCode,
    HangupReason, Message, RejectReason, Sealed, UserId,
};
use crate::Error;

/// Timeouts of the machine.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallConfig {
    /// How long an invite rings before it ends (both sides). Default 45 s.
    pub ring_timeout: Duration,
    /// How long an answered call may take to reach media. Default 30 s.
    pub connect_timeout: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(45),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The state of the current call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// No call.
    Idle,
    /// We invited; waiting for an answer.
    Inviting,
    /// We were invited; waiting for the user.
    Ringing,
    /// Answered; ICE/DTLS under way.
    Connecting,
    /// Media flows.
    Active,
    /// The call ended (a new one may start).
    Ended,
}

/// Which side we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We placed the call (and are the DTLS server).
    Caller,
    /// We were called (and are the DTLS client).
    Callee,
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The local user placed the call.
    Placed,
    /// A peer's invite arrived.
    Invited,
    /// The local user accepted.
    Accepted,
    /// The peer answered.
    Answered,
    /// The client reported media connected.
    MediaConnected,
    /// The local user hung up (or cancelled before the answer).
    LocalHangup,
    /// The peer hung up (or cancelled before the answer).
    RemoteHangup(Option<HangupReason>),
    /// The local user rejected.
    LocalReject(RejectReason),
    /// The peer rejected.
    RemoteReject(RejectReason),
    /// Nobody answered within the ring timeout.
    RingTimeout,
    /// Media did not connect within the connect timeout.
    ConnectTimeout,
    /// The client reported that media failed.
    MediaFailed,
    /// Our invite lost glare against the peer's (which now rings).
    GlareLost,
    /// The server refused a message of this call.
    ServerError(ErrorCode),
    /// We aborted: the peer's DTLS certificate did not match the
    /// fingerprint received end to end.
    SecurityAbort,
}

/// What the machine reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEvent {
    /// A transition of the current call.
    State {
        /// The call.
        call_id: CallId,
        /// The other user.
        peer: UserId,
        /// Old state.
        from: CallState,
        /// New state.
        to: CallState,
        /// Why.
        reason: Reason,
    },
    /// An incoming call (state is now Ringing): open `payload` (a [`crate::payload::Payload`]).
    Incoming {
        /// The call.
        call_id: CallId,
        /// The caller.
        from: UserId,
        /// Sealed offer.
        payload: Sealed,
    },
    /// The callee's answer (state is now Connecting): open `payload`.
    Answer {
        /// The call.
        call_id: CallId,
        /// Sealed answer.
        payload: Sealed,
    },
    /// A trickled candidate: open `payload` (a [`crate::payload::Payload`]).
    Candidate {
        /// The call.
        call_id: CallId,
        /// Sealed candidate update.
        payload: Sealed,
    },
    /// An invite arrived while busy and was answered `call_reject busy`.
    RejectedBusy {
        /// The refused call.
        call_id: CallId,
        /// Its caller.
        from: UserId,
    },
    /// Glare: the peer's invite lost against ours and was ignored.
    GlareWon {
        /// Our surviving call.
        kept: CallId,
        /// The peer's ignored call.
        dropped: CallId,
    },
}

#[derive(Clone, Debug)]
struct Call {
    id: CallId,
    peer: UserId,
    role: Role,
    state: CallState,
    deadline: Option<Instant>,
}

/// The sans-IO call state machine of one user. See the module docs for how to drive it.
#[derive(Debug)]
pub struct CallMachine {
    me: UserId,
    config: CallConfig,
    call: Option<Call>,
    transmit: VecDeque<Message>,
    events: VecDeque<CallEvent>,
}

impl CallMachine {
    /// A machine for user `me`.
    pub fn new(me: UserId, config: CallConfig) -> Self {
        Self {
            me,
            config,
            call: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> CallState {
        self.call.as_ref().map_or(CallState::Idle, |c| c.state)
    }

    /// The current (or last) call id, peer and our role.
    pub fn call(&self) -> Option<(CallId, &UserId, Role)> {
        self.call.as_ref().map(|c| (c.id, &c.peer, c.role))
    }

    fn busy(&self) -> bool {
        !matches!(self.state(), CallState::Idle | CallState::Ended)
    }

    fn set(&mut self, to: CallState, reason: Reason, deadline: Option<Instant>) {
        if let Some(c) = &mut self.call {
            let from = c.state;
            c.state = to;
            c.deadline = deadline;
            self.events.push_back(CallEvent::State {
                call_id: c.id,
                peer: c.peer.clone(),
                from,
                to,
                reason,
            });
        }
    }

    fn hangup_msg(&self, c: &Call, reason: HangupReason) -> Message {
        Message::CallHangup(CallHangup {
            call_id: c.id,
            from_user: self.me.clone(),
            to_user: c.peer.clone(),
            reason: Some(reason),
        })
    }

    fn reject_msg(&self, id: CallId, to: &UserId, reason: RejectReason) -> Message {
        Message::CallReject(CallReject {
            call_id: id,
            from_user: self.me.clone(),
            to_user: to.clone(),
            reason,
        })
    }

    /// Places a call to `peer` with a sealed offer. Only when idle or ended.
    pub fn place_call(
        &mut self,
        now: Instant,
        call_id: CallId,
        peer: UserId,
        offer: Sealed,
    ) -> Result<(), Error> {
        if self.busy() {
            return Err(Error::InvalidState("already in a call"));
        }
        self.transmit.push_back(Message::CallInvite(CallInvite {
            call_id,
            from_user: self.me.clone(),
            to_user: peer.clone(),
            encrypted_payload: offer,
        }));
        self.call = Some(Call {
            id: call_id,
            peer,
            role: Role::Caller,
            state: CallState::Idle,
            deadline: None,
        });
        self.set(
            CallState::Inviting,
            Reason::Placed,
            Some(now + self.config.ring_timeout),
        );
        Ok(())
    }

    /// Accepts the ringing call with a sealed answer.
    pub fn accept(&mut self, now: Instant, answer: Sealed) -> Result<(), Error> {
        let c = self
            .call
            .clone()
            .filter(|c| c.state == CallState::Ringing)
            .ok_or(Error::InvalidState("not ringing"))?;
        self.transmit.push_back(Message::CallAnswer(CallAnswer {
            call_id: c.id,
            from_user: self.me.clone(),
            to_user: c.peer,
            encrypted_payload: answer,
        }));
        self.set(
            CallState::Connecting,
            Reason::Accepted,
            Some(now + self.config.connect_timeout),
        );
        Ok(())
    }

    /// Rejects the ringing call.
    pub fn reject(&mut self, _now: Instant, reason: RejectReason) -> Result<(), Error> {
        let c = self
            .call
            .clone()
            .filter(|c| c.state == CallState::Ringing)
            .ok_or(Error::InvalidState("not ringing"))?;
        let m = self.reject_msg(c.id, &c.peer, reason);
        self.transmit.push_back(m);
        self.set(CallState::Ended, Reason::LocalReject(reason), None);
        Ok(())
    }

    /// Hangs up (or cancels before the answer, or declines while ringing).
    pub fn hangup(&mut self, now: Instant) -> Result<(), Error> {
        match self.state() {
            CallState::Ringing => self.reject(now, RejectReason::Declined),
            CallState::Inviting | CallState::Connecting | CallState::Active => {
                if let Some(c) = self.call.clone() {
                    let r = if c.state == CallState::Inviting {
                        HangupReason::Cancelled
                    } else {
                        HangupReason::Normal
                    };
                    let m = self.hangup_msg(&c, r);
                    self.transmit.push_back(m);
                }
                self.set(CallState::Ended, Reason::LocalHangup, None);
                Ok(())
            }
            _ => Err(Error::InvalidState("no call to hang up")),
        }
    }

    /// Sends a sealed candidate update to the peer (caller while inviting, both once answered).
    pub fn send_candidate(&mut self, payload: Sealed) -> Result<(), Error> {
        let c = self
            .call
            .as_ref()
            .filter(|c| {
                matches!(c.state, CallState::Connecting | CallState::Active)
                    || (c.state == CallState::Inviting && c.role == Role::Caller)
            })
            .ok_or(Error::InvalidState("no call to trickle to"))?;
        self.transmit
            .push_back(Message::CallIceCandidate(CallIceCandidate {
                call_id: c.id,
                from_user: self.me.clone(),
                to_user: c.peer.clone(),
                encrypted_candidate: payload,
            }));
        Ok(())
    }

    /// Media (DTLS with the right fingerprint, first SRTP) is up.
    pub fn media_connected(&mut self, _now: Instant) {
        if self.state() == CallState::Connecting {
            self.set(CallState::Active, Reason::MediaConnected, None);
        }
    }

    /// Media failed (fingerprint mismatch, consent lost): hang up.
    pub fn media_failed(&mut self, _now: Instant) {
        if let Some(c) = self
            .call
            .clone()
            .filter(|c| matches!(c.state, CallState::Connecting | CallState::Active))
        {
            let m = self.hangup_msg(&c, HangupReason::MediaFailed);
            self.transmit.push_back(m);
            self.set(CallState::Ended, Reason::MediaFailed, None);
        }
    }

    /// The DTLS certificate of the peer did not match the fingerprint it
    /// sent end to end: abort the call and tell the peer why.
    pub fn security_abort(&mut self, _now: Instant) {
        if let Some(c) = self
            .call
            .clone()
            .filter(|c| matches!(c.state, CallState::Connecting | CallState::Active))
        {
            let m = self.hangup_msg(&c, HangupReason::SecurityAbort);
            self.transmit.push_back(m);
            self.set(CallState::Ended, Reason::SecurityAbort, None);
        }
    }

    /// Feeds a message received from the server. Messages about other calls
    /// or from users other than the call's peer are ignored (stale).
    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        if let Message::CallInvite(inv) = msg {
            self.handle_invite(now, inv);
            return;
        }
        let Some(c) = self.call.clone() else { return };
        if msg.call_id() != Some(c.id) || c.state == CallState::Ended {
            return;
        }
        if let Some((from, _)) = msg.route() {
            if from != &c.peer {
                return;
            }
        }
        match msg {
            Message::CallAnswer(a) if c.state == CallState::Inviting => {
                self.events.push_back(CallEvent::Answer {
                    call_id: c.id,
                    payload: a.encrypted_payload,
                });
                self.set(
                    CallState::Connecting,
                    Reason::Answered,
                    Some(now + self.config.connect_timeout),
                );
            }
            Message::CallIceCandidate(ic) => {
                self.events.push_back(CallEvent::Candidate {
                    call_id: c.id,
                    payload: ic.encrypted_candidate,
                });
            }
            Message::CallReject(r) if c.state == CallState::Inviting => {
                self.set(CallState::Ended, Reason::RemoteReject(r.reason), None);
            }
            Message::CallHangup(h) => {
                self.set(CallState::Ended, Reason::RemoteHangup(h.reason), None)
            }
            // The server refused the invite (offline, rate limited, ...).
            // Errors about later messages (a relay frame over the cap) do
            // not end the call: the client sees them on the connection.
            Message::Error(e) if c.state == CallState::Inviting => {
                self.set(CallState::Ended, Reason::ServerError(e.code), None);
            }
            _ => {}
        }
    }

    fn handle_invite(&mut self, now: Instant, inv: CallInvite) {
        if inv.to_user != self.me {
            return;
        }
        match self.call.clone() {
            Some(c) if c.id == inv.call_id => {} // duplicate
            Some(c) if c.state == CallState::Inviting && c.peer == inv.from_user => {
                // Glare: the smaller call id survives on both sides.
                if inv.call_id < c.id {
                    let m = self.hangup_msg(&c, HangupReason::Glare);
                    self.transmit.push_back(m);
                    self.set(CallState::Ended, Reason::GlareLost, None);
                    self.ring(now, inv);
                } else {
                    self.events.push_back(CallEvent::GlareWon {
                        kept: c.id,
                        dropped: inv.call_id,
                    });
                }
            }
            _ if self.busy() => {
                let m = self.reject_msg(inv.call_id, &inv.from_user, RejectReason::Busy);
                self.transmit.push_back(m);
                self.events.push_back(CallEvent::RejectedBusy {
                    call_id: inv.call_id,
                    from: inv.from_user,
                });
            }
            _ => self.ring(now, inv),
        }
    }

    fn ring(&mut self, now: Instant, inv: CallInvite) {
        self.call = Some(Call {
            id: inv.call_id,
            peer: inv.from_user.clone(),
            role: Role::Callee,
            state: CallState::Idle,
            deadline: None,
        });
        self.set(
            CallState::Ringing,
            Reason::Invited,
            Some(now + self.config.ring_timeout),
        );
        self.events.push_back(CallEvent::Incoming {
            call_id: inv.call_id,
            from: inv.from_user,
            payload: inv.encrypted_payload,
        });
    }

    /// Fires due timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(c) = self.call.clone() else { return };
        if c.deadline.is_none_or(|d| now < d) {
            return;
        }
        match c.state {
            CallState::Inviting => {
                let m = self.hangup_msg(&c, HangupReason::Timeout);
                self.transmit.push_back(m);
                self.set(CallState::Ended, Reason::RingTimeout, None);
            }
            CallState::Ringing => {
                let m = self.reject_msg(c.id, &c.peer, RejectReason::Timeout);
                self.transmit.push_back(m);
                self.set(CallState::Ended, Reason::RingTimeout, None);
            }
            CallState::Connecting => {
                let m = self.hangup_msg(&c, HangupReason::MediaFailed);
                self.transmit.push_back(m);
                self.set(CallState::Ended, Reason::ConnectTimeout, None);
            }
            _ => {}
        }
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    /// When [`CallMachine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.call.as_ref().and_then(|c| c.deadline)
    }
}
