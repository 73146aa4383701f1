#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Real NAT: two `ice-peer` processes in their own network namespaces, each
//! behind a router namespace doing iptables MASQUERADE, with coturn in a
//! "public" namespace. Endpoint-independent NATs connect directly through
//! reflexive candidates; symmetric-like NATs (`--random-fully`) through the
//! TURN relay; a cut path is reported lost and an ICE restart reconnects.
//! Needs root; skips with a printed reason where namespaces cannot be made.

mod common;
#[path = "common/coturn.rs"]
mod coturn;
#[path = "common/netns.rs"]
mod netns;

use std::time::Duration;

use netns::{handshake, peer_args, Peer, Topology};

const LIMIT: Duration = Duration::from_secs(15);
/// Short consent timers so the cut-path test takes seconds; the RFC 7675
/// defaults (5 s / 30 s) are covered on the virtual clock.
const FAST_CONSENT: [&str; 4] = [
    "--consent-interval-ms",
    "250",
    "--consent-timeout-ms",
    "2000",
];

fn setup(tag: &str, symmetric: bool) -> Option<(Topology, coturn::Coturn, Peer, Peer)> {
    if !netns::available() || !coturn::available() {
        return None;
    }
    let topo = Topology::new(tag, symmetric);
    let wrap = ["ip", "netns", "exec", topo.public.as_str()];
    let server = coturn::start(&wrap, "203.0.113.1", 3478, (49160, 49200), &[]);
    let a = Peer::spawn(&topo.clients[0], &peer_args(true, &FAST_CONSENT));
    let b = Peer::spawn(&topo.clients[1], &peer_args(false, &FAST_CONSENT));
    Some((topo, server, a, b))
}

fn pings(p: &mut Peer) -> u32 {
    p.send("ping 20");
    p.expect("pong", LIMIT)[5..].parse().unwrap()
}

#[test]
fn agents_behind_endpoint_independent_nats_connect_without_the_relay() {
    let Some((_topo, _server, mut a, mut b)) = setup("e", false) else {
        return;
    };
    let (sa, sb, _) = handshake(&mut a, &mut b, LIMIT);
    for s in [&sa, &sb] {
        assert!(
            s == "selected ServerReflexive" || s == "selected PeerReflexive",
            "{s}"
        );
    }
    assert!(pings(&mut a) >= 18);
    assert!(pings(&mut b) >= 18);
}

#[test]
fn agents_behind_symmetric_nats_connect_through_the_turn_relay() {
    let Some((_topo, _server, mut a, mut b)) = setup("s", true) else {
        return;
    };
    let (sa, sb, _) = handshake(&mut a, &mut b, LIMIT);
    assert_eq!(
        (sa.as_str(), sb.as_str()),
        ("selected Relay", "selected Relay")
    );
    assert!(pings(&mut a) >= 18);
    assert!(pings(&mut b) >= 18);
}

#[test]
fn a_cut_path_is_reported_lost_and_ice_restart_reconnects() {
    let Some((topo, _server, mut a, mut b)) = setup("c", false) else {
        return;
    };
    handshake(&mut a, &mut b, LIMIT);
    assert!(pings(&mut a) >= 18);
    topo.cut(0, true);
    let cut_at = std::time::Instant::now();
    a.expect("lost", LIMIT);
    b.expect("lost", LIMIT);
    let after = cut_at.elapsed();
    // Consent timeout 2 s, checked every 250 ms (±20%).
    assert!(
        after >= Duration::from_millis(1500),
        "lost after only {after:?}"
    );
    topo.cut(0, false);
    a.send("restart");
    b.send("restart");
    let (sa, sb, _) = handshake(&mut a, &mut b, LIMIT);
    assert!(sa.starts_with("selected") && sb.starts_with("selected"));
    assert!(pings(&mut a) >= 18);
}
