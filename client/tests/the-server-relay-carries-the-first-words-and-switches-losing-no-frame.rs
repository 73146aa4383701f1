//! The server relay as a path, on a virtual clock: a call starts on the
//! relay as soon as it is answered (DTLS and the first frames do not wait
//! for ICE), moves to the ICE pair once one is selected, goes back to the
//! relay during a blackout and leaves it again when the pair answers.
//!
//! Measured per seed and printed: from the answer to the first frame the
//! caller plays, with the relay first and with the relay only as a
//! fallback (`relay_first = false`); the frames of the peer that never
//! played around each path switch. Checked: the relay never makes the first
//! frame later, the calls end on the direct path, and no switch loses more
//! than one frame (frames sent into a blackout are the blackout's, counted
//! apart).
//!
//! `cargo test -p cryptic-call --test the-server-relay-carries-the-first-words-and-switches-losing-no-frame -- --nocapture`
//! (`CRYPTIC_SEEDS=200` for more seeds than 8; `SWITCH_DEBUG=1` prints
//! when each missing frame was sent beside both sides' path changes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;

use std::time::{Duration, Instant};

use cryptic_call::history::Outcome;
use cryptic_call::session::SessionEvent;
use cryptic_signal::call::CallState;
use kit::{Action, NetConfig, Node, Users, When, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALICE: usize = 0;
const BOB: usize = 1;

fn seeds() -> u64 {
    std::env::var("CRYPTIC_SEEDS").map_or(8, |s| s.parse().unwrap())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A seeded loss-free network: 10 to 60 ms one way, up to 10 ms jitter
/// (loss would hide what the switches lose).
fn net(seed: u64) -> NetConfig {
    let mut rng = StdRng::seed_from_u64(seed);
    NetConfig {
        delay: ms(rng.random_range(10..60)),
        jitter: ms(rng.random_range(0..10)),
        ..NetConfig::default()
    }
}

/// What one call measured.
struct Measured {
    /// From the answer to the first frame alice (the caller) played.
    first_frame: Duration,
    /// Whether that frame came before alice's path went direct.
    first_on_relay: bool,
    /// Path switches per side (to the relay or away from it).
    switches: [usize; 2],
    /// The peer's frames never played per side, outside any blackout.
    lost: [usize; 2],
    /// The peer's frames never played that were sent in a blackout (or in
    /// the second it takes to find the pair silent after one).
    lost_in_blackout: [usize; 2],
}

/// The peer's frames that `n` never played between its first and last
/// played frame, as their send times.
fn missing(n: &Node<'_>, peer: &Node<'_>) -> Vec<Instant> {
    let (Some(first), Some(last)) = (n.played_no.iter().min(), n.played_no.iter().max()) else {
        return Vec::new();
    };
    (*first..=*last)
        .filter(|no| !n.played_no.contains(no))
        .filter_map(|no| peer.sent.get(no as usize - 1).copied())
        .collect()
}

fn call(seed: u64, relay_first: bool, net: NetConfig) -> Measured {
    let blackouts = net.blackouts.clone();
    let mut users = Users::new(&["alice", "bob"]);
    let mut w = World::new(&mut users, net, seed, |_, mut c| {
        c.relay_first = relay_first;
        // As the client: the audio side honours the buffer's requests.
        c.time_stretch = true;
        c
    });
    w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
    w.at(
        BOB,
        When::After(CallState::Ringing, ms(100)),
        Action::Accept,
    );
    w.at(
        ALICE,
        When::After(CallState::Active, Duration::from_secs(12)),
        Action::Hangup,
    );
    w.run(Duration::from_secs(60));
    let ctx = format!("seed {seed} relay_first {relay_first}");
    for i in [ALICE, BOB] {
        let r = w.report(i);
        assert_eq!(
            r.outcome,
            Outcome::Completed,
            "{ctx} node {i}: {}",
            r.reason
        );
        assert_eq!(r.path, Some("direct"), "{ctx} node {i}");
        // Nobody is told of a relay that only carried the start.
        let ev = &w.nodes[i].events;
        if blackouts.is_empty() {
            assert!(
                !ev.contains(&SessionEvent::PathChanged("server-relay")),
                "{ctx} node {i}: {ev:?}"
            );
        }
    }
    let answered = w.report(ALICE).answered.unwrap();
    let first = w.nodes[ALICE].played[0];
    let direct = w.nodes[ALICE]
        .event_times
        .iter()
        .zip(&w.nodes[ALICE].events)
        .find(|(_, e)| **e == SessionEvent::PathChanged("direct"))
        .map(|(t, _)| *t);
    let in_blackout = |t: Instant| {
        let t = t - w.start;
        blackouts
            .iter()
            .any(|(a, b)| *a <= t && t < *b + Duration::from_millis(1200))
    };
    let mut m = Measured {
        first_frame: first - answered,
        first_on_relay: direct.is_none_or(|d| first < d),
        switches: [0; 2],
        lost: [0; 2],
        lost_in_blackout: [0; 2],
    };
    for (i, peer) in [(ALICE, BOB), (BOB, ALICE)] {
        let gone = missing(&w.nodes[i], &w.nodes[peer]);
        if std::env::var_os("SWITCH_DEBUG").is_some() {
            let ev: Vec<_> = w.nodes[i]
                .events
                .iter()
                .zip(&w.nodes[i].event_times)
                .filter(|(e, _)| matches!(e, SessionEvent::PathChanged(_)))
                .map(|(e, t)| (format!("{e:?}"), *t - w.start))
                .collect();
            let pev: Vec<_> = w.nodes[peer]
                .events
                .iter()
                .zip(&w.nodes[peer].event_times)
                .filter(|(e, _)| matches!(e, SessionEvent::PathChanged(_)))
                .map(|(e, t)| (format!("{e:?}"), *t - w.start))
                .collect();
            let g: Vec<_> = gone.iter().map(|t| *t - w.start).collect();
            eprintln!("{ctx} node {i}: missing sent at {g:?}; mine {ev:?}; peer {pev:?}; first played {:?}", w.nodes[i].played[0] - w.start);
        }
        m.lost_in_blackout[i] = gone.iter().filter(|t| in_blackout(**t)).count();
        m.lost[i] = gone.len() - m.lost_in_blackout[i];
        // The relay at the start counts as a switch away from it.
        m.switches[i] = w.nodes[i]
            .events
            .iter()
            .filter(|e| matches!(e, SessionEvent::PathChanged(_)))
            .count();
    }
    m
}

#[test]
fn the_first_frames_go_through_the_relay_and_the_move_to_the_pair_loses_none() {
    let mut first = Vec::new();
    for seed in 0..seeds() {
        let with = call(seed, true, net(seed));
        let without = call(seed, false, net(seed));
        println!(
            "seed {seed}: first frame {:?} after the answer with the relay first \
             (on the relay: {}), {:?} without; frames lost at the switch {:?} over {:?} switches",
            with.first_frame, with.first_on_relay, without.first_frame, with.lost, with.switches
        );
        assert!(
            with.first_frame <= without.first_frame,
            "seed {seed}: {:?} > {:?}",
            with.first_frame,
            without.first_frame
        );
        for i in [ALICE, BOB] {
            assert!(
                with.lost[i] <= with.switches[i].max(1),
                "seed {seed} node {i}: {} frames lost over {} switches",
                with.lost[i],
                with.switches[i]
            );
        }
        first.push((with.first_frame, without.first_frame, with.first_on_relay));
    }
    first.sort();
    let on_relay = first.iter().filter(|f| f.2).count();
    let median = |v: Vec<Duration>| {
        let mut v = v;
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "first frame after the answer, median of {}: {:?} with the relay first ({} of them \
         carried by the relay), {:?} with the relay as a fallback only",
        first.len(),
        median(first.iter().map(|f| f.0).collect()),
        on_relay,
        median(first.iter().map(|f| f.1).collect()),
    );
}

#[test]
fn a_blackout_moves_the_call_to_the_relay_and_back_losing_at_most_a_frame_per_switch() {
    let mut totals = [0usize; 3];
    for seed in 0..seeds() {
        let mut n = net(seed);
        n.blackouts = vec![(Duration::from_secs(5), Duration::from_secs(8))];
        let m = call(seed, true, n);
        println!(
            "seed {seed}: {:?} switches, frames lost at them {:?}, frames sent into the \
             3 s blackout and the second after it {:?}",
            m.switches, m.lost, m.lost_in_blackout
        );
        for i in [ALICE, BOB] {
            // To the relay at the start and away; to it in the blackout
            // and back.
            assert!(m.switches[i] >= 2, "seed {seed} node {i}");
            assert!(
                m.lost[i] <= m.switches[i],
                "seed {seed} node {i}: {} frames lost over {} switches",
                m.lost[i],
                m.switches[i]
            );
            totals[0] += m.switches[i];
            totals[1] += m.lost[i];
            totals[2] += m.lost_in_blackout[i];
        }
    }
    println!(
        "over {} calls: {} switches lost {} frames; {} frames were sent into blackouts",
        seeds(),
        totals[0],
        totals[1],
        totals[2]
    );
}

#[test]
fn a_relay_that_drops_dtls_leaves_the_handshake_to_the_pair() {
    // The handshake starts on the relay and hears nothing there: after a
    // second it moves to the selected pair, and the call talks.
    for seed in 0..seeds() {
        let mut n = net(seed);
        n.relay_drops_dtls = true;
        let m = call(seed, true, n);
        println!(
            "seed {seed}: first frame {:?} after the answer",
            m.first_frame
        );
        assert!(
            m.first_frame < Duration::from_secs(3),
            "seed {seed}: {:?}",
            m.first_frame
        );
    }
}
