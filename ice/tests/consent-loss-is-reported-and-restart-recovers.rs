#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! RFC 7675 consent freshness on a virtual clock: a cut path is reported as
//! lost within 30 s, and an ICE restart reconnects once the path is back; a
//! consent probe tells within a round trip whether a silent pair works.

mod common;
use std::time::Duration;

use common::*;
use cryptic_ice::{ConnectionState, Event, Role};

#[test]
fn cut_path_is_lost_within_30s_and_restart_reconnects() {
    let mut net = Net::new(5, 0.0, 10, 20);
    let mut a = Peer::new(Role::Controlling, "198.51.100.1:4000", 1, net.now);
    let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", 2, net.now);
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    // Consent stays fresh for a minute of quiet connection.
    net.run(&mut [&mut a, &mut b], Duration::from_secs(60), |_| false);
    assert_eq!(a.agent.state(), ConnectionState::Connected);
    assert_eq!(b.agent.state(), ConnectionState::Connected);
    assert!(net.link.delivered > 20, "consent checks flowed");

    net.link.cut = true;
    let cut_at = net.now;
    let lost = |p: &[&mut Peer]| p.iter().all(|p| p.count(|e| *e == Event::PathLost) == 1);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(40), lost));
    for p in [&a, &b] {
        let at = p
            .events
            .iter()
            .find(|(_, e)| *e == Event::PathLost)
            .unwrap()
            .0;
        let after = at - cut_at;
        assert!(after <= Duration::from_secs(30), "lost after {after:?}");
        assert!(
            after >= Duration::from_secs(24),
            "lost too early: {after:?}"
        );
        assert_eq!(p.agent.state(), ConnectionState::Disconnected);
        assert!(p.agent.route().is_none());
    }

    net.link.cut = false;
    let old = a.agent.local_credentials().clone();
    a.agent.restart(net.now);
    b.agent.restart(net.now);
    assert_ne!(*a.agent.local_credentials(), old);
    a.events.clear();
    b.events.clear();
    signal(net.now, &mut a, &mut b);
    assert!(a
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Restarted(_))));
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    assert_eq!(a.agent.state(), ConnectionState::Connected);
}

#[test]
fn old_credentials_are_refused_after_a_restart() {
    let mut net = Net::new(6, 0.0, 10, 20);
    let mut a = Peer::new(Role::Controlling, "198.51.100.1:4000", 3, net.now);
    let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", 4, net.now);
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    // Only B restarts: A's checks with B's old ufrag are answered 401 and
    // consent is lost on A.
    b.agent.restart(net.now);
    let lost = |p: &[&mut Peer]| p[0].count(|e| *e == Event::PathLost) == 1;
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(40), lost));
}

#[test]
fn a_consent_probe_tells_within_a_round_trip_whether_a_silent_pair_works() {
    let mut net = Net::new(8, 0.0, 10, 20);
    let mut a = Peer::new(Role::Controlling, "198.51.100.1:4000", 5, net.now);
    let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", 6, net.now);
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    net.link.cut = true;
    net.run(&mut [&mut a, &mut b], Duration::from_secs(2), |_| false);
    let silent_since = net.now;
    a.agent.probe_consent(net.now);
    net.run(&mut [&mut a, &mut b], Duration::from_millis(200), |_| false);
    assert!(
        a.agent.consent_fresh_since().unwrap() < silent_since,
        "no answer through a cut"
    );
    net.link.cut = false;
    a.agent.probe_consent(net.now);
    let probed = net.now;
    let fresh = |p: &[&mut Peer]| {
        p[0].agent
            .consent_fresh_since()
            .is_some_and(|t| t > silent_since)
    };
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_millis(100), fresh));
    assert!(
        net.now - probed <= Duration::from_millis(40),
        "one round trip"
    );
    // Without a selected pair there is nothing to probe.
    a.agent.restart(net.now);
    a.agent.probe_consent(net.now);
    assert_eq!(a.agent.consent_fresh_since(), None);
}
