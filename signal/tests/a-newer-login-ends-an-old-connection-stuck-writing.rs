#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A user logging in again ends the old connection at once, even when that
//! one is stuck writing to a client that stopped reading and its queue is
//! full (the write deadline here is far longer than the test). The answered
//! call passes to the new login: it is not ended.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cryptic_signal::client::connect;
use cryptic_signal::server::Limits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_login_ends_an_old_connection_that_is_stuck_writing() {
    let mut limits = Limits::default();
    limits.max_connections = 3;
    limits.write_timeout = Duration::from_secs(120);
    limits.relay_frames_per_second = 1_000_000;
    limits.relay_bytes_per_second = 1 << 30;
    // Frames still in flight after the call ends must not get the spammer closed.
    limits.max_errors = u32::MAX;
    let server = TestServer::start_with(limits).await;
    let (ss, mut rs) = server.client("spammer").await.1.split();
    let victim = server.profile("victim");
    let (sv, mut rv) = server.client("victim").await.1.split();
    let id = new_id();
    ss.send(&invite(id, "spammer", "victim")).await.unwrap();
    assert_eq!(next_msg(&mut rv).await.call_id(), Some(id));
    sv.send(&answer(id, "victim", "spammer")).await.unwrap();
    assert_eq!(next_msg(&mut rs).await.call_id(), Some(id));

    // The victim stops reading; the spammer sends 64 MiB, far more than the
    // kernel buffers and the victim's queue hold, so the writer gets stuck.
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // The spammer keeps reading all along, and reports the server's hangup.
    let mut hangup = drain_until_hangup(rs);
    let flood = {
        let (sent, done) = (sent.clone(), done.clone());
        tokio::spawn(async move {
            let frame = vec![7u8; 32 * 1024];
            for seq in 0..2048u64 {
                if done.load(Ordering::Relaxed) || ss.send_relay(id, seq, &frame).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            ss
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.load(Ordering::Relaxed) < 2048 && !flood.is_finished() {
        assert!(Instant::now() < deadline, "flood too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let carol = server.profile("carol").client_config().unwrap();

    // The victim logs in again (third slot): the old connection must go.
    let replaced_at = Instant::now();
    let again = connect(&victim.client_config().unwrap()).await.unwrap();
    assert_eq!(again.user().as_str(), "victim");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut hangup)
            .await
            .is_err(),
        "the answered call passes to the new login: nobody hangs up"
    );
    done.store(true, Ordering::Relaxed);

    // The old connection's slot is freed within a few seconds: carol gets in.
    let deadline = replaced_at + Duration::from_secs(5);
    let carol_conn = loop {
        match connect(&carol).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the stuck old connection still holds its slot: {e}"),
        }
    };
    println!(
        "old connection's slot free {:.2} s after the new login",
        replaced_at.elapsed().as_secs_f64()
    );
    assert_eq!(carol_conn.user().as_str(), "carol");
    let _ss = flood.await.unwrap();
    drop((sv, rv));
    server.stop().await;
}
