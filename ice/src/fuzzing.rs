//! Entry points for the fuzz targets in `fuzz/fuzz_targets/`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::agent::{Agent, AgentConfig, Role, Timers};
use crate::stun::{self, ChannelData};
use crate::turn::{Transport, TurnServer};
use crate::Candidate;

/// Every parser of network and signaling bytes: STUN (with and without
/// integrity), ChannelData, raw attribute walking, candidate strings.
pub fn stun_parse(data: &[u8]) {
    let _ = stun::header(data);
    if let Ok(key) = stun_rs::HMACKey::new_short_term("0123456789abcdefghijkl") {
        if let Some(m) = stun::decode(data, Some(&key)) {
            let _ = stun::xor_mapped(&m);
        }
    }
    if let Some(m) = stun::decode(data, None) {
        let _ = stun::unknown_required(&m);
        let _ = stun::error_code(&m);
        let _ = stun::has_integrity(&m);
    }
    let _ = stun::find_attribute(data, 0x0013);
    if let Some(cd) = ChannelData::parse(data) {
        let mut out = vec![0; cd.payload.len() + 4];
        let n = ChannelData::write(cd.channel, cd.payload, &mut out);
        assert_eq!(n, Some(cd.payload.len() + 4));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(c) = Candidate::parse(s) {
            let again = Candidate::parse(&c.to_sdp_string());
            assert_eq!(again.as_ref(), Ok(&c));
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("constant address")
}

/// Two agents connected in memory (each with a TURN server over UDP and one
/// over TCP configured), then arbitrary datagrams from the fuzzer: each
/// chunk is `[selector, len, bytes...]`; the selector picks the source (the
/// peer, a stranger, the TURN server on UDP or on its TCP stream, or that
/// stream closing), which agent gets it, whether to patch in the
/// transaction id of the agent's last request, and how far to advance time.
pub fn agent_input(data: &[u8]) {
    let mut now = Instant::now();
    let start = now;
    let (a_addr, b_addr, turn, turn_tcp) = (
        addr("10.0.0.1:1000"),
        addr("10.0.0.2:2000"),
        addr("10.0.0.9:3478"),
        addr("10.0.0.9:3479"),
    );
    let cfg = |role, seed| {
        AgentConfig::new(role)
            .with_seed(seed)
            .with_timers(Timers::default())
            .with_turn_server(TurnServer::new(turn, "user", "pass"))
            .with_turn_server(
                TurnServer::new(turn_tcp, "user", "pass").with_transport(Transport::Tcp),
            )
    };
    let (Ok(mut a), Ok(mut b)) = (
        Agent::new(cfg(Role::Controlling, 1), now),
        Agent::new(cfg(Role::Controlled, 2), now),
    ) else {
        return;
    };
    a.add_host(a_addr);
    b.add_host(b_addr);
    a.gather(now);
    b.gather(now);
    let _ = a.set_remote_credentials(now, b.local_credentials().clone());
    let _ = b.set_remote_credentials(now, a.local_credentials().clone());
    let _ = a.add_remote_candidate_str(
        now,
        &format!(
            "candidate:1 1 udp 2130706431 {} {} typ host",
            b_addr.ip(),
            b_addr.port()
        ),
    );
    let _ = b.add_remote_candidate_str(
        now,
        &format!(
            "candidate:1 1 udp 2130706431 {} {} typ host",
            a_addr.ip(),
            a_addr.port()
        ),
    );
    let mut last_txid = [[0u8; 12]; 2];
    let pump = |a: &mut Agent, b: &mut Agent, now: Instant, last: &mut [[u8; 12]; 2]| {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                moved = true;
                if t.contents.len() >= 20 {
                    last[0].copy_from_slice(&t.contents[8..20]);
                }
                if t.destination == b_addr {
                    b.handle_input(now, a_addr, b_addr, &t.contents);
                }
            }
            while let Some(t) = b.poll_transmit() {
                moved = true;
                if t.contents.len() >= 20 {
                    last[1].copy_from_slice(&t.contents[8..20]);
                }
                if t.destination == a_addr {
                    a.handle_input(now, b_addr, a_addr, &t.contents);
                }
            }
            while a.poll_event().is_some() || b.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    };
    pump(&mut a, &mut b, now, &mut last_txid);
    let mut rest = data;
    while rest.len() >= 2 {
        let (sel, len) = (rest[0], rest[1] as usize);
        let len = len.min(rest.len() - 2);
        let mut dgram = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];
        let to_b = sel & 1 == 1;
        let from = match (sel >> 1) & 3 {
            0 => {
                if to_b {
                    a_addr
                } else {
                    b_addr
                }
            }
            1 => turn,
            2 => addr("192.0.2.77:4444"),
            _ => addr("[2001:db8::7]:5555"),
        };
        if sel & 8 != 0 && dgram.len() >= 20 {
            dgram[8..20].copy_from_slice(&last_txid[usize::from(to_b)]);
        }
        let (agent, local) = if to_b {
            (&mut b, b_addr)
        } else {
            (&mut a, a_addr)
        };
        // From the TURN server: on its UDP socket, or as a message of the
        // TCP stream to it (or that stream closing).
        let r = match (from == turn, sel & 0x60) {
            (true, 0x40) => agent.handle_stream_input(now, turn_tcp, Transport::Tcp, &dgram),
            (true, 0x60) if dgram.is_empty() => {
                agent.stream_closed(now, turn_tcp, Transport::Tcp);
                crate::Received::Dropped
            }
            _ => agent.handle_input(now, from, local, &dgram),
        };
        if let crate::Received::Media(range) = r {
            assert!(range.end <= dgram.len());
        }
        now += Duration::from_millis(u64::from(sel >> 4) * 100);
        a.handle_timeout(now);
        b.handle_timeout(now);
        pump(&mut a, &mut b, now, &mut last_txid);
    }
    // Let every timer run out: nothing may panic or spin.
    for _ in 0..40 {
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        if next > start + Duration::from_secs(40) {
            break;
        }
        now = now.max(next);
        a.handle_timeout(now);
        b.handle_timeout(now);
        pump(&mut a, &mut b, now, &mut last_txid);
    }
}

/// Bytes of a TURN stream (TCP or TLS) into the stream decoder, cut into
/// pushes of the sizes the fuzzer picks (the first byte seeds them): never
/// panics, never buffers without bound, and every message it yields is one
/// whole STUN or ChannelData message of at most
/// [`crate::MAX_STREAM_MESSAGE`] bytes.
pub fn turn_stream(data: &[u8]) {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let mut d = crate::StreamDecoder::new();
    let mut cut = usize::from(seed) + 1;
    while !rest.is_empty() {
        let n = cut.min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        cut = cut * 7 % 251 + 1;
        if d.push(chunk).is_err() {
            return;
        }
        loop {
            match d.next_message() {
                Ok(Some(m)) => {
                    assert!(m.len() <= crate::MAX_STREAM_MESSAGE);
                    match m.first() {
                        Some(0..=3) => {
                            assert!(m.len() >= 20 && m.len() % 4 == 0);
                            let _ = stun::decode(m, None);
                        }
                        Some(0x40..=0x4F) => {
                            assert!(m.len() % 4 == 0);
                            assert!(ChannelData::parse(m).is_some());
                        }
                        _ => panic!("the decoder yielded a message of no known kind"),
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
