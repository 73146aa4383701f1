#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Against a real coturn on 127.0.0.1: server-reflexive discovery, and two
//! relay-only agents whose media flows through the relay (allocate with
//! long-term credentials, permissions, channel binding, ChannelData).

mod common;
#[path = "common/coturn.rs"]
mod coturn;
#[path = "common/signaling.rs"]
mod signaling;

use std::time::Duration;

use cryptic_ice::{AgentConfig, CandidateKind, Driver, PathKind, Role, TurnServer};

fn port(base: u16) -> u16 {
    base + (std::process::id() % 500) as u16
}

#[tokio::test]
async fn stun_binding_to_coturn_yields_a_server_reflexive_candidate() {
    if !coturn::available() {
        return;
    }
    let server = coturn::start(
        &[],
        "127.0.0.1",
        port(34000),
        (49160, 49170),
        &["--allow-loopback-peers"],
    );
    // The socket listens on every address; its host candidate is 127.0.0.2,
    // but packets to 127.0.0.1 leave from 127.0.0.1: the server sees (and
    // reports) another address than the host candidate.
    let cfg = AgentConfig::new(Role::Controlling).with_stun_server(server.addr);
    let mut d = Driver::start_with_hosts(
        cfg,
        "0.0.0.0:0".parse().unwrap(),
        vec!["127.0.0.2".parse().unwrap()],
    )
    .await
    .unwrap();
    let cands = signaling::gather(&mut d, Duration::from_secs(10)).await;
    let parsed: Vec<_> = cands
        .iter()
        .map(|c| cryptic_ice::Candidate::parse(c).unwrap())
        .collect();
    let srflx = parsed
        .iter()
        .find(|c| c.kind() == CandidateKind::ServerReflexive)
        .expect("srflx candidate");
    assert_eq!(
        srflx.addr(),
        format!("127.0.0.1:{}", d.local_addr().port())
            .parse()
            .unwrap()
    );
    assert_eq!(
        srflx.related(),
        Some(
            format!("127.0.0.2:{}", d.local_addr().port())
                .parse()
                .unwrap()
        )
    );
    d.close().await;
}

#[tokio::test]
async fn relay_only_agents_connect_through_coturn_and_media_flows_via_the_relay() {
    if !coturn::available() {
        return;
    }
    let server = coturn::start(
        &[],
        "127.0.0.1",
        port(35000),
        (49171, 49199),
        &["--allow-loopback-peers"],
    );
    let turn = TurnServer::new(server.addr, coturn::USER, coturn::PASS);
    let cfg = |role| {
        AgentConfig::new(role)
            .with_turn_server(turn.clone())
            .with_relay_only(true)
    };
    let mut a = Driver::start(cfg(Role::Controlling), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut b = Driver::start(cfg(Role::Controlled), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ca = signaling::gather(&mut a, Duration::from_secs(10)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(10)).await;
    for c in ca.iter().chain(&cb) {
        let c = cryptic_ice::Candidate::parse(c).unwrap();
        assert_eq!(
            c.kind(),
            CandidateKind::Relayed,
            "relay-only offers relayed candidates only"
        );
        assert!((49171..=49199).contains(&c.addr().port()));
    }
    assert_eq!((ca.len(), cb.len()), (1, 1));
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    let (sa, sb, _) = signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((sa.kind, sb.kind), (PathKind::Relay, PathKind::Relay));

    let (ta, tb) = (a.transport(), b.transport());
    let mut buf = [0u8; 1500];
    // Media both ways; the first datagrams may go as Send indications before
    // the channel is bound, later ones as ChannelData.
    for i in 0..50u8 {
        let dtls = [23, 254, 253, i, 7, 7];
        ta.send(&dtls).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), tb.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &dtls);
        let srtp = [0x80, 0x60, 0, i, 1, 2, 3, 4, 5];
        tb.send(&srtp).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), ta.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &srtp);
    }
    let five_s = Duration::from_secs(5);
    assert!(server.wait_log("CREATE_PERMISSION processed, success", 2, five_s));
    assert!(server.wait_log("CHANNEL_BIND processed, success", 2, five_s));
    a.close().await;
    b.close().await;
    // Deallocation: Refresh with lifetime 0, for both allocations.
    assert!(server.wait_log("REFRESH processed, success", 2, five_s));
}

#[tokio::test]
async fn a_stale_nonce_438_is_retried_with_the_fresh_nonce() {
    if !coturn::available() {
        return;
    }
    // Nonces live one second (coturn checks on a coarser clock): the
    // permissions made three seconds later get 438 and are retried.
    let server = coturn::start(
        &[],
        "127.0.0.1",
        port(36000),
        (49201, 49230),
        &["--allow-loopback-peers", "--stale-nonce=1"],
    );
    let turn = TurnServer::new(server.addr, coturn::USER, coturn::PASS);
    let cfg = |role| {
        AgentConfig::new(role)
            .with_turn_server(turn.clone())
            .with_relay_only(true)
    };
    let mut a = Driver::start(cfg(Role::Controlling), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut b = Driver::start(cfg(Role::Controlled), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ca = signaling::gather(&mut a, Duration::from_secs(10)).await;
    let cb = signaling::gather(&mut b, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let creds = (a.local_credentials().clone(), b.local_credentials().clone());
    let (sa, _, _) = signaling::connect(&mut a, &mut b, &ca, &cb, creds, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(sa.kind, PathKind::Relay);
    assert!(
        server.wait_log("error 438: Stale nonce", 2, Duration::from_secs(1)),
        "both clients met a stale nonce"
    );
    assert!(server.wait_log(
        "CREATE_PERMISSION processed, success",
        2,
        Duration::from_secs(1)
    ));
    a.close().await;
    b.close().await;
}
