//! Whole calls, session to session, on a virtual clock: 1,024 seeded calls
//! over a seeded in-memory network and a fake signaling hub, each asserting
//! both sides' outcomes, the SAS and the audio delivered. See `kit` for the
//! world they run in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;

use std::time::Duration;

use cryptic_call::history::Outcome;
use cryptic_call::session::SessionEvent;
use cryptic_signal::call::CallState;
use kit::{Action, NetConfig, Users, When, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const DAVE: usize = 3;

/// The kinds of call, one per seed modulo their number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    CallerHangsUp,
    CalleeHangsUp,
    Rejected,
    Busy,
    Cancelled,
    Missed,
    Offline,
    Glare,
    CallerHangsUpWhileConnecting,
    CalleeHangsUpWhileConnecting,
    UdpBlocked,
    BothBehindNat,
    CalleeBehindNat,
    ShortBlackout,
    LongBlackout,
    DtlsManInTheMiddle,
    DtlsAttackerOnUdp,
    ServerDiesMidCall,
}

const KINDS: [Kind; 18] = [
    Kind::CallerHangsUp,
    Kind::CalleeHangsUp,
    Kind::Rejected,
    Kind::Busy,
    Kind::Cancelled,
    Kind::Missed,
    Kind::Offline,
    Kind::Glare,
    Kind::CallerHangsUpWhileConnecting,
    Kind::CalleeHangsUpWhileConnecting,
    Kind::UdpBlocked,
    Kind::BothBehindNat,
    Kind::CalleeBehindNat,
    Kind::ShortBlackout,
    Kind::LongBlackout,
    Kind::DtlsManInTheMiddle,
    Kind::DtlsAttackerOnUdp,
    Kind::ServerDiesMidCall,
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs one seeded call and checks it; returns the virtual time it took.
fn one_call(users: &mut Users, seed: u64) -> Duration {
    let kind = KINDS[(seed % KINDS.len() as u64) as usize];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut net = NetConfig {
        loss: rng.random_range(0.0..0.05),
        delay: ms(rng.random_range(5..80)),
        jitter: ms(rng.random_range(0..30)),
        ..NetConfig::default()
    };
    match kind {
        Kind::UdpBlocked => net.udp_blocked = true,
        Kind::BothBehindNat => net.natted = vec![ALICE, BOB],
        Kind::CalleeBehindNat => net.natted = vec![BOB],
        Kind::ShortBlackout => net.blackouts = vec![(ms(6_000), ms(8_000))],
        Kind::LongBlackout => net.blackouts = vec![(ms(5_000), ms(120_000))],
        Kind::DtlsManInTheMiddle => net.dtls_mitm = true,
        Kind::DtlsAttackerOnUdp => net.udp_dtls_attacker = true,
        _ => {}
    }
    let ring = if kind == Kind::Missed { 5 } else { 20 };
    let mut w = World::new(users, net, seed, |_, mut c| {
        c.ring_timeout = Duration::from_secs(ring);
        c
    });
    if kind == Kind::Offline {
        w.offline(DAVE);
    }
    let answer = ms(rng.random_range(50..2_000));
    // At least 1.5 s: a loss-free 20 frames after a DTLS flight lost twice
    // (2 x 400 ms) at 5% loss.
    let talk = ms(rng.random_range(1_500..4_000));
    let ringing = When::After(CallState::Ringing, answer);
    let active = When::After(CallState::Active, talk);
    w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
    match kind {
        Kind::CallerHangsUp
        | Kind::UdpBlocked
        | Kind::BothBehindNat
        | Kind::CalleeBehindNat
        | Kind::DtlsManInTheMiddle
        | Kind::DtlsAttackerOnUdp => {
            w.at(BOB, ringing, Action::Accept);
            w.at(ALICE, active, Action::Hangup);
        }
        Kind::CalleeHangsUp => {
            w.at(BOB, ringing, Action::Accept);
            w.at(BOB, active, Action::Hangup);
        }
        Kind::Rejected => w.at(BOB, ringing, Action::Reject),
        Kind::Busy => {
            // Carol rings bob first; alice's call finds him busy.
            w.clear_actions();
            w.at(CAROL, When::At(Duration::ZERO), Action::Call(BOB));
            w.at(ALICE, When::At(ms(500)), Action::Call(BOB));
            w.at(
                CAROL,
                When::After(CallState::Inviting, ms(3_000)),
                Action::Hangup,
            );
        }
        Kind::Cancelled => w.at(
            ALICE,
            When::After(CallState::Inviting, answer),
            Action::Hangup,
        ),
        Kind::Missed => {}
        Kind::Offline => {
            w.clear_actions();
            w.at(ALICE, When::At(Duration::ZERO), Action::Call(DAVE));
        }
        Kind::Glare => {
            // Both dial within 4 ms: the invites cross at the hub.
            w.at(
                BOB,
                When::At(ms(rng.random_range(0..4))),
                Action::Call(ALICE),
            );
            w.at(ALICE, active, Action::Hangup);
        }
        Kind::CallerHangsUpWhileConnecting => {
            w.at(BOB, ringing, Action::Accept);
            w.at(
                ALICE,
                When::After(CallState::Connecting, ms(1)),
                Action::Hangup,
            );
        }
        Kind::CalleeHangsUpWhileConnecting => {
            w.at(BOB, ringing, Action::Accept);
            w.at(
                BOB,
                When::After(CallState::Connecting, ms(1)),
                Action::Hangup,
            );
        }
        Kind::ShortBlackout => {
            w.at(
                BOB,
                When::After(CallState::Ringing, ms(100)),
                Action::Accept,
            );
            w.at(
                ALICE,
                When::After(CallState::Active, ms(10_000)),
                Action::Hangup,
            );
        }
        Kind::LongBlackout => {
            w.at(
                BOB,
                When::After(CallState::Ringing, ms(100)),
                Action::Accept,
            );
            w.at(
                ALICE,
                When::After(CallState::Active, ms(45_000)),
                Action::Hangup,
            );
        }
        Kind::ServerDiesMidCall => {
            w.at(
                BOB,
                When::After(CallState::Ringing, ms(100)),
                Action::Accept,
            );
            w.hub_dies = Some(ms(4_000));
            w.at(
                ALICE,
                When::After(CallState::Active, ms(6_000)),
                Action::Hangup,
            );
        }
    }
    let took = w.run(Duration::from_secs(180));
    if std::env::var_os("CRYPTIC_SEED").is_some() {
        for (i, n) in w.nodes.iter().enumerate() {
            println!("node {i}: {:?} events {:?}", n.session, n.events);
        }
        println!(
            "took {took:?}, {} datagrams, {} relayed",
            w.datagrams, w.relayed
        );
    }
    check(&w, kind, seed);
    took
}

fn check(w: &World<'_>, kind: Kind, seed: u64) {
    let (a, b, c) = (w.report(ALICE), w.report(BOB), w.report(CAROL));
    let ctx = format!(
        "seed {seed} {kind:?}: alice {:?} ({}) path {:?}, bob {:?} ({}) path {:?}",
        a.outcome, a.reason, a.path, b.outcome, b.reason, b.path
    );
    let talked = |path: &str| {
        assert_eq!(a.outcome, Outcome::Completed, "{ctx}");
        assert_eq!(b.outcome, Outcome::Completed, "{ctx}");
        assert!(
            a.sas.is_some() && a.sas == b.sas,
            "{ctx}: SAS {:?} / {:?}",
            a.sas,
            b.sas
        );
        assert!(
            a.frames_played >= 20 && b.frames_played >= 20,
            "{ctx}: frames played {} / {}",
            a.frames_played,
            b.frames_played
        );
        assert_eq!(a.path, Some(path), "{ctx}");
        assert_eq!(b.path, Some(path), "{ctx}");
    };
    match kind {
        Kind::CallerHangsUp | Kind::CalleeHangsUp | Kind::Glare | Kind::ShortBlackout => {
            talked("direct")
        }
        Kind::CalleeBehindNat => talked("direct"),
        Kind::UdpBlocked | Kind::BothBehindNat | Kind::LongBlackout => talked("server-relay"),
        Kind::ServerDiesMidCall => {
            talked("direct");
            assert!(
                w.nodes[ALICE].events.contains(&SessionEvent::SignalingLost),
                "{ctx}"
            );
        }
        Kind::Rejected => {
            assert_eq!(a.outcome, Outcome::Rejected, "{ctx}");
            assert_eq!(b.outcome, Outcome::Rejected, "{ctx}");
            assert_eq!(
                (a.reason.as_str(), b.reason.as_str()),
                ("bob declined", "you declined")
            );
        }
        Kind::Busy => {
            assert_eq!(a.outcome, Outcome::Busy, "{ctx}");
            assert!(
                w.nodes[BOB].events.iter().any(|e| matches!(e,
                    SessionEvent::MissedWhileBusy { from } if from.as_str() == "alice")),
                "{ctx}"
            );
            assert_eq!(c.outcome, Outcome::Cancelled, "{ctx}");
            assert_eq!(b.outcome, Outcome::Cancelled, "{ctx}");
        }
        Kind::Cancelled => {
            assert_eq!(a.outcome, Outcome::Cancelled, "{ctx}");
            assert_eq!(b.outcome, Outcome::Cancelled, "{ctx}");
        }
        Kind::Missed => {
            assert_eq!(a.outcome, Outcome::Missed, "{ctx}");
            assert_eq!(b.outcome, Outcome::Missed, "{ctx}");
            assert_eq!(a.reason, "bob did not answer", "{ctx}");
            assert_eq!(b.reason, "missed call from alice", "{ctx}");
        }
        Kind::Offline => {
            assert_eq!(a.outcome, Outcome::Offline, "{ctx}");
            assert!(a.reason.contains("offline"), "{ctx}");
        }
        Kind::CallerHangsUpWhileConnecting | Kind::CalleeHangsUpWhileConnecting => {
            assert_eq!(a.outcome, Outcome::Completed, "{ctx}");
            assert_eq!(b.outcome, Outcome::Completed, "{ctx}");
            assert!(a.frames_played < 20 && b.frames_played < 20, "{ctx}");
        }
        Kind::DtlsManInTheMiddle => {
            assert_eq!(a.outcome, Outcome::SecurityAbort, "{ctx}");
            assert_eq!(b.outcome, Outcome::SecurityAbort, "{ctx}");
            assert_eq!(a.frames_played + b.frames_played, 0, "{ctx}");
        }
        // The handshake started on the relay, where this attacker is
        // not: its records on the pair are dropped (the call talks) or,
        // when they reached the caller before the honest ones, named.
        Kind::DtlsAttackerOnUdp if a.outcome == Outcome::SecurityAbort => {
            assert_eq!(b.outcome, Outcome::SecurityAbort, "{ctx}");
            assert_eq!(a.frames_played + b.frames_played, 0, "{ctx}");
        }
        Kind::DtlsAttackerOnUdp => {
            assert_eq!(a.outcome, Outcome::Completed, "{ctx}");
            assert!(a.sas.is_some() && a.sas == b.sas, "{ctx}");
            assert!(a.frames_played >= 20 && b.frames_played >= 20, "{ctx}");
        }
    }
}

/// Runs `count` seeded calls from `first` between the same four users
/// (their end-to-end sessions ratchet on from call to call).
fn calls(first: u64, count: u64) {
    let mut users = Users::new(&["alice", "bob", "carol", "dave"]);
    let started = std::time::Instant::now();
    let mut virtual_time = Duration::ZERO;
    for seed in first..first + count {
        virtual_time += one_call(&mut users, seed);
    }
    println!(
        "{count} calls (seeds {first}..{}): {virtual_time:?} of virtual time in {:?}",
        first + count,
        started.elapsed()
    );
}

#[test]
fn seeded_calls_0_to_127_end_as_each_side_expects() {
    calls(0, 128);
}

#[test]
fn seeded_calls_128_to_255_end_as_each_side_expects() {
    calls(128, 128);
}

#[test]
fn seeded_calls_256_to_383_end_as_each_side_expects() {
    calls(256, 128);
}

#[test]
fn seeded_calls_384_to_511_end_as_each_side_expects() {
    calls(384, 128);
}

#[test]
fn seeded_calls_512_to_639_end_as_each_side_expects() {
    calls(512, 128);
}

#[test]
fn seeded_calls_640_to_767_end_as_each_side_expects() {
    calls(640, 128);
}

#[test]
fn seeded_calls_768_to_895_end_as_each_side_expects() {
    calls(768, 128);
}

#[test]
fn seeded_calls_896_to_1023_end_as_each_side_expects() {
    calls(896, 128);
}

/// One seed (0 by default), to look at a failure with its events printed:
/// `CRYPTIC_SEED=373 cargo test -p cryptic-call --test
/// whole-calls-on-virtual-time one_seed -- --nocapture`.
#[test]
fn one_seed() {
    let seed = std::env::var("CRYPTIC_SEED").map_or(0, |s| s.parse().unwrap());
    let mut users = Users::new(&["alice", "bob", "carol", "dave"]);
    println!("took {:?}", one_call(&mut users, seed));
}
