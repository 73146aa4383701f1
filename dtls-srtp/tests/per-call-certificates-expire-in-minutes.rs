//! A per-call DTLS certificate authenticates one handshake: it is valid for
//! minutes around its making, not for decades.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::handshake::Identity;

#[test]
fn a_per_call_certificate_is_valid_for_twenty_minutes_at_most() {
    let id = Identity::generate().unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(id.certificate_der()).unwrap();
    let v = cert.validity();
    let span = v.not_after.timestamp() - v.not_before.timestamp();
    assert!(span <= 20 * 60, "valid for {span} s");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(v.not_before.timestamp() <= now && now < v.not_after.timestamp());
}
