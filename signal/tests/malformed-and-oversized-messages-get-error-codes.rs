#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! Malformed and oversized messages get an error code and the connection
//! survives them, up to a bounded number after which it is closed.

mod common;

use common::*;
use cryptic_signal::client::Incoming;
use cryptic_signal::wire::{ErrorCode, KeysFetch, Message, MAX_MESSAGE_BYTES};

async fn still_alive(s: &cryptic_signal::client::Sender, r: &mut cryptic_signal::client::Receiver) {
    s.send(&Message::KeysFetch(KeysFetch {
        user: user("nobody"),
    }))
    .await
    .unwrap();
    expect_error(r, ErrorCode::NoKeys).await;
}

#[tokio::test]
async fn each_bad_message_gets_its_code_and_the_connection_survives() {
    let server = TestServer::start().await;
    let (s, mut r) = server.client("alice").await.1.split();
    let id = new_id();
    let cases: Vec<(String, ErrorCode)> = vec![
        ("not json".into(), ErrorCode::Malformed),
        ("[1,2,3]".into(), ErrorCode::Malformed),
        (r#"{"type":"call_dance"}"#.into(), ErrorCode::UnknownType),
        (
            format!(r#"{{"type":"call_hangup","call_id":"{id}","from_user":"alice"}}"#),
            ErrorCode::MissingField,
        ),
        (
            format!(r#"{{"type":"call_hangup","call_id":"{id}","from_user":"alice","to_user":7}}"#),
            ErrorCode::WrongType,
        ),
        (
            format!(
                r#"{{"type":"call_hangup","call_id":"{id}","from_user":"alice","to_user":"bob","x":1}}"#
            ),
            ErrorCode::UnknownField,
        ),
        (
            r#"{"type":"call_hangup","call_id":"nope","from_user":"alice","to_user":"bob"}"#.into(),
            ErrorCode::InvalidValue,
        ),
        (
            format!(
                r#"{{"type":"ping","nonce":1,"pad":"{}"}}"#,
                "a".repeat(MAX_MESSAGE_BYTES + 10)
            ),
            ErrorCode::TooLarge,
        ),
        (
            r#"{"type":"welcome","user":"alice"}"#.into(),
            ErrorCode::NotAllowed,
        ),
    ];
    for (text, code) in cases {
        s.send_raw_text(text).await.unwrap();
        expect_error(&mut r, code).await;
        still_alive(&s, &mut r).await;
    }
    s.send_raw_binary(vec![1, 2, 3]).await.unwrap();
    expect_error(&mut r, ErrorCode::BadBinaryFrame).await;
    s.send_raw_binary(vec![0x52; MAX_MESSAGE_BYTES + 1])
        .await
        .unwrap();
    expect_error(&mut r, ErrorCode::TooLarge).await;
    still_alive(&s, &mut r).await;
    server.stop().await;
}

#[tokio::test]
async fn a_connection_is_closed_after_a_bounded_number_of_bad_messages() {
    let server = TestServer::start().await;
    let (s, mut r) = server.client("alice").await.1.split();
    for _ in 0..25 {
        let _ = s.send_raw_text("garbage".into()).await;
    }
    let mut errors = 0;
    let closed_with = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), r.recv())
            .await
            .unwrap()
        {
            Ok(Incoming::Message(Message::Error(e))) if e.code == ErrorCode::Malformed => {
                errors += 1
            }
            Ok(Incoming::Message(Message::Error(e))) => break Some(e.code),
            Ok(other) => panic!("{other:?}"),
            Err(_) => break None,
        }
    };
    assert_eq!(errors, 20);
    assert_eq!(closed_with, Some(ErrorCode::TooManyErrors));
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), r.recv())
        .await
        .unwrap();
    assert!(end.is_err(), "connection must be closed");
    // The server is fine: a new connection works.
    let (s2, mut r2) = server.client("bob").await.1.split();
    still_alive(&s2, &mut r2).await;
    server.stop().await;
}
