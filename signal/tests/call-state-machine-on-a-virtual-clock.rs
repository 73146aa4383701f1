#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! The sans-IO call state machine driven on a virtual clock: messages are
//! routed between machines in memory by `to_user`, time only moves when the
//! test moves it, randomness is seeded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cryptic_signal::call::{CallConfig, CallEvent, CallMachine, CallState, Reason, Role};
use cryptic_signal::wire::{CallId, HangupReason, Message, RejectReason, Sealed, UserId};
use rand::{Rng, SeedableRng};

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn sealed(tag: u8) -> Sealed {
    Sealed::new(1, &[tag; 8]).unwrap()
}

/// Machines plus an in-memory network and a virtual clock.
struct World {
    now: Instant,
    machines: Vec<CallMachine>,
    events: Vec<Vec<CallEvent>>,
    wire: VecDeque<Message>,
}

impl World {
    fn new(names: &[&str]) -> Self {
        Self {
            now: Instant::now(),
            machines: names
                .iter()
                .map(|n| CallMachine::new(user(n), CallConfig::default()))
                .collect(),
            events: names.iter().map(|_| Vec::new()).collect(),
            wire: VecDeque::new(),
        }
    }

    fn idx(&self, u: &UserId) -> usize {
        ["alice", "bob", "carol"]
            .iter()
            .position(|n| *n == u.as_str())
            .unwrap()
    }

    /// Collects what every machine wants to send (not yet delivered).
    fn collect(&mut self) {
        for (i, m) in self.machines.iter_mut().enumerate() {
            while let Some(t) = m.poll_transmit() {
                self.wire.push_back(t);
            }
            while let Some(e) = m.poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Delivers everything in flight until quiet.
    fn settle(&mut self) {
        for _ in 0..100 {
            self.collect();
            let Some(m) = self.wire.pop_front() else {
                return;
            };
            let (_, to) = m.route().unwrap();
            let i = self.idx(to);
            self.machines[i].handle_message(self.now, m);
        }
        panic!("network did not settle");
    }

    /// Jumps the clock to the earliest timeout and fires it.
    fn advance_to_next_timeout(&mut self) -> Duration {
        let next = self
            .machines
            .iter()
            .filter_map(|m| m.poll_timeout())
            .min()
            .unwrap();
        let d = next - self.now;
        self.now = next;
        for m in &mut self.machines {
            m.handle_timeout(self.now);
        }
        self.settle();
        d
    }

    fn transitions(&self, i: usize) -> Vec<(CallState, Reason)> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                CallEvent::State { to, reason, .. } => Some((*to, *reason)),
                _ => None,
            })
            .collect()
    }
}

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

fn id(n: u8) -> CallId {
    let mut b = [n; 16];
    b[6] = 0x40 | (n & 0x0f);
    CallId::from_bytes(b)
}

#[test]
fn invite_answer_connect_and_hangup_walk_every_state_with_reasons() {
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.machines[ALICE].send_candidate(sealed(9)).unwrap();
    w.settle();
    assert_eq!(w.machines[BOB].state(), CallState::Ringing);
    assert!(w.events[BOB].iter().any(|e| matches!(e, CallEvent::Incoming { from, payload, .. } if from.as_str() == "alice" && *payload == sealed(1))));
    assert!(w.events[BOB]
        .iter()
        .any(|e| matches!(e, CallEvent::Candidate { payload, .. } if *payload == sealed(9))));
    w.machines[BOB].accept(now, sealed(2)).unwrap();
    w.settle();
    assert!(w.events[ALICE]
        .iter()
        .any(|e| matches!(e, CallEvent::Answer { payload, .. } if *payload == sealed(2))));
    assert_eq!(w.machines[ALICE].state(), CallState::Connecting);
    assert_eq!(w.machines[ALICE].call().unwrap().2, Role::Caller);
    assert_eq!(w.machines[BOB].call().unwrap().2, Role::Callee);
    w.machines[ALICE].media_connected(now);
    w.machines[BOB].media_connected(now);
    w.machines[BOB].hangup(now).unwrap();
    w.settle();
    assert_eq!(
        w.transitions(ALICE),
        vec![
            (CallState::Inviting, Reason::Placed),
            (CallState::Connecting, Reason::Answered),
            (CallState::Active, Reason::MediaConnected),
            (
                CallState::Ended,
                Reason::RemoteHangup(Some(HangupReason::Normal))
            ),
        ]
    );
    assert_eq!(
        w.transitions(BOB),
        vec![
            (CallState::Ringing, Reason::Invited),
            (CallState::Connecting, Reason::Accepted),
            (CallState::Active, Reason::MediaConnected),
            (CallState::Ended, Reason::LocalHangup),
        ]
    );
    // A new call can start after the end.
    w.machines[BOB]
        .place_call(now, id(2), user("alice"), sealed(3))
        .unwrap();
    assert_eq!(w.machines[BOB].state(), CallState::Inviting);
}

#[test]
fn an_unanswered_invite_ends_on_both_sides_after_the_45_second_ring_timeout() {
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    let waited = w.advance_to_next_timeout();
    assert_eq!(waited, Duration::from_secs(45));
    assert_eq!(w.machines[ALICE].state(), CallState::Ended);
    assert_eq!(w.machines[BOB].state(), CallState::Ended);
    assert_eq!(w.transitions(ALICE).last().unwrap().1, Reason::RingTimeout);
    assert_eq!(w.transitions(BOB).last().unwrap().1, Reason::RingTimeout);
    assert_eq!(w.machines[ALICE].poll_timeout(), None);
}

