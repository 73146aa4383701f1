#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A client that stops reading while another user floods it with relay
//! frames is dropped once a write misses its deadline: the call ends (once
//! the reconnection grace, 1 s here, has passed without a new login), its
//! queue is freed and its slot under `max_connections` takes a new user.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cryptic_signal::client::connect;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::HangupReason;

/// Write deadline of this test's server.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_its_slot_is_reused() {
    let mut limits = Limits::default();
    limits.max_connections = 2;
    limits.write_timeout = WRITE_TIMEOUT;
    limits.reconnect_grace = Duration::from_secs(1);
    // Let the flood through: the relay caps are not what this test is about.
    limits.relay_frames_per_second = 1_000_000;
    limits.relay_bytes_per_second = 1 << 30;
    // Frames still in flight after the call ends must not get the spammer closed.
    limits.max_errors = u32::MAX;
    let server = TestServer::start_with(limits).await;
    let (ss, mut rs) = server.client("spammer").await.1.split();
    let (sv, mut rv) = server.client("victim").await.1.split();
    let id = new_id();
    ss.send(&invite(id, "spammer", "victim")).await.unwrap();
    assert_eq!(next_msg(&mut rv).await.call_id(), Some(id));
    sv.send(&answer(id, "victim", "spammer")).await.unwrap();
    assert_eq!(next_msg(&mut rs).await.call_id(), Some(id));

    let carol = server.profile("carol").client_config().unwrap();
    assert!(
        connect(&carol).await.is_err(),
        "with spammer and victim connected the cap is reached"
    );

    // From here on the victim never reads. The spammer sends at most 256 MiB.
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    // The spammer keeps reading all along, and reports the server's hangup.
    let hangup = drain_until_hangup(rs);
    let flood = {
        let done = done.clone();
        tokio::spawn(async move {
            let frame = vec![7u8; 32 * 1024];
            let mut seq = 0u64;
            while seq < 8 * 1024 && !done.load(Ordering::Relaxed) {
                if ss.send_relay(id, seq, &frame).await.is_err() {
                    break;
                }
                seq += 1;
            }
            (ss, seq)
        })
    };
    let hangup_seen = tokio::time::timeout(Duration::from_secs(30), hangup)
        .await
        .expect("the server never dropped the client that stopped reading")
        .unwrap();
    let dropped_after = started.elapsed();
    done.store(true, Ordering::Relaxed);
    assert_eq!(hangup_seen.call_id, id);
    assert_eq!(hangup_seen.reason, Some(HangupReason::PeerDisconnected));
    let (_ss, frames) = flood.await.unwrap();
    println!(
        "victim dropped {:.2} s after the flood began ({frames} frames of 32 KiB sent)",
        dropped_after.as_secs_f64()
    );
    assert!(
        dropped_after < WRITE_TIMEOUT + Duration::from_secs(9),
        "dropped only after {dropped_after:?}"
    );

    // Its slot is free: carol gets in although the cap was reached before.
    let deadline = Instant::now() + Duration::from_secs(5);
    let carol_conn = loop {
        match connect(&carol).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("carol refused after the victim was dropped: {e}"),
        }
    };
    assert_eq!(carol_conn.user().as_str(), "carol");
    assert_eq!(server.stats.connections(), 2, "spammer and carol");

    // The victim's side sees its connection end once it reads again.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        while rv.recv().await.is_ok() {}
    })
    .await;
    assert!(closed.is_ok(), "the victim's connection was not closed");
    drop(sv);
    server.stop().await;
}
