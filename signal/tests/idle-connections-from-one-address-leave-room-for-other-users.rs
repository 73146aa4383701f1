#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Hundreds of idle TCP connections from one address (127.0.0.2) that never
//! start TLS hold at most that address's handshake share; a real user from
//! 127.0.0.1 still logs in and is routed a message, although the idle
//! connections alone outnumber `max_connections`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use cryptic_signal::server::Limits;
use cryptic_signal::wire::Message;
use tokio::net::{TcpSocket, TcpStream};

const IDLE: usize = 500;

async fn idle_connection(to: SocketAddr) -> Option<TcpStream> {
    let s = TcpSocket::new_v4().ok()?;
    s.bind("127.0.0.2:0".parse().unwrap()).ok()?;
    tokio::time::timeout(Duration::from_secs(2), s.connect(to))
        .await
        .ok()?
        .ok()
}

/// Whether the server closed this connection (end of stream or reset).
fn closed_by_server(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.try_read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_leave_room_for_a_user_from_another() {
    let mut limits = Limits::default();
    limits.max_connections = 256;
    // Idle handshakes would hold their slots for the whole test.
    limits.handshake_timeout = Duration::from_secs(120);
    let (per_ip_handshakes, per_ip_conns) =
        (limits.max_handshakes_per_ip, limits.max_connections_per_ip);
    assert_eq!((per_ip_handshakes, per_ip_conns), (16, 64), "defaults");
    let server = TestServer::start_with(limits).await;

    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        if let Some(s) = idle_connection(server.addr).await {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), IDLE, "the kernel completed every TCP handshake");

    // The server closes every connection beyond the address's handshake share.
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        // Wait until each refused socket has seen its end.
        for s in &idle {
            let _ = tokio::time::timeout(Duration::from_millis(1), s.readable()).await;
        }
        let open = idle.iter().filter(|s| !closed_by_server(s)).count();
        if open <= per_ip_handshakes || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("{open} of {IDLE} idle connections from 127.0.0.2 still open");
    assert_eq!(open, per_ip_handshakes);

    // A real user from 127.0.0.1 logs in and is routed a message.
    let (_pa, a) = server.client("alice").await;
    let (_pb, b) = server.client("bob").await;
    let (_sa, mut ra) = a.split();
    let (sb, _rb) = b.split();
    let id = new_id();
    sb.send(&invite(id, "bob", "alice")).await.unwrap();
    let m = next_msg(&mut ra).await;
    assert!(matches!(m, Message::CallInvite(_)) && m.call_id() == Some(id));

    drop(idle);
    server.stop().await;
}
