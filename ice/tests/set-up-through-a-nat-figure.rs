#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A figure, not a check (ignored by default, no timing assert): the time
//! from both `ice-peer` processes holding each other's candidates to both
//! having selected a pair, through real endpoint-independent NATs in
//! network namespaces (the topology of `nat-namespaces-connect-and-recover`),
//! median of 20 set-ups. Run with
//! `cargo test -p cryptic-ice --test set-up-through-a-nat-figure -- --ignored --nocapture`.

mod common;
#[path = "common/coturn.rs"]
mod coturn;
#[path = "common/netns.rs"]
mod netns;

use std::time::Duration;

use netns::{handshake, peer_args, Peer, Topology};

const LIMIT: Duration = Duration::from_secs(15);

#[test]
#[ignore = "a figure: prints the median of 20 set-ups through a namespace NAT"]
fn median_of_twenty_set_ups_through_an_endpoint_independent_nat() {
    if !netns::available() || !coturn::available() {
        return;
    }
    let topo = Topology::new("f", false);
    let wrap = ["ip", "netns", "exec", topo.public.as_str()];
    let _server = coturn::start(&wrap, "203.0.113.1", 3478, (49160, 49200), &[]);
    let mut times = Vec::new();
    let mut kinds = Vec::new();
    for _ in 0..20 {
        let mut a = Peer::spawn(&topo.clients[0], &peer_args(true, &[]));
        let mut b = Peer::spawn(&topo.clients[1], &peer_args(false, &[]));
        let (sa, _, took) = handshake(&mut a, &mut b, LIMIT);
        times.push(took);
        kinds.push(sa);
    }
    times.sort();
    println!(
        "set-up through the NAT, candidates exchanged -> both selected: median {:?}, min {:?}, max {:?} (20 runs; {:?})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        kinds.first()
    );
}
