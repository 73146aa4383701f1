#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A sealed payload altered in transit (one bit flipped, then sent through a
//! real server) fails to open; the genuine one still opens afterwards.

mod common;

use common::*;
use cryptic_signal::wire::{CallIceCandidate, Message, Sealed};
use cryptic_signal::Error;

#[tokio::test]
async fn a_payload_altered_in_transit_fails_to_open_and_the_genuine_one_still_opens() {
    let server = TestServer::start().await;
    let (pa, mut ca) = server.client("alice").await;
    let (pb, mut cb) = server.client("bob").await;
    let mut ea = pa.e2e().unwrap();
    let mut eb = pb.e2e().unwrap();
    cb.publish_keys(eb.keys_to_publish(3).unwrap())
        .await
        .unwrap();
    ea.start_session(&ca.fetch_keys(&user("bob")).await.unwrap())
        .unwrap();
    let plain = b"{\"dtls_fingerprint\":\"sha-256 AA\"}";
    let genuine = ea.seal(&user("bob"), plain).unwrap();
    let mut body = genuine.body().unwrap();
    let n = body.len();
    body[n - 20] ^= 0x01;
    let altered = Sealed::new(genuine.kind(), &body).unwrap();

    let (sa, _ra) = ca.split();
    let (_sb, mut rb) = cb.split();
    let id = new_id();
    let mut m = invite(id, "alice", "bob");
    if let Message::CallInvite(inv) = &mut m {
        inv.encrypted_payload = altered;
    }
    sa.send(&m).await.unwrap();
    let Message::CallInvite(got) = next_msg(&mut rb).await else {
        panic!("not an invite")
    };
    let r = eb.unseal(&user("alice"), &got.encrypted_payload);
    assert!(matches!(r, Err(Error::DecryptFailed)), "{r:?}");

    sa.send(&Message::CallIceCandidate(CallIceCandidate {
        call_id: id,
        from_user: user("alice"),
        to_user: user("bob"),
        encrypted_candidate: genuine,
    }))
    .await
    .unwrap();
    let Message::CallIceCandidate(got) = next_msg(&mut rb).await else {
        panic!("not a candidate")
    };
    assert_eq!(
        eb.unseal(&user("alice"), &got.encrypted_candidate).unwrap(),
        plain
    );
    server.stop().await;
}
