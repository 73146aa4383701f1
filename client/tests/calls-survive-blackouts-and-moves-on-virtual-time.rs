//! Calls that survive the network on a virtual clock: UDP blackouts of 3,
//! 10 and 40 s between the peers (the server relay carries the audio from a
//! second into the blackout; the call is back on direct once it ends), the caller or the callee moving to a new
//! address mid-call, and both at once (the two ICE restarts cross). Each
//! checks both sides' outcomes and SAS, that the peer's audio plays again
//! within 2 s after the network is back, that the call ends on the direct
//! path, and prints the gaps measured. See `kit` for the world they run in.
//!
//! `cargo test -p cryptic-call --test calls-survive-blackouts-and-moves-on-virtual-time -- --nocapture`
//! (`CRYPTIC_SEEDS=200` for more seeds per scenario than 8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kit;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cryptic_call::history::Outcome;
use cryptic_call::session::SessionEvent;
use cryptic_signal::call::CallState;
use kit::{Action, NetConfig, Users, When, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALICE: usize = 0;
const BOB: usize = 1;

/// Seeds per scenario: 8, or `CRYPTIC_SEEDS`.
fn seeds() -> u64 {
    std::env::var("CRYPTIC_SEEDS").map_or(8, |s| s.parse().unwrap())
}

/// Audio must play again this soon after the network is back.
const BACK_WITHIN: Duration = Duration::from_secs(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A seeded network: a little loss, some delay and jitter.
fn net(seed: u64) -> NetConfig {
    let mut rng = StdRng::seed_from_u64(seed);
    NetConfig {
        loss: rng.random_range(0.0..0.02),
        delay: ms(rng.random_range(5..60)),
        jitter: ms(rng.random_range(0..20)),
        ..NetConfig::default()
    }
}

/// What one call measured.
struct Measured {
    /// From the network being back to the first frame played, per side.
    back: [Duration; 2],
    /// From the network being back to the last "back on direct", per side
    /// (zero when the path never left direct).
    direct: [Duration; 2],
    /// The longest stretch without a played frame, per side.
    gap: [Duration; 2],
    restarts: [u32; 2],
}

/// Runs a call from alice to bob with `net`, the `moves` planned, hanging up
/// `talk` after it is active; checks it completed on the direct path with
/// audio back within [`BACK_WITHIN`] of `back_at` (from the start).
fn call(
    seed: u64,
    net: NetConfig,
    moves: &[(usize, Duration, SocketAddr)],
    back_at: Duration,
    talk: Duration,
) -> Measured {
    let mut users = Users::new(&["alice", "bob"]);
    let mut w = World::new(&mut users, net, seed, |_, c| c);
    w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
    w.at(
        BOB,
        When::After(CallState::Ringing, ms(100)),
        Action::Accept,
    );
    w.at(ALICE, When::After(CallState::Active, talk), Action::Hangup);
    for (node, at, to) in moves {
        w.at(*node, When::At(*at), Action::Move(*to));
    }
    w.run(talk + Duration::from_secs(60));
    let (a, b) = (w.report(ALICE), w.report(BOB));
    let ctx = format!(
        "seed {seed}: alice {:?} ({}) path {:?}, bob {:?} ({}) path {:?}\nalice {:?}\nbob {:?}",
        a.outcome,
        a.reason,
        a.path,
        b.outcome,
        b.reason,
        b.path,
        w.nodes[ALICE].events,
        w.nodes[BOB].events
    );
    assert_eq!(a.outcome, Outcome::Completed, "{ctx}");
    assert_eq!(b.outcome, Outcome::Completed, "{ctx}");
    assert!(a.sas.is_some() && a.sas == b.sas, "{ctx}");
    assert_eq!(a.path, Some("direct"), "{ctx}");
    assert_eq!(b.path, Some("direct"), "{ctx}");
    let back_at: Instant = w.start + back_at;
    let mut back = [Duration::ZERO; 2];
    for (i, n) in w.nodes.iter().enumerate() {
        let after = n.audio_back_after(back_at);
        assert!(
            after.is_some_and(|d| d <= BACK_WITHIN),
            "{ctx}\nnode {i}: audio back {after:?} after the network"
        );
        back[i] = after.unwrap_or_default();
    }
    if !moves.is_empty() {
        // A move is not a blackout: the jitter buffer may still play when
        // it happens, so the silence itself is measured.
        for (i, n) in w.nodes.iter().enumerate() {
            let gap = n.longest_gap();
            assert!(
                gap <= BACK_WITHIN,
                "{ctx}
node {i}: {gap:?} without audio"
            );
        }
    }
    let direct = [ALICE, BOB].map(|i| {
        w.nodes[i]
            .last_event(&SessionEvent::DirectBack)
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(back_at))
    });
    Measured {
        back,
        direct,
        gap: [w.nodes[ALICE].longest_gap(), w.nodes[BOB].longest_gap()],
        restarts: [a.ice_restarts, b.ice_restarts],
    }
}

/// Runs `seeds` calls with a blackout of `secs` from 5 s on, and prints
/// the figures.
fn blackout(secs: u64, seeds: u64) -> Vec<Measured> {
    let start = Duration::from_secs(5);
    let end = start + Duration::from_secs(secs);
    let out: Vec<Measured> = (0..seeds)
        .map(|seed| {
            let mut n = net(seed);
            n.blackouts = vec![(start, end)];
            call(seed, n, &[], end, end + Duration::from_secs(8))
        })
        .collect();
    report(&format!("{secs} s blackout"), &out);
    for m in &out {
        // The relay took over within a second or so of the blackout's
        // start: the silence is not the blackout's length.
        assert!(m.gap.iter().all(|g| *g <= BLACKOUT_SILENCE), "{:?}", m.gap);
    }
    out
}

/// The longest silence a blackout may cause while the relay is up.
const BLACKOUT_SILENCE: Duration = Duration::from_millis(1_500);

fn report(what: &str, out: &[Measured]) {
    let max = |f: &dyn Fn(&Measured) -> Duration| out.iter().map(f).max().unwrap_or_default();
    println!(
        "{what}, {} calls: audio back after the network at most alice {:?} bob {:?}; \
         longest silence alice {:?} bob {:?}; back on direct after the network at most \
         alice {:?} bob {:?}; ICE restarts at most {:?}",
        out.len(),
        max(&|m| m.back[0]),
        max(&|m| m.back[1]),
        max(&|m| m.gap[0]),
        max(&|m| m.gap[1]),
        max(&|m| m.direct[0]),
        max(&|m| m.direct[1]),
        out.iter().map(|m| m.restarts[0].max(m.restarts[1])).max()
    );
}

#[test]
fn audio_is_back_within_2s_after_a_3s_blackout() {
    blackout(3, seeds());
}

#[test]
fn audio_is_back_within_2s_after_a_10s_blackout() {
    blackout(10, seeds());
}

#[test]
fn a_40s_blackout_goes_on_through_the_relay_restarts_ice_and_comes_back_direct() {
    let out = blackout(40, seeds());
    for m in &out {
        // Consent expired (30 s) within the blackout: ICE restarted.
        assert!(m.restarts[0] >= 1 && m.restarts[1] >= 1, "{:?}", m.restarts);
    }
}

/// The new address of a node that moved.
fn moved(i: usize) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 101 + i as u8], 6000))
}

