#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Two real clients of the library over real TLS on loopback: publish and
//! fetch keys, then invite, answer, trickle, relay and hang up, every payload
//! sealed end to end and driven by the call state machine; both sides derive
//! the same short authentication string.

mod common;

use std::time::Instant;

use common::*;
use cryptic_signal::call::{CallConfig, CallEvent, CallMachine, CallState};
use cryptic_signal::callkey::CallKey;
use cryptic_signal::client::Incoming;
use cryptic_signal::payload::{CallOffer, CandidateUpdate};
use cryptic_signal::wire::{Base64Text, CallId, CallRelayFrame, Message};

const FP_ALICE: &str = "sha-256 AA:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
const FP_BOB: &str = "sha-256 BB:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";

fn offer(fp: &str) -> CallOffer {
    CallOffer::new(
        &mut rand::rng(),
        fp.into(),
        "ufrag".into(),
        "password-password".into(),
        vec!["candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into()],
        false,
        vec!["opus/48000/2".into()],
        vec![
            "AEAD_AES_128_GCM".into(),
            "CRYPTIC_CHACHA20_POLY1305".into(),
        ],
    )
}

#[tokio::test]
async fn invite_answer_trickle_relay_and_hangup_flow_end_to_end_with_sealed_payloads() {
    let server = TestServer::start().await;
    let (pa, mut ca) = server.client("alice").await;
    let (pb, mut cb) = server.client("bob").await;
    let mut ea = pa.e2e().unwrap();
    let mut eb = pb.e2e().unwrap();
    assert_eq!(
        ca.publish_keys(ea.keys_to_publish(5).unwrap())
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        cb.publish_keys(eb.keys_to_publish(5).unwrap())
            .await
            .unwrap(),
        5
    );

    // Alice calls Bob.
    let bob = user("bob");
    let alice = user("alice");
    let bundle = ca.fetch_keys(&bob).await.unwrap();
    assert!(!bundle.fallback);
    ea.start_session(&bundle).unwrap();
    let (sa, mut ra) = ca.split();
    let (sb, mut rb) = cb.split();
    let mut ma = CallMachine::new(alice.clone(), CallConfig::default());
    let mut mb = CallMachine::new(bob.clone(), CallConfig::default());
    let call_id = CallId::random(&mut rand::rng());
    let a_offer = offer(FP_ALICE);
    ma.place_call(
        Instant::now(),
        call_id,
        bob.clone(),
        ea.seal(&bob, &a_offer.to_bytes()).unwrap(),
    )
    .unwrap();
    while let Some(m) = ma.poll_transmit() {
        sa.send(&m).await.unwrap();
    }

    // Bob rings and opens the offer.
    mb.handle_message(Instant::now(), next_msg(&mut rb).await);
    assert_eq!(mb.state(), CallState::Ringing);
    let opened = loop {
        match mb.poll_event().unwrap() {
            CallEvent::Incoming { from, payload, .. } => {
                assert_eq!(from, alice);
                break CallOffer::from_bytes(&eb.unseal(&alice, &payload).unwrap()).unwrap();
            }
            _ => continue,
        }
    };
    assert_eq!(opened, a_offer);

    // Bob answers.
    let b_offer = offer(FP_BOB);
    mb.accept(
        Instant::now(),
        eb.seal(&alice, &b_offer.to_bytes()).unwrap(),
    )
    .unwrap();
    let upd = CandidateUpdate::new(
        vec![
            "candidate:2 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 0.0.0.0 rport 0".into(),
        ],
        true,
    );
    mb.send_candidate(eb.seal(&alice, &upd.to_bytes()).unwrap())
        .unwrap();
    while let Some(m) = mb.poll_transmit() {
        sb.send(&m).await.unwrap();
    }
    ma.handle_message(Instant::now(), next_msg(&mut ra).await);
    ma.handle_message(Instant::now(), next_msg(&mut ra).await);
    let mut got_answer = None;
    let mut got_cand = None;
    while let Some(e) = ma.poll_event() {
        match e {
            CallEvent::Answer { payload, .. } => {
                got_answer =
                    Some(CallOffer::from_bytes(&ea.unseal(&bob, &payload).unwrap()).unwrap())
            }
            CallEvent::Candidate { payload, .. } => {
                got_cand =
                    Some(CandidateUpdate::from_bytes(&ea.unseal(&bob, &payload).unwrap()).unwrap())
            }
            _ => {}
        }
    }
    assert_eq!(got_answer.as_ref(), Some(&b_offer));
    assert_eq!(got_cand, Some(upd));
    assert_eq!(ma.state(), CallState::Connecting);

    // Both derive the same key and SAS.
    let ka = CallKey::derive(&call_id, &a_offer.call_nonce, &b_offer.call_nonce);
    let kb = CallKey::derive(&call_id, &opened.call_nonce, &b_offer.call_nonce);
    assert_eq!(ka, kb);
    assert_eq!(
        ka.short_auth_string(FP_ALICE, FP_BOB).unwrap(),
        kb.short_auth_string(FP_ALICE, FP_BOB).unwrap()
    );

    // Relay frames both ways, binary and JSON.
    for seq in 0..20u64 {
        sa.send_relay(call_id, seq, &[seq as u8; 160])
            .await
            .unwrap();
    }
    for seq in 0..20u64 {
        match next(&mut rb).await {
            Incoming::Relay {
                call_id: c,
                seq: s,
                frame,
            } => {
                assert_eq!((c, s), (call_id, seq));
                assert_eq!(&frame[..], &[seq as u8; 160][..]);
            }
            other => panic!("{other:?}"),
        }
    }
    let jf = Message::CallRelayFrame(CallRelayFrame {
        call_id,
        from_user: bob.clone(),
        to_user: alice.clone(),
        seq: 1,
        encrypted_frame: Base64Text::encode(b"dtls"),
    });
    sb.send(&jf).await.unwrap();
    assert_eq!(next_msg(&mut ra).await, jf);

    // Alice hangs up; Bob sees it.
    ma.media_connected(Instant::now());
    ma.hangup(Instant::now()).unwrap();
    while let Some(m) = ma.poll_transmit() {
        sa.send(&m).await.unwrap();
    }
    mb.handle_message(Instant::now(), next_msg(&mut rb).await);
    assert_eq!(mb.state(), CallState::Ended);
    // The registry forgot the call: a frame for it is now refused.
    sb.send_relay(call_id, 99, b"late").await.unwrap();
    expect_error(&mut rb, cryptic_signal::wire::ErrorCode::UnknownCall).await;
    assert_eq!(server.stats.calls(), 0);
    server.stop().await;
}
