#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Malformed STUN, wrong MESSAGE-INTEGRITY, unknown comprehension-required
//! attributes, responses to transactions never sent and floods of binding
//! requests: dropped or answered as RFC 8489 / RFC 8445 say, bounded memory.

mod common;
use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use cryptic_ice::{Received, Role};
use stun_rs::attributes::ice::{IceControlled, Priority};
use stun_rs::attributes::stun::{
    ErrorCode, Fingerprint, MessageIntegrity, UnknownAttributes, UserName,
};
use stun_rs::methods::BINDING;
use stun_rs::{
    HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder,
};

fn request(user: &str, pwd: &str, txid: [u8; 12]) -> Vec<u8> {
    let msg = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_transaction_id(txid.into())
        .with_attribute(UserName::new(user).unwrap())
        .with_attribute(Priority::new(1_845_501_695))
        .with_attribute(IceControlled::new(7))
        .with_attribute(MessageIntegrity::new(HMACKey::new_short_term(pwd).unwrap()))
        .with_attribute(Fingerprint::default())
        .build();
    let mut buf = vec![0; 512];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .unwrap();
    buf.truncate(n);
    buf
}

fn error_of(bytes: &[u8]) -> (u16, Vec<u16>) {
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(bytes)
        .unwrap();
    assert_eq!(msg.class(), MessageClass::ErrorResponse);
    let code = msg
        .get::<ErrorCode>()
        .unwrap()
        .as_error_code()
        .unwrap()
        .error_code()
        .error_code();
    let unknown = msg
        .get::<UnknownAttributes>()
        .map(|u| u.as_unknown_attributes().unwrap().attributes().to_vec())
        .unwrap_or_default();
    (code, unknown)
}

fn agent() -> Peer {
    Peer::new(Role::Controlling, "198.51.100.1:4000", 9, Instant::now())
}

#[test]
fn garbage_and_truncated_messages_are_dropped_silently() {
    let mut p = agent();
    let now = Instant::now();
    let from = addr("192.0.2.1:1000");
    let good = request(
        &format!("{}:peer", p.agent.local_credentials().ufrag),
        &p.agent.local_credentials().pwd,
        [1; 12],
    );
    for bad in [
        &[][..],
        &[0, 1],
        &[0xFF; 40][..],
        &good[..good.len() - 1],
        &good[..20],
        &[1u8; 300][..],
    ] {
        assert_eq!(
            p.agent.handle_input(now, from, p.host, bad),
            Received::Dropped
        );
    }
    let mut bad_cookie = good.clone();
    bad_cookie[4] ^= 1;
    assert_eq!(
        p.agent.handle_input(now, from, p.host, &bad_cookie),
        Received::Dropped
    );
    assert!(p.agent.poll_transmit().is_none());
}

#[test]
fn wrong_message_integrity_is_answered_401_and_learns_nothing() {
    let mut p = agent();
    let now = Instant::now();
    let from = addr("192.0.2.1:1000");
    let ufrag = p.agent.local_credentials().ufrag.clone();
    let req = request(
        &format!("{ufrag}:peer"),
        "wrongwrongwrongwrongwrong",
        [2; 12],
    );
    assert_eq!(
        p.agent.handle_input(now, from, p.host, &req),
        Received::Consumed
    );
    let t = p.agent.poll_transmit().unwrap();
    assert_eq!(t.destination, from);
    assert_eq!(error_of(&t.contents).0, 401);
    assert!(p.agent.poll_transmit().is_none());
    assert_eq!(p.agent.pair_count(), 0);
    // A username for someone else: 401 too.
    let req = request(
        "someone:peer",
        &p.agent.local_credentials().pwd.clone(),
        [3; 12],
    );
    p.agent.handle_input(now, from, p.host, &req);
    assert_eq!(error_of(&p.agent.poll_transmit().unwrap().contents).0, 401);
}

