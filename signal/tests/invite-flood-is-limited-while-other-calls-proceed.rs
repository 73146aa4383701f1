#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! One sender flooding invites (and messages) is limited; other users' calls
//! proceed meanwhile.

mod common;

use common::*;
use cryptic_signal::wire::{ErrorCode, Message};

#[tokio::test]
async fn an_invite_flood_is_limited_while_other_users_calls_proceed() {
    let server = TestServer::start().await;
    let (sm, mut rm) = server.client("mallory").await.1.split();
    let (_sv, mut rv) = server.client("victim").await.1.split();
    let (sa, mut ra) = server.client("alice").await.1.split();
    let (sb, mut rb) = server.client("bob").await.1.split();

    let flood = tokio::spawn(async move {
        for i in 0..40 {
            let to = if i % 2 == 0 { "victim" } else { "bob" };
            sm.send(&invite(new_id(), "mallory", to)).await.unwrap();
        }
        let mut limited = 0;
        let mut other = Vec::new();
        while let Ok(Ok(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(500), rm.recv()).await
        {
            match m {
                cryptic_signal::client::Incoming::Message(Message::Error(e))
                    if e.code == ErrorCode::RateLimited =>
                {
                    limited += 1
                }
                m => other.push(m),
            }
        }
        (limited, other, sm)
    });

    // Meanwhile alice calls bob and bob answers.
    let id = new_id();
    sa.send(&invite(id, "alice", "bob")).await.unwrap();
    let got = loop {
        let m = next_msg(&mut rb).await;
        if m.call_id() == Some(id) {
            break m;
        }
        assert_eq!(m.route().unwrap().0.as_str(), "mallory");
    };
    assert!(matches!(got, Message::CallInvite(_)));
    sb.send(&answer(id, "bob", "alice")).await.unwrap();
    assert!(matches!(next_msg(&mut ra).await, Message::CallAnswer(_)));

    let (limited, other, _keep_mallory_connected) = flood.await.unwrap();
    assert_eq!(
        limited, 39,
        "only the first unanswered invite may pass; others: {other:?}"
    );
    // The victim saw exactly one invite.
    assert!(matches!(next_msg(&mut rv).await, Message::CallInvite(_)));
    nothing_within(&mut rv, 200).await;
    server.stop().await;
}

#[tokio::test]
async fn a_connection_sending_too_many_messages_is_rate_limited() {
    let server = TestServer::start().await;
    let (s, mut r) = server.client("chatty").await.1.split();
    for _ in 0..400 {
        s.send(&Message::KeysFetch(cryptic_signal::wire::KeysFetch {
            user: user("nobody"),
        }))
        .await
        .unwrap();
    }
    let mut no_keys = 0;
    let mut limited = 0;
    while let Ok(Ok(cryptic_signal::client::Incoming::Message(Message::Error(e)))) =
        tokio::time::timeout(std::time::Duration::from_millis(500), r.recv()).await
    {
        match e.code {
            ErrorCode::NoKeys => no_keys += 1,
            ErrorCode::RateLimited => limited += 1,
            c => panic!("unexpected {c:?}"),
        }
    }
    assert_eq!(no_keys + limited, 400);
    assert!(limited >= 100, "limited {limited}");
    server.stop().await;
}
