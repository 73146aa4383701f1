//! Figures for the ICE agent (not a test: it measures).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-ice cargo build --release -p cryptic-ice --bins --examples
//! /work/target-ice/release/examples/figures            # as root for the NAT figure
//! ```
//!
//! 1. Time from both sides holding each other's credentials and candidates
//!    to both having selected a pair: two drivers on 127.0.0.1 (median of 20).
//! 2. The same through real NAT in network namespaces with coturn (median of
//!    20; needs root, iproute2, iptables, coturn).
//! 3. Memory held by an agent with 10 candidate pairs (RSS growth over 2000
//!    such agents, divided by 2000).
#![allow(clippy::unwrap_used, missing_docs)] // a measuring tool: a panic is the report

#[path = "../tests/common/coturn.rs"]
mod coturn;
#[path = "../tests/common/netns.rs"]
mod netns;
#[path = "../tests/common/signaling.rs"]
mod signaling;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cryptic_ice::{Agent, AgentConfig, Credentials, Driver, Role};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn loopback_once() -> Duration {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut a = Driver::start(AgentConfig::new(Role::Controlling), bind)
        .await
        .unwrap();
    let mut b = Driver::start(AgentConfig::new(Role::Controlled), bind)
        .await
        .unwrap();
    let ca = signaling::gather(&mut a, Duration::from_secs(5)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(5)).await;
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    let (_, _, t) = signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .unwrap();
    a.close().await;
    b.close().await;
    t
}

fn nat_runs(
    n: usize,
    tag: &str,
    symmetric: bool,
    extra: &'static [&'static str],
) -> Option<(Vec<Duration>, String)> {
    if !netns::available() || !coturn::available() {
        return None;
    }
    let topo = netns::Topology::new(tag, symmetric);
    let wrap = ["ip", "netns", "exec", topo.public.as_str()];
    let _server = coturn::start(&wrap, "203.0.113.1", 3478, (49160, 49200), &[]);
    let mut times = Vec::new();
    let mut kinds = String::new();
    for _ in 0..n {
        let mut a = netns::Peer::spawn(&topo.clients[0], &netns::peer_args(true, extra));
        let mut b = netns::Peer::spawn(&topo.clients[1], &netns::peer_args(false, extra));
        let (sa, _, t) = netns::handshake(&mut a, &mut b, Duration::from_secs(15));
        times.push(t);
        kinds = sa;
    }
    Some((times, kinds))
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn agent_with_10_pairs(i: u32, now: Instant) -> Agent {
    let mut a = Agent::new(
        AgentConfig::new(Role::Controlling).with_seed(u64::from(i)),
        now,
    )
    .unwrap();
    a.add_host("192.0.2.1:4000".parse().unwrap());
    a.gather(now);
    a.set_remote_credentials(
        now,
        Credentials::new("abcd", "0123456789012345678901").unwrap(),
    )
    .unwrap();
    for r in 0..10u8 {
        a.add_remote_candidate_str(
            now,
            &format!("candidate:{r} 1 udp 2130706431 198.51.100.{r} 5000 typ host"),
        )
        .unwrap();
    }
    // Run the checks until all ten are in flight.
    let mut t = now;
    for _ in 0..20 {
        t += Duration::from_millis(50);
        a.handle_timeout(t);
        while a.poll_transmit().is_some() {}
        while a.poll_event().is_some() {}
    }
    assert_eq!(a.pair_count(), 10);
    a
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut lo = Vec::new();
    for _ in 0..20 {
        lo.push(rt.block_on(loopback_once()));
    }
    let (min, max) = (*lo.iter().min().unwrap(), *lo.iter().max().unwrap());
    println!(
        "loopback: candidates held -> both selected: median {:.2} ms (min {:.2}, max {:.2}, n=20)",
        ms(median(lo)),
        ms(min),
        ms(max)
    );
    let cases: [(&str, &str, bool, &'static [&'static str]); 3] = [
        ("endpoint-independent NAT, default timers", "f", false, &[]),
        (
            "endpoint-independent NAT, nomination wait 100 ms",
            "g",
            false,
            &["--nomination-wait-ms", "100"],
        ),
        (
            "symmetric NAT (--random-fully), default timers",
            "h",
            true,
            &[],
        ),
    ];
    for (name, tag, symmetric, extra) in cases {
        match nat_runs(20, tag, symmetric, extra) {
            Some((v, kind)) => {
                let (min, max) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
                println!(
                    "namespace NAT, {name}: median {:.2} ms (min {:.2}, max {:.2}, n=20), last path: {kind}",
                    ms(median(v)),
                    ms(min),
                    ms(max)
                );
            }
            None => println!("namespace NAT: skipped (see reason above)"),
        }
    }
    let now = Instant::now();
    let n = 2000;
    let before = rss_kib();
    let agents: Vec<Agent> = (0..n).map(|i| agent_with_10_pairs(i, now)).collect();
    let after = rss_kib();
    println!(
        "memory: agent with 10 candidate pairs (10 checks in flight): {:.1} KiB each (RSS +{} KiB for {n} agents; Agent struct itself {} bytes)",
        (after - before) as f64 / f64::from(n),
        after - before,
        std::mem::size_of::<Agent>()
    );
    drop(agents);
}
