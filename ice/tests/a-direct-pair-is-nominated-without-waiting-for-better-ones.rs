#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Fast set-up: the controlling agent nominates a direct pair (host,
//! server- or peer-reflexive) as soon as it is the best that succeeded,
//! instead of waiting `nomination_wait` (500 ms) for pairs of higher
//! priority that may never answer (an address of a VPN or of a network the
//! peer cannot reach). Regular nomination still: the nominating check
//! carries USE-CANDIDATE on a pair that already succeeded. On a virtual
//! clock with 20 ms each way (40 ms round trip).

mod common;

use std::time::{Duration, Instant};

use common::*;
use cryptic_ice::{Agent, AgentConfig, PathKind, Role};

/// The caller has two host addresses: the first (highest priority) is
/// black-holed (nothing sent to it arrives), the second works.
fn caller_with_a_dead_first_address(now: Instant) -> Peer {
    let mut agent = Agent::new(AgentConfig::new(Role::Controlling).with_seed(1), now).unwrap();
    agent.add_host(addr("10.8.0.1:5000")); // never reachable
    agent.add_host(addr("192.0.2.1:5000"));
    agent.gather(now);
    Peer {
        agent,
        host: addr("192.0.2.1:5000"),
        events: Vec::new(),
        media: Vec::new(),
    }
}

#[test]
fn a_working_host_pair_is_nominated_within_a_few_round_trips_not_after_500_ms() {
    let mut net = Net::new(7, 0.0, 20, 20);
    let mut a = caller_with_a_dead_first_address(net.now);
    let mut b = Peer::new(Role::Controlled, "198.51.100.2:6000", 2, net.now);
    let start = net.now;
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    let took = net.now - start;
    let (sa, sb) = (a.selected().unwrap(), b.selected().unwrap());
    assert_eq!(sa.local, addr("192.0.2.1:5000"));
    assert_eq!((sa.kind, sb.kind), (PathKind::Host, PathKind::Host));
    // Pacing (Ta 50 ms) sends the dead pair's check first; the working
    // pair's check answers one round trip later; the nomination takes one
    // more. Well under the 500 ms the old fixed wait took.
    assert!(
        took < Duration::from_millis(300),
        "selected after {took:?} of virtual time"
    );
    eprintln!("both selected after {took:?} (virtual, 40 ms RTT)");
}

#[test]
fn the_best_pair_is_still_taken_when_it_answers_first() {
    // Two working host pairs: the better one is checked first and wins.
    let mut net = Net::new(8, 0.0, 20, 20);
    let mut agent = Agent::new(AgentConfig::new(Role::Controlling).with_seed(3), net.now).unwrap();
    agent.add_host(addr("192.0.2.1:5000"));
    agent.add_host(addr("192.0.2.7:5000"));
    agent.gather(net.now);
    let mut a = Peer {
        agent,
        host: addr("192.0.2.1:5000"),
        events: Vec::new(),
        media: Vec::new(),
    };
    let mut b = Peer::new(Role::Controlled, "198.51.100.2:6000", 4, net.now);
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    assert_eq!(a.selected().unwrap().local, addr("192.0.2.1:5000"));
    assert_eq!(b.selected().unwrap().remote, addr("192.0.2.1:5000"));
}
