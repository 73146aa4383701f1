#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Two tokio drivers on real UDP sockets on 127.0.0.1 connect, and DTLS- and
//! SRTP-looking datagrams flow both ways over the selected pair while STUN
//! stays inside the agents (RFC 7983 demultiplexing on one socket).

mod common;
#[path = "common/signaling.rs"]
mod signaling;

use std::time::Duration;

use cryptic_ice::{AgentConfig, Driver, PathKind, Role};

#[tokio::test]
async fn two_drivers_on_loopback_select_a_host_pair_and_carry_media() {
    let mut a = Driver::start(
        AgentConfig::new(Role::Controlling),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let mut b = Driver::start(
        AgentConfig::new(Role::Controlled),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let ta = a.transport();
    assert_eq!(
        ta.send(b"\x16early").await.unwrap_err().kind(),
        std::io::ErrorKind::NotConnected
    );
    let ca = signaling::gather(&mut a, Duration::from_secs(5)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(5)).await;
    assert_eq!(ca.len(), 1);
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    let (sa, sb, _) = signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(sa.kind, PathKind::Host);
    assert_eq!(sa.remote, b.local_addr());
    assert_eq!(sb.remote, a.local_addr());

    let tb = b.transport();
    let mut buf = [0u8; 1500];
    // DTLS (first byte 22) from A to B, SRTP (first byte 0x80) back.
    for i in 0..20u8 {
        let dtls = [22, 254, 253, i, 1, 2, 3];
        ta.send(&dtls).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), tb.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &dtls);
        let rtp = [0x80, 111, 0, i, 9, 9, 9, 9];
        tb.send(&rtp).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), ta.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &rtp);
    }
    assert!(ta.is_connected() && tb.is_connected());
    a.close().await;
    b.close().await;
}
