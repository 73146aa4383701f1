#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A controlled agent accepts aggressive nomination (RFC 8445 section 8.1.1
//! allows a peer to send USE-CANDIDATE on its very first check): the pair is
//! selected as soon as the agent's own triggered check succeeds.

mod common;
use std::time::Instant;

use common::*;
use cryptic_ice::{Credentials, Event, PathKind, Role};
use stun_rs::attributes::ice::{IceControlling, Priority, UseCandidate};
use stun_rs::attributes::stun::{Fingerprint, MessageIntegrity, UserName, XorMappedAddress};
use stun_rs::methods::BINDING;
use stun_rs::{
    HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder, StunMessageBuilder,
};

fn encode(b: StunMessageBuilder) -> Vec<u8> {
    let mut buf = vec![0; 512];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, &b.build())
        .unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn use_candidate_on_the_first_check_selects_the_pair_once_our_check_succeeds() {
    let now = Instant::now();
    let mut p = Peer::new(Role::Controlled, "203.0.113.2:5000", 1, now);
    let peer = addr("198.51.100.1:4000");
    let (peer_ufrag, peer_pwd) = ("peer", "peerpasswordpeerpassword");
    p.agent
        .set_remote_credentials(now, Credentials::new(peer_ufrag, peer_pwd).unwrap())
        .unwrap();
    let ours = p.agent.local_credentials().clone();
    // The peer's first check, aggressively nominating; we never got its
    // candidate by signaling, so it is learnt as peer-reflexive.
    let req = encode(
        StunMessageBuilder::new(BINDING, MessageClass::Request)
            .with_transaction_id([7; 12].into())
            .with_attribute(UserName::new(format!("{}:{peer_ufrag}", ours.ufrag)).unwrap())
            .with_attribute(Priority::new(1_845_501_695))
            .with_attribute(IceControlling::new(u64::MAX))
            .with_attribute(UseCandidate::default())
            .with_attribute(MessageIntegrity::new(
                HMACKey::new_short_term(ours.pwd.as_str()).unwrap(),
            ))
            .with_attribute(Fingerprint::default()),
    );
    p.agent.handle_input(now, peer, p.host, &req);
    let response = p.agent.poll_transmit().unwrap();
    assert_eq!(response.destination, peer);
    assert_eq!(
        response.contents[0..2],
        [0x01, 0x01],
        "binding success response"
    );
    // The triggered check goes out at once.
    p.agent.handle_timeout(now);
    let check = p.agent.poll_transmit().unwrap();
    assert_eq!(check.destination, peer);
    let (msg, _) = MessageDecoderBuilder::default()
        .build()
        .decode(&check.contents)
        .unwrap();
    assert_eq!(msg.class(), MessageClass::Request);
    let txid = *msg.transaction_id();
    assert!(!p.local_candidates().is_empty());
    assert!(
        p.agent.selected().is_none(),
        "not before our own check succeeded"
    );
    // The peer answers it.
    let resp = encode(
        StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
            .with_transaction_id(txid)
            .with_attribute(XorMappedAddress::from(p.host))
            .with_attribute(MessageIntegrity::new(
                HMACKey::new_short_term(peer_pwd).unwrap(),
            ))
            .with_attribute(Fingerprint::default()),
    );
    p.agent.handle_input(now, peer, p.host, &resp);
    let selected: Vec<_> = std::iter::from_fn(|| p.agent.poll_event())
        .filter_map(|e| match e {
            Event::Selected(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].remote, peer);
    assert_eq!(selected[0].kind, PathKind::PeerReflexive);
    assert_eq!(p.agent.role(), Role::Controlled);
}
