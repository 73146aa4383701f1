#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! The certificate tooling the CLI calls (`ca init`, `ca issue <user>`):
//! a CA saved to disk and loaded back still issues certificates that the
//! server accepts, and a profile directory written for a user connects.

mod common;

use std::os::unix::fs::PermissionsExt as _;

use common::*;
use cryptic_signal::certs::{CertificateAuthority, Validity, CA_KEY_FILE};
use cryptic_signal::client::connect;
use cryptic_signal::profile::Profile;
use cryptic_signal::server::Limits;

#[tokio::test]
async fn a_saved_and_reloaded_ca_issues_profiles_that_connect() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    CertificateAuthority::create("Cryptic Test CA")
        .unwrap()
        .save(&ca_dir)
        .unwrap();
    let mode = std::fs::metadata(ca_dir.join(CA_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // `ca issue alice` in a later process: load, issue, write the profile.
    let ca = CertificateAuthority::load(&ca_dir).unwrap();
    let data = dir.path().join("server-data");
    let server = TestServer::start_in(ca, dir, data, Limits::default()).await;
    let ca = CertificateAuthority::load(&ca_dir).unwrap();
    let cert = ca
        .issue_client(&user("alice"), Validity::days_from_now(30))
        .unwrap();
    let pdir = server.dir.path().join("alice-profile");
    Profile::write(
        &pdir,
        &user("alice"),
        &server.addr.to_string(),
        "127.0.0.1",
        ca.cert_pem(),
        &cert,
    )
    .unwrap();
    let mode = std::fs::metadata(pdir.join("client.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let p = Profile::load(&pdir).unwrap();
    assert_eq!(p.user.as_str(), "alice");
    let c = connect(&p.client_config().unwrap()).await.unwrap();
    assert_eq!(c.user().as_str(), "alice");
    assert!(c.ice_servers().is_empty());
    server.stop().await;
}