#[test]
fn unknown_comprehension_required_attribute_is_answered_420() {
    let mut p = agent();
    let now = Instant::now();
    // Large enough for the answer: an unauthenticated source gets no
    // response larger than its request.
    let mut raw = vec![0x00, 0x01, 0x00, 0x40, 0x21, 0x12, 0xA4, 0x42];
    raw.extend_from_slice(&[4; 12]);
    raw.extend_from_slice(&[0x00, 0x77, 0x00, 0x3C]);
    raw.extend_from_slice(&[1; 60]);
    assert_eq!(
        p.agent
            .handle_input(now, addr("192.0.2.1:1000"), p.host, &raw),
        Received::Consumed
    );
    let t = p.agent.poll_transmit().unwrap();
    assert!(t.contents.len() <= raw.len());
    let (code, unknown) = error_of(&t.contents);
    assert_eq!((code, unknown), (420, vec![0x0077]));
}

#[test]
fn an_unauthenticated_request_gets_no_answer_larger_than_itself() {
    let mut p = agent();
    let now = Instant::now();
    let from = addr("192.0.2.1:1000");
    // 28 bytes: the 420 (64 bytes) and 400 (48 bytes) answers would
    // amplify a forged source; nothing goes out.
    let mut raw = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42];
    raw.extend_from_slice(&[4; 12]);
    raw.extend_from_slice(&[0x00, 0x77, 0x00, 0x04, 1, 2, 3, 4]);
    assert_eq!(
        p.agent.handle_input(now, from, p.host, &raw),
        Received::Consumed
    );
    let bare = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    ];
    assert_eq!(
        p.agent.handle_input(now, from, p.host, &bare),
        Received::Consumed
    );
    assert!(p.agent.poll_transmit().is_none());
    // Every error answered to a stranger is no larger than its request.
    let ufrag = p.agent.local_credentials().ufrag.clone();
    for user in [format!("{ufrag}:peer"), "someone:peer".to_string()] {
        let req = request(&user, "wrongwrongwrongwrongwrong", [6; 12]);
        p.agent.handle_input(now, from, p.host, &req);
        let t = p.agent.poll_transmit().unwrap();
        assert!(
            t.contents.len() <= req.len(),
            "{} > {}",
            t.contents.len(),
            req.len()
        );
    }
}

#[test]
fn a_request_with_a_wrong_fingerprint_is_dropped() {
    let mut p = agent();
    let now = Instant::now();
    let mut req = request(
        &format!("{}:peer", p.agent.local_credentials().ufrag),
        &p.agent.local_credentials().pwd,
        [7; 12],
    );
    let last = req.len() - 1;
    req[last] ^= 0x40;
    assert_eq!(
        p.agent
            .handle_input(now, addr("192.0.2.1:1000"), p.host, &req),
        Received::Dropped
    );
    assert!(p.agent.poll_transmit().is_none(), "not answered");
    assert_eq!(p.agent.pair_count(), 0, "nothing learnt");
}

#[test]
fn responses_to_transactions_never_sent_are_dropped() {
    let mut p = agent();
    let now = Instant::now();
    let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
        .with_transaction_id([9; 12].into())
        .with_attribute(Fingerprint::default())
        .build();
    let mut buf = vec![0; 128];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &msg)
        .unwrap();
    assert_eq!(
        p.agent
            .handle_input(now, addr("192.0.2.1:1000"), p.host, &buf[..n]),
        Received::Dropped
    );
    assert!(p.agent.poll_transmit().is_none());
}

#[test]
fn a_flood_of_authenticated_requests_costs_bounded_state() {
    let mut p = agent();
    let now = Instant::now();
    let (ufrag, pwd) = (
        p.agent.local_credentials().ufrag.clone(),
        p.agent.local_credentials().pwd.clone(),
    );
    let req = request(&format!("{ufrag}:peer"), &pwd, [5; 12]);
    let mut answered = 0;
    for i in 0..5000u32 {
        let from = SocketAddr::from((
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            1000 + (i % 50) as u16,
        ));
        assert_eq!(
            p.agent.handle_input(now, from, p.host, &req),
            Received::Consumed
        );
        while let Some(t) = p.agent.poll_transmit() {
            if t.destination == from {
                answered += 1;
            }
        }
        p.agent.handle_timeout(now);
    }
    assert_eq!(answered, 5000, "every authenticated request is answered");
    assert!(p.agent.pair_count() <= 100);
}