#[test]
fn the_caller_cancels_before_the_answer_and_the_callee_stops_ringing() {
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    w.now += Duration::from_secs(3);
    w.machines[ALICE].hangup(w.now).unwrap();
    w.settle();
    assert_eq!(
        w.transitions(BOB).last().unwrap(),
        &(
            CallState::Ended,
            Reason::RemoteHangup(Some(HangupReason::Cancelled))
        )
    );
    assert!(w.machines[BOB].accept(w.now, sealed(2)).is_err());
}

#[test]
fn the_callee_declines_and_the_caller_sees_the_reason() {
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    w.machines[BOB].reject(now, RejectReason::Declined).unwrap();
    w.settle();
    assert_eq!(
        w.transitions(ALICE).last().unwrap(),
        &(
            CallState::Ended,
            Reason::RemoteReject(RejectReason::Declined)
        )
    );
}

#[test]
fn a_user_already_in_a_call_answers_a_second_invite_busy() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    w.machines[BOB].accept(now, sealed(2)).unwrap();
    w.settle();
    w.machines[CAROL]
        .place_call(now, id(3), user("bob"), sealed(3))
        .unwrap();
    w.settle();
    assert!(w.events[BOB]
        .iter()
        .any(|e| matches!(e, CallEvent::RejectedBusy { call_id, .. } if *call_id == id(3))));
    assert_eq!(
        w.transitions(CAROL).last().unwrap(),
        &(CallState::Ended, Reason::RemoteReject(RejectReason::Busy))
    );
    assert_eq!(w.machines[BOB].state(), CallState::Connecting);
    assert_eq!(w.machines[ALICE].state(), CallState::Connecting);
}

#[test]
fn glare_leaves_exactly_one_call_for_any_pair_of_ids_and_delivery_order() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for round in 0..200 {
        let mut w = World::new(&["alice", "bob"]);
        let now = w.now;
        let (a, b) = (CallId::random(&mut rng), CallId::random(&mut rng));
        w.machines[ALICE]
            .place_call(now, a, user("bob"), sealed(1))
            .unwrap();
        w.machines[BOB]
            .place_call(now, b, user("alice"), sealed(2))
            .unwrap();
        w.collect();
        // Both invites cross in flight; deliver them in a random order.
        if rng.random::<bool>() {
            w.wire.make_contiguous().reverse();
        }
        w.settle();
        let winner = a.min(b);
        let (caller, callee) = if winner == a {
            (ALICE, BOB)
        } else {
            (BOB, ALICE)
        };
        assert_eq!(
            w.machines[caller].state(),
            CallState::Inviting,
            "round {round}"
        );
        assert_eq!(
            w.machines[callee].state(),
            CallState::Ringing,
            "round {round}"
        );
        assert_eq!(w.machines[callee].call().unwrap().0, winner);
        assert!(w
            .transitions(callee)
            .contains(&(CallState::Ended, Reason::GlareLost)));
        // The surviving call completes normally.
        w.machines[callee].accept(now, sealed(3)).unwrap();
        w.settle();
        assert_eq!(
            w.machines[caller].state(),
            CallState::Connecting,
            "round {round}"
        );
        assert_eq!(w.machines[caller].call().unwrap().0, winner);
    }
}

#[test]
fn an_answered_call_that_never_connects_ends_after_the_connect_timeout() {
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    w.now += Duration::from_secs(10);
    w.machines[BOB].accept(w.now, sealed(2)).unwrap();
    w.settle();
    let waited = w.advance_to_next_timeout();
    assert_eq!(waited, Duration::from_secs(30));
    assert_eq!(w.machines[ALICE].state(), CallState::Ended);
    assert_eq!(w.machines[BOB].state(), CallState::Ended);
}

#[test]
fn messages_about_other_calls_or_from_other_users_are_ignored() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    let stale = Message::CallHangup(cryptic_signal::wire::CallHangup {
        call_id: id(7),
        from_user: user("bob"),
        to_user: user("alice"),
        reason: None,
    });
    w.machines[ALICE].handle_message(now, stale);
    let spoof = Message::CallHangup(cryptic_signal::wire::CallHangup {
        call_id: id(1),
        from_user: user("carol"),
        to_user: user("alice"),
        reason: None,
    });
    w.machines[ALICE].handle_message(now, spoof);
    assert_eq!(w.machines[ALICE].state(), CallState::Inviting);
}

#[test]
fn a_refused_invite_ends_the_call_but_a_relay_error_later_does_not() {
    use cryptic_signal::wire::ErrorCode;
    let mut w = World::new(&["alice", "bob"]);
    let now = w.now;
    w.machines[ALICE]
        .place_call(now, id(1), user("bob"), sealed(1))
        .unwrap();
    w.collect();
    w.wire.clear();
    w.machines[ALICE].handle_message(
        now,
        Message::error(ErrorCode::UserOffline, "offline", Some(id(1))),
    );
    w.collect();
    assert_eq!(
        w.transitions(ALICE).last().unwrap(),
        &(
            CallState::Ended,
            Reason::ServerError(ErrorCode::UserOffline)
        )
    );

    w.machines[ALICE]
        .place_call(now, id(2), user("bob"), sealed(1))
        .unwrap();
    w.settle();
    w.machines[BOB].accept(now, sealed(2)).unwrap();
    w.settle();
    w.machines[ALICE].handle_message(
        now,
        Message::error(ErrorCode::RelayLimit, "cap", Some(id(2))),
    );
    assert_eq!(w.machines[ALICE].state(), CallState::Connecting);
}
