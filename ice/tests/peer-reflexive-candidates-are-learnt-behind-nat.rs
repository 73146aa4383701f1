#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! An agent behind an (in-memory, endpoint-independent) NAT that signals
//! only its private host candidate is reached through the peer-reflexive
//! address its checks reveal.

mod common;
use std::time::Duration;

use common::*;
use cryptic_ice::{Event, PathKind, Role};

#[test]
fn agent_behind_nat_connects_through_peer_reflexive_candidates() {
    for seed in 0..10 {
        let mut net = Net::new(seed, 0.05, 5, 50);
        let mut a = Peer::new(Role::Controlling, "10.0.0.2:4000", seed + 1, net.now);
        let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", seed + 2, net.now);
        net.nat.insert(a.host, addr("198.51.100.9:61000"));
        signal(net.now, &mut a, &mut b);
        assert!(
            net.run(
                &mut [&mut a, &mut b],
                Duration::from_secs(30),
                both_selected
            ),
            "seed {seed}"
        );
        let (sa, sb) = (a.selected().unwrap(), b.selected().unwrap());
        assert_eq!(sb.remote, addr("198.51.100.9:61000"));
        assert_eq!(sb.kind, PathKind::PeerReflexive);
        assert_eq!(
            sa.kind,
            PathKind::PeerReflexive,
            "A's mapped address is peer-reflexive"
        );
        assert_eq!(sa.remote, b.host);
        // Learnt candidates are not signalled.
        assert!(a
            .events
            .iter()
            .all(|(_, e)| !matches!(e, Event::CandidateGathered(c) if c.addr().port() == 61000)));
    }
}

#[test]
fn unreachable_private_candidates_fail_and_the_failure_is_reported() {
    let mut net = Net::new(1, 0.0, 5, 5);
    let mut a = Peer::new(Role::Controlling, "10.0.0.2:4000", 1, net.now);
    let mut b = Peer::new(Role::Controlled, "10.1.0.2:5000", 2, net.now);
    net.link.cut = true;
    signal(net.now, &mut a, &mut b);
    net.run(&mut [&mut a, &mut b], Duration::from_secs(120), |p| {
        p.iter().all(|p| p.count(|e| *e == Event::Failed) == 1)
    });
    assert_eq!(a.count(|e| *e == Event::Failed), 1);
    assert_eq!(b.count(|e| *e == Event::Failed), 1);
    assert!(a.selected().is_none());
}
