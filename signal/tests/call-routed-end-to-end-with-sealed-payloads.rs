#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Two real clients of the library over real TLS on loopback: publish and
//! fetch keys, then invite, answer, trickle, relay and hang up, every payload
//! sealed end to end and driven by the call state machine; both sides derive
//! the same short authentication string.

mod common;

use std::time::Instant;

use common::*;
use cryptic_signal::call::{CallConfig, CallEvent, CallMachine, CallState};
use cryptic_signal::callkey::{self, EphemeralSecret, Side};
use cryptic_signal::client::Incoming;
use cryptic_signal::payload::{
    Answer, AudioCodec, Body, Candidates, CertFingerprint, Contribution, IceParams, Invite,
    Payload, SrtpProfile,
};
use cryptic_signal::wire::{Base64Text, CallId, CallRelayFrame, Message, UserId};

const FP_ALICE: &str = "sha-256 AA:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
const FP_BOB: &str = "sha-256 BB:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";

fn ice() -> IceParams {
    IceParams::new(
        "ufrag".into(),
        "password-password-pass".into(),
        vec!["candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into()],
        false,
    )
}

const PROFILES: [SrtpProfile; 2] = [
    SrtpProfile::AeadAes128Gcm,
    SrtpProfile::CrypticChaCha20Poly1305,
];

fn payload(call_id: CallId, from: &UserId, to: &UserId, counter: u64, body: Body) -> Vec<u8> {
    Payload::new(
        call_id,
        from.clone(),
        to.clone(),
        counter,
        1_800_000_000,
        body,
    )
    .to_bytes()
}

fn contribution(secret: &EphemeralSecret, fp: &str) -> Contribution {
    Contribution::new(
        secret.public_key(),
        [9; 32],
        fp.parse::<CertFingerprint>().unwrap(),
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
    let a_secret = EphemeralSecret::from_bytes([0xa1; 32]);
    let a_contribution = contribution(&a_secret, FP_ALICE);
    let commitment = callkey::commitment(&call_id, &a_contribution);
    let invite = Invite::new(commitment, ice(), vec![AudioCodec::Opus], PROFILES.to_vec());
    let invite_bytes = payload(call_id, &alice, &bob, 0, Body::Invite(invite));
    ma.place_call(
        Instant::now(),
        call_id,
        bob.clone(),
        ea.seal(&bob, &invite_bytes).unwrap(),
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
                break Payload::from_bytes(&eb.unseal(&alice, &payload).unwrap()).unwrap();
            }
            _ => continue,
        }
    };
    assert_eq!(opened.to_bytes(), invite_bytes);

    // Bob answers.
    let b_secret = EphemeralSecret::from_bytes([0xb2; 32]);
    let b_contribution = contribution(&b_secret, FP_BOB);
    let answer = Answer::new(
        b_contribution,
        ice(),
        vec![AudioCodec::Opus],
        PROFILES.to_vec(),
    );
    let answer_bytes = payload(call_id, &bob, &alice, 0, Body::Answer(answer));
    mb.accept(Instant::now(), eb.seal(&alice, &answer_bytes).unwrap())
        .unwrap();
    let upd = Candidates::new(
        vec![
            "candidate:2 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 0.0.0.0 rport 0".into(),
        ],
        true,
    );
    let upd_bytes = payload(call_id, &bob, &alice, 1, Body::Candidates(upd));
    mb.send_candidate(eb.seal(&alice, &upd_bytes).unwrap())
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
                got_answer = Some(ea.unseal(&bob, &payload).unwrap())
            }
            CallEvent::Candidate { payload, .. } => {
                got_cand = Some(ea.unseal(&bob, &payload).unwrap())
            }
            _ => {}
        }
    }
    assert_eq!(got_answer, Some(answer_bytes));
    assert_eq!(got_cand, Some(upd_bytes));
    assert_eq!(ma.state(), CallState::Connecting);

    // Both derive the same version-2 key and SAS (the reveal travels in a
    // sealed call_ice_candidate; here the values are at hand).
    let side = |user, identity_key, contribution| Side {
        user,
        identity_key,
        contribution,
        profiles: &PROFILES,
        codecs: &[AudioCodec::Opus],
    };
    let (ka_id, kb_id) = (ea.identity_key().0, eb.identity_key().0);
    let t = callkey::transcript(
        &call_id,
        &commitment,
        &side(&alice, ka_id, &a_contribution),
        &side(&bob, kb_id, &b_contribution),
    );
    let ka = a_secret
        .call_key(&b_contribution.ephemeral_key.0, &t)
        .unwrap();
    let kb = b_secret
        .call_key(&a_contribution.ephemeral_key.0, &t)
        .unwrap();
    assert_eq!(ka, kb);
    assert_eq!(ka.sas(), kb.sas());

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