#[test]
fn the_caller_moving_to_a_new_address_is_heard_again_within_2s() {
    let at = Duration::from_secs(5);
    let out: Vec<Measured> = (0..seeds())
        .map(|seed| call(seed, net(seed), &[(ALICE, at, moved(ALICE))], at, at * 2))
        .collect();
    report("caller moved", &out);
}

#[test]
fn the_callee_moving_to_a_new_address_is_heard_again_within_2s() {
    let at = Duration::from_secs(5);
    let out: Vec<Measured> = (0..seeds())
        .map(|seed| call(seed, net(seed), &[(BOB, at, moved(BOB))], at, at * 2))
        .collect();
    report("callee moved", &out);
}

#[test]
fn a_caller_between_networks_for_3s_comes_back_without_an_ice_restart() {
    // The old address goes at 5 s, leaving loopback only; the new one comes
    // at 8 s. No restart meanwhile (its credentials would be news the
    // peer may never get while the signaling connection is dead with the
    // old address): the rebind on the new address is heard at once.
    let (gone, new) = (Duration::from_secs(5), Duration::from_secs(8));
    let offline = SocketAddr::from(([127, 0, 0, 1], 6000));
    let out: Vec<Measured> = (0..seeds())
        .map(|seed| {
            let moves = [(ALICE, gone, offline), (ALICE, new, moved(ALICE))];
            let m = call(seed, net(seed), &moves, new, Duration::from_secs(14));
            assert_eq!(m.restarts, [0, 0]);
            m
        })
        .collect();
    report("caller between networks for 3 s", &out);
}

