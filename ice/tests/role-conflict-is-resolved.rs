#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Both agents start in the same role; RFC 8445 section 7.3.1.1 settles it.

mod common;
use std::time::Duration;

use common::*;
use cryptic_ice::Role;

fn run(role: Role, seed: u64) {
    let mut net = Net::new(seed, 0.05, 5, 40);
    let mut a = Peer::new(role, "198.51.100.1:4000", seed + 100, net.now);
    let mut b = Peer::new(role, "203.0.113.2:5000", seed + 200, net.now);
    signal(net.now, &mut a, &mut b);
    assert!(
        net.run(
            &mut [&mut a, &mut b],
            Duration::from_secs(30),
            both_selected
        ),
        "{role:?} seed {seed}"
    );
    assert_ne!(a.agent.role(), b.agent.role(), "{role:?} seed {seed}");
    let (sa, sb) = (a.selected().unwrap(), b.selected().unwrap());
    assert_eq!((sa.local, sa.remote), (sb.remote, sb.local));
}

#[test]
fn two_controlling_agents_end_with_exactly_one_controlling() {
    for seed in 0..10 {
        run(Role::Controlling, seed);
    }
}

#[test]
fn two_controlled_agents_end_with_exactly_one_controlling() {
    for seed in 0..10 {
        run(Role::Controlled, seed);
    }
}
