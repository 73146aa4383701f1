#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Two agents connect over an in-memory network with loss, delay and
//! reordering, on a virtual clock.

mod common;
use std::time::Duration;

use common::*;
use cryptic_ice::{PathKind, Role};

#[test]
fn connects_host_to_host_with_20pct_loss_and_reordering_for_many_seeds() {
    for seed in 0..20 {
        let mut net = Net::new(seed, 0.2, 5, 120);
        let mut a = Peer::new(
            Role::Controlling,
            "198.51.100.1:4000",
            seed * 2 + 1,
            net.now,
        );
        let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", seed * 2 + 2, net.now);
        signal(net.now, &mut a, &mut b);
        let ok = net.run(
            &mut [&mut a, &mut b],
            Duration::from_secs(30),
            both_selected,
        );
        assert!(ok, "seed {seed}: no pair selected");
        let (sa, sb) = (a.selected().unwrap(), b.selected().unwrap());
        assert_eq!(sa.kind, PathKind::Host);
        assert_eq!((sa.local, sa.remote), (sb.remote, sb.local), "seed {seed}");
        assert_eq!(a.agent.role(), Role::Controlling);
    }
}

#[test]
fn media_flows_only_after_selection_and_only_from_the_peer() {
    let mut net = Net::new(7, 0.0, 10, 10);
    let mut a = Peer::new(Role::Controlling, "198.51.100.1:4000", 1, net.now);
    let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", 2, net.now);
    // DTLS-looking datagram before any check succeeded: dropped.
    let dtls = vec![22u8, 254, 253, 0, 1, 2, 3];
    assert_eq!(
        b.agent.handle_input(net.now, a.host, b.host, &dtls),
        cryptic_ice::Received::Dropped
    );
    signal(net.now, &mut a, &mut b);
    assert!(net.run(&mut [&mut a, &mut b], Duration::from_secs(5), both_selected));
    assert_eq!(
        b.agent.handle_input(net.now, a.host, b.host, &dtls),
        cryptic_ice::Received::Media(0..dtls.len())
    );
    let stranger = addr("192.0.2.99:1");
    assert_eq!(
        b.agent.handle_input(net.now, stranger, b.host, &dtls),
        cryptic_ice::Received::Dropped
    );
    assert_eq!(
        a.agent.route(),
        Some(cryptic_ice::Route::Direct { peer: b.host })
    );
}

#[test]
fn trickled_candidates_arriving_late_and_out_of_order_still_connect() {
    let mut net = Net::new(3, 0.1, 5, 60);
    let mut a = Peer::new(Role::Controlling, "198.51.100.1:4000", 11, net.now);
    let mut b = Peer::new(Role::Controlled, "203.0.113.2:5000", 12, net.now);
    // B learns A's credentials and candidate; A learns only B's credentials:
    // B's checks reach A first, A learns B as peer-reflexive.
    let now = net.now;
    b.agent
        .set_remote_credentials(now, a.agent.local_credentials().clone())
        .unwrap();
    for c in a.local_candidates() {
        b.agent.add_remote_candidate_str(now, &c).unwrap();
    }
    net.run(&mut [&mut a, &mut b], Duration::from_millis(300), |_| false);
    a.agent
        .set_remote_credentials(net.now, b.agent.local_credentials().clone())
        .unwrap();
    assert!(net.run(
        &mut [&mut a, &mut b],
        Duration::from_secs(20),
        both_selected
    ));
    // The signaled candidate arriving now replaces the peer-reflexive one.
    for c in b.local_candidates() {
        a.agent.add_remote_candidate_str(net.now, &c).unwrap();
    }
    a.agent.remote_end_of_candidates();
    b.agent.remote_end_of_candidates();
    net.run(&mut [&mut a, &mut b], Duration::from_secs(2), |_| false);
    assert_eq!(a.selected().unwrap().remote, b.host);
}
