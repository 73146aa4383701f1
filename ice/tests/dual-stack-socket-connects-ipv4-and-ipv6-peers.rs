#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! One dual-stack socket (`[::]`) carries IPv6 and IPv4 (v4-mapped) peers:
//! an agent with IPv4 and IPv6 host candidates connects to an IPv6-only and
//! to an IPv4-only peer on loopback.

mod common;
#[path = "common/signaling.rs"]
mod signaling;

use std::net::IpAddr;
use std::time::Duration;

use cryptic_ice::{AgentConfig, Driver, Role};

async fn pair_with(peer_bind: &str) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let hosts: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    let mut a = Driver::start_with_hosts(
        AgentConfig::new(Role::Controlling),
        "[::]:0".parse().unwrap(),
        hosts,
    )
    .await
    .unwrap();
    let mut b = Driver::start(
        AgentConfig::new(Role::Controlled),
        peer_bind.parse().unwrap(),
    )
    .await
    .unwrap();
    let ca = signaling::gather(&mut a, Duration::from_secs(5)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(5)).await;
    assert_eq!(ca.len(), 2, "one IPv4 and one IPv6 host candidate");
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    let (sa, sb, _) = signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .unwrap();
    let (ta, tb) = (a.transport(), b.transport());
    let mut buf = [0u8; 64];
    for i in 0..5u8 {
        ta.send(&[22, i]).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), tb.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &[22, i]);
        tb.send(&[0x80, i]).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), ta.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &[0x80, i]);
    }
    a.close().await;
    b.close().await;
    (sa.remote, sb.remote)
}

#[tokio::test]
async fn a_dual_stack_agent_reaches_an_ipv6_only_peer() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        cryptic_tests::skip("no IPv6 loopback on this machine");
        return;
    }
    let (ra, rb) = pair_with("[::1]:0").await;
    assert!(ra.is_ipv6() && rb.is_ipv6());
}

#[tokio::test]
async fn a_dual_stack_agent_reaches_an_ipv4_only_peer_through_v4_mapped_addresses() {
    if std::net::UdpSocket::bind("[::]:0").is_err() {
        cryptic_tests::skip("no IPv6 sockets on this machine");
        return;
    }
    let (ra, rb) = pair_with("127.0.0.1:0").await;
    assert!(ra.is_ipv4() && rb.is_ipv4());
}