#[test]
fn restarts_of_both_sides_at_once_converge_on_a_direct_path() {
    // Both move at 5 s while UDP is out until 6.5 s: neither rebind finds
    // a pair, so both escalate to an ICE restart at the same instant and
    // the two sealed restarts cross at the hub.
    let at = Duration::from_secs(5);
    let back = at + ms(1_500);
    let out: Vec<Measured> = (0..seeds())
        .map(|seed| {
            let mut n = net(seed);
            n.blackouts = vec![(at, back)];
            let moves = [(ALICE, at, moved(ALICE)), (BOB, at, moved(BOB))];
            let m = call(seed, n, &moves, back, at * 3);
            assert!(m.restarts[0] >= 1 && m.restarts[1] >= 1, "{:?}", m.restarts);
            m
        })
        .collect();
    report("both moved, restarts crossed", &out);
}

#[test]
fn the_server_dying_during_a_blackout_sends_the_call_back_to_its_pair() {
    // UDP out from 5 to 8 s, the relay carrying the audio; the server dies
    // at 6 s: the call goes back to its (still selected) pair and goes on
    // once the blackout ends, instead of ending with the server.
    for seed in 0..4 {
        let mut users = Users::new(&["alice", "bob"]);
        let mut n = net(seed);
        n.blackouts = vec![(Duration::from_secs(5), Duration::from_secs(8))];
        let mut w = World::new(&mut users, n, seed, |_, c| c);
        w.hub_dies = Some(Duration::from_secs(6));
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
        let (a, b) = (w.report(ALICE), w.report(BOB));
        let ctx = format!("seed {seed}: {a:?}\n{b:?}");
        assert_eq!(a.outcome, Outcome::Completed, "{ctx}");
        assert_eq!(b.outcome, Outcome::Completed, "{ctx}");
        assert_eq!((a.path, b.path), (Some("direct"), Some("direct")), "{ctx}");
        let after = w.start + Duration::from_secs(8);
        for n in &w.nodes {
            assert!(
                n.audio_back_after(after).is_some_and(|d| d <= BACK_WITHIN),
                "{ctx}"
            );
            assert!(n.events.contains(&SessionEvent::SignalingLost), "{ctx}");
        }
    }
}

#[test]
fn both_sides_say_what_happened_to_the_path() {
    let mut users = Users::new(&["alice", "bob"]);
    let mut n = net(1);
    n.blackouts = vec![(Duration::from_secs(5), Duration::from_secs(45))];
    let mut w = World::new(&mut users, n, 1, |_, c| c);
    w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
    w.at(
        BOB,
        When::After(CallState::Ringing, ms(100)),
        Action::Accept,
    );
    w.at(
        ALICE,
        When::After(CallState::Active, Duration::from_secs(55)),
        Action::Hangup,
    );
    w.run(Duration::from_secs(120));
    for i in [ALICE, BOB] {
        let ev = &w.nodes[i].events;
        let lost = ev
            .iter()
            .position(|e| matches!(e, SessionEvent::DirectLost(_)));
        let relay = ev
            .iter()
            .position(|e| *e == SessionEvent::PathChanged("server-relay"));
        let back = ev.iter().position(|e| *e == SessionEvent::DirectBack);
        assert!(
            lost.is_some() && relay.is_some() && back.is_some() && lost < back && relay < back,
            "node {i}: {ev:?}"
        );
        assert_eq!(ev.last(), Some(&SessionEvent::Ended), "node {i}: {ev:?}");
    }
}

