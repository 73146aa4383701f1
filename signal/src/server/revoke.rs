//! The revocation list: users and certificates the server refuses although
//! their certificates verify (a lost device, a departed user).
//!
//! A text file the operator writes with `cryptic-call ca revoke` on the CA
//! host and copies to each server; the server reads it at start and again
//! on SIGHUP. One entry a line, `#` starts a comment:
//!
//! ```text
//! # cryptic-call revocation list
//! user alice
//! sha256 3f:a1:...:09      the SHA-256 of one certificate (DER), hex, colons optional
//! ```
//!
//! `user` refuses every certificate of that user, including ones issued
//! later; `sha256` refuses one certificate (one device) only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::wire::UserId;
use crate::{Cause, Error};

/// The SHA-256 of a certificate's DER encoding.
pub type CertFingerprint = [u8; 32];

/// The fingerprint of a certificate (DER).
pub fn fingerprint(der: &[u8]) -> CertFingerprint {
    Sha256::digest(der).into()
}

/// A parsed revocation list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    users: BTreeSet<UserId>,
    certs: BTreeSet<CertFingerprint>,
}

impl Revocations {
    /// Parses the list's text; an error names the line and what is wrong.
    pub fn parse(text: &str) -> Result<Revocations, String> {
        let mut r = Revocations::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.split_once('#').map_or(line, |(l, _)| l).trim();
            if line.is_empty() {
                continue;
            }
            let at = |e: &str| format!("line {}: {e}", i + 1);
            let (kind, value) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| at("expected `user NAME` or `sha256 HEX`"))?;
            let value = value.trim();
            match kind {
                "user" => {
                    let u = UserId::new(value).map_err(|e| at(&format!("bad user name: {e}")))?;
                    r.users.insert(u);
                }
                "sha256" => {
                    let fp = parse_hex32(value).ok_or_else(|| {
                        at("a sha256 fingerprint is 32 bytes in hex (colons optional)")
                    })?;
                    r.certs.insert(fp);
                }
                _ => return Err(at("expected `user NAME` or `sha256 HEX`")),
            }
        }
        Ok(r)
    }

    /// Reads and parses the list in `path`.
    pub fn load(path: &Path) -> Result<Revocations, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Storage(Cause::because(
                format!("cannot read the revocation list {}", path.display()),
                e,
            ))
        })?;
        Revocations::parse(&text).map_err(|e| {
            Error::Config(Cause::new(format!(
                "revocation list {}: {e}",
                path.display()
            )))
        })
    }

    /// Whether a connection of `user` with the certificate `cert` is refused.
    pub fn refuses(&self, user: &UserId, cert: &CertFingerprint) -> bool {
        self.users.contains(user) || self.certs.contains(cert)
    }

    /// Adds every certificate of `user`; false when it was there already.
    pub fn revoke_user(&mut self, user: UserId) -> bool {
        self.users.insert(user)
    }

    /// Adds one certificate; false when it was there already.
    pub fn revoke_cert(&mut self, cert: CertFingerprint) -> bool {
        self.certs.insert(cert)
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.users.len() + self.certs.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list as text, the form [`Revocations::parse`] reads.
    pub fn to_text(&self) -> String {
        let mut s = String::from(
            "# cryptic-call revocation list (`cryptic-call ca revoke`); the server\n\
             # reads it at start and on SIGHUP. `user NAME` or `sha256 HEX`.\n",
        );
        for u in &self.users {
            let _ = writeln!(s, "user {u}");
        }
        for c in &self.certs {
            s.push_str("sha256 ");
            for (i, b) in c.iter().enumerate() {
                let sep = if i == 0 { "" } else { ":" };
                let _ = write!(s, "{sep}{b:02x}");
            }
            s.push('\n');
        }
        s
    }
}

fn parse_hex32(s: &str) -> Option<CertFingerprint> {
    let hex: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_written_list_reads_back_and_refuses_its_entries() {
        let mut r = Revocations::default();
        assert!(r.revoke_user(UserId::new("alice").unwrap()));
        assert!(!r.revoke_user(UserId::new("alice").unwrap()));
        let fp = fingerprint(b"bob's certificate");
        assert!(r.revoke_cert(fp));
        let back = Revocations::parse(&r.to_text()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.len(), 2);
        let alice = UserId::new("alice").unwrap();
        let bob = UserId::new("bob").unwrap();
        assert!(back.refuses(&alice, &fingerprint(b"any")));
        assert!(back.refuses(&bob, &fp));
        assert!(!back.refuses(&bob, &fingerprint(b"bob's new certificate")));
    }

    #[test]
    fn bad_lines_are_named() {
        let e = Revocations::parse("user alice\n\nfrobnicate x\n").unwrap_err();
        assert!(e.starts_with("line 3:"), "{e}");
        assert!(Revocations::parse("user Alice!").is_err());
        assert!(Revocations::parse("sha256 abcd").is_err());
        assert!(Revocations::parse("user").is_err());
        let ok = Revocations::parse("  # only a comment\nuser bob # trailing\n").unwrap();
        assert_eq!(ok.len(), 1);
    }
}
