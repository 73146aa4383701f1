#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A host changing networks mid-session, on a virtual clock: the
//! controlling agent rebinds to its new address with the same credentials,
//! checks the peer's candidates from there and nominates again; the
//! controlled agent learns the new address as peer-reflexive and follows
//! the new nomination, with no signaling at all. A controlled agent still
//! prefers the higher priority among nominations that come together.

mod common;
use std::time::Duration;

use common::*;
use cryptic_ice::{ConnectionState, Event, Role};

#[test]
fn controlling_agent_rebound_to_a_new_address_is_followed_without_signaling() {
    let mut net = Net::new(7, 0.0, 10, 20);
    let mut a = Peer::new(Role::Controlling, "198.51.100.1:4000", 11, net.now);
    let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", 12, net.now);
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    net.run(&mut [&mut a, &mut b], Duration::from_secs(3), |_| false);
    let creds = a.agent.local_credentials().clone();

    // A's address is gone; it now receives on another one.
    let moved = addr("198.51.100.77:4000");
    a.host = moved;
    a.agent.rebind(net.now, &[moved]);
    assert_eq!(*a.agent.local_credentials(), creds, "no restart");
    assert!(a.agent.route().is_none(), "the old pair is dropped");
    a.events.clear();
    b.events.clear();
    let at = net.now;
    let followed = |p: &[&mut Peer]| {
        p.iter().all(|p| {
            p.selected()
                .is_some_and(|s| s.local == moved || s.remote == moved)
        })
    };
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(2), followed));
    let took = net.now - at;
    assert!(took < Duration::from_millis(700), "took {took:?}");
    assert!(a
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::CandidateGathered(c) if c.addr() == moved)));
    for p in [&a, &b] {
        assert_eq!(p.agent.state(), ConnectionState::Connected);
    }
    // And consent keeps it so.
    net.run(&mut [&mut a, &mut b], Duration::from_secs(40), |_| false);
    assert_eq!(b.agent.state(), ConnectionState::Connected);
    assert_eq!(b.count(|e| *e == Event::PathLost), 0);
}