#[test]
fn setup_has_no_outliers_over_50_loss_free_calls() {
    // From the answer to the first frame played by the caller: ICE, DTLS
    // and the jitter buffer, no retransmission.
    let mut times = Vec::new();
    for seed in 0..50 {
        let mut users = Users::new(&["alice", "bob"]);
        let net = NetConfig {
            delay: ms(1),
            ..NetConfig::default()
        };
        let mut w = World::new(&mut users, net, seed, |_, c| c);
        w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
        w.at(BOB, When::After(CallState::Ringing, ms(10)), Action::Accept);
        w.at(
            ALICE,
            When::After(CallState::Active, ms(500)),
            Action::Hangup,
        );
        w.run(Duration::from_secs(20));
        let (a, b) = (w.report(ALICE), w.report(BOB));
        let answered = b.answered.unwrap();
        let first = a.first_played.unwrap().max(b.first_played.unwrap());
        times.push(first - answered);
    }
    times.sort();
    println!(
        "answer -> first frame both ways, 50 calls, 1 ms one-way: p50 {:?} p95 {:?} max {:?}",
        times[25], times[47], times[49]
    );
    assert!(times[49] < 2 * times[25] + ms(50), "{times:?}");
}

#[test]
fn a_call_on_the_server_relay_waits_for_the_server_to_come_back() {
    // Media through the server relay only (both force it); the server is
    // away from 5 to 9 s (the drivers reconnect at 9 s): the audio comes
    // back within 2 s and the call completes; away for good, the call ends
    // 20 s after the loss, failed ("the signaling server went away").
    for seed in 0..4 {
        for back in [Some(Duration::from_secs(9)), None] {
            let mut users = Users::new(&["alice", "bob"]);
            let mut w = World::new(&mut users, net(seed), seed, |_, mut c| {
                c.force_relay = true;
                c
            });
            w.hub_dies = Some(Duration::from_secs(5));
            w.hub_back = back;
            w.at(ALICE, When::At(Duration::ZERO), Action::Call(BOB));
            w.at(
                BOB,
                When::After(CallState::Ringing, ms(100)),
                Action::Accept,
            );
            // alice hangs up at 14 s, or (server gone) after the grace.
            let hangup = if back.is_some() { 14 } else { 40 };
            w.at(
                ALICE,
                When::After(CallState::Active, Duration::from_secs(hangup)),
                Action::Hangup,
            );
            w.run(Duration::from_secs(60));
            let (a, b) = (w.report(ALICE), w.report(BOB));
            let ctx = format!("seed {seed}, back {back:?}: {a:?}\n{b:?}");
            for n in &w.nodes {
                assert!(n.events.contains(&SessionEvent::SignalingLost), "{ctx}");
            }
            match back {
                Some(t) => {
                    assert_eq!(a.outcome, Outcome::Completed, "{ctx}");
                    assert_eq!(b.outcome, Outcome::Completed, "{ctx}");
                    for n in &w.nodes {
                        assert!(n.events.contains(&SessionEvent::SignalingBack), "{ctx}");
                        assert!(
                            n.audio_back_after(w.start + t)
                                .is_some_and(|d| d <= BACK_WITHIN),
                            "{ctx}"
                        );
                    }
                }
                None => {
                    for r in [&a, &b] {
                        assert_eq!(r.outcome, Outcome::Failed, "{ctx}");
                        assert_eq!(r.reason, "the signaling server went away", "{ctx}");
                        let lasted = r.ended.unwrap() - (w.start + Duration::from_secs(5));
                        assert!(
                            lasted >= Duration::from_secs(20) && lasted <= Duration::from_secs(21),
                            "{lasted:?} {ctx}"
                        );
                    }
                }
            }
        }
    }
}
