#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! A client with no certificate, an expired one, or one from another CA is
//! refused during the TLS handshake; a valid one still gets in.

mod common;

use common::*;
use cryptic_signal::certs::{CertificateAuthority, Validity};
use cryptic_signal::client::connect;

#[tokio::test]
async fn clients_without_a_valid_certificate_are_refused_and_valid_ones_get_in() {
    let server = TestServer::start().await;
    let p = server.profile("alice");
    let good = p.client_config().unwrap();

    let mut none = good.clone();
    none.identity = None;
    assert!(
        connect(&none).await.is_err(),
        "no certificate must be refused"
    );

    let now = time::OffsetDateTime::now_utc();
    let expired = server
        .ca
        .issue_client(
            &user("alice"),
            Validity {
                not_before: now - time::Duration::days(10),
                not_after: now - time::Duration::days(1),
            },
        )
        .unwrap();
    let mut exp = good.clone();
    exp.identity = Some((expired.cert_pem, expired.key_pem));
    assert!(
        connect(&exp).await.is_err(),
        "an expired certificate must be refused"
    );

    let evil = CertificateAuthority::create("Other CA").unwrap();
    let foreign = evil
        .issue_client(&user("alice"), Validity::days_from_now(1))
        .unwrap();
    let mut other = good.clone();
    other.identity = Some((foreign.cert_pem, foreign.key_pem));
    assert!(
        connect(&other).await.is_err(),
        "a certificate from another CA must be refused"
    );

    assert_eq!(server.stats.connections(), 0);
    let c = connect(&good).await.unwrap();
    assert_eq!(c.user().as_str(), "alice");
    server.stop().await;
}
