//! Short-lived TURN credentials per user: the TURN REST scheme
//! (draft-uberti-behave-turn-rest-00), as coturn checks it with
//! `--use-auth-secret --static-auth-secret=SECRET`.
//!
//! ```text
//! username = "<expiry, unix seconds>:<user>"
//! password = base64(HMAC-SHA1(SECRET, username))
//! ```
//!
//! The TURN server needs no user database: it recomputes the password from
//! the shared secret and refuses a user name whose expiry has passed. No
//! I/O and no clock here: the time comes in as an argument.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::uri::IceUri;
use crate::wire::UserId;
use crate::{Cause, Error};

/// The secret shared with the TURN server. Never printed: its `Debug`
/// shows nothing of it, and it is wiped from memory when dropped.
pub struct TurnSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(hidden)")
    }
}

impl TurnSecret {
    /// The secret as coturn's `--static-auth-secret` takes it: the text,
    /// without surrounding white space (a file's final newline).
    pub fn new(text: &str) -> Result<TurnSecret, Error> {
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::Config(Cause::new("the TURN secret is empty")));
        }
        Ok(TurnSecret(Zeroizing::new(t.as_bytes().to_vec())))
    }

    /// Reads the secret from a file (the file's path may be named in
    /// errors; its contents never are).
    pub fn from_file(path: &Path) -> Result<TurnSecret, Error> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::Storage(Cause::because(
                format!("cannot read the TURN secret file {}", path.display()),
                e,
            ))
        })?);
        TurnSecret::new(&text).map_err(|_| {
            Error::Config(Cause::new(format!(
                "the TURN secret file {} is empty",
                path.display()
            )))
        })
    }

    /// The credential of `user` valid until `now_unix + validity`.
    pub fn credential(&self, user: &UserId, now_unix: u64, validity: Duration) -> TurnCredential {
        let expires_unix = now_unix.saturating_add(validity.as_secs());
        let username = format!("{expires_unix}:{user}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = ring::hmac::sign(&key, username.as_bytes());
        TurnCredential {
            username,
            password: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            expires_unix,
        }
    }
}

/// A TURN user name and password for one user, valid until `expires_unix`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnCredential {
    /// `<expires_unix>:<user>`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// When the TURN server stops accepting it (unix seconds).
    pub expires_unix: u64,
}

impl std::fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How the server hands out TURN credentials.
#[derive(Debug)]
#[non_exhaustive]
pub struct TurnConfig {
    /// The secret shared with the TURN server.
    pub secret: TurnSecret,
    /// How long a credential handed out in `welcome` stays valid. Default 12 h.
    pub validity: Duration,
}

impl TurnConfig {
    /// The default validity (12 h).
    pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(12 * 3600);

    /// Credentials from `secret`, valid for the default 12 h.
    pub fn new(secret: TurnSecret) -> TurnConfig {
        TurnConfig {
            secret,
            validity: Self::DEFAULT_VALIDITY,
        }
    }
}

/// Checks the advertised URIs: each parses, and none carries a static
/// TURN password (the server hands out per-user credentials instead).
pub(crate) fn check_uris(uris: &[String], turn: Option<&TurnConfig>) -> Result<(), Error> {
    for s in uris {
        let u = IceUri::parse(s)
            .map_err(|e| Error::Config(Cause::new(format!("bad ICE server URI {s:?}: {e}"))))?;
        if u.scheme.is_turn() && u.credentials.is_some() {
            return Err(Error::Config(Cause::new(
                "a turn: URI must not carry a password: give the TURN server's shared \
                 secret instead (--turn-secret-file or CRYPTIC_TURN_SECRET) and the server \
                 hands each user short-lived credentials",
            )));
        }
        if u.scheme.is_turn() && turn.is_none() {
            return Err(Error::Config(Cause::new(
                "a turn: server is advertised but no TURN secret is set \
                 (--turn-secret-file or CRYPTIC_TURN_SECRET)",
            )));
        }
    }
    Ok(())
}

/// The URIs as `user` gets them in `welcome`: each `turn:` one with that
/// user's credential (percent-encoded), the others unchanged.
pub(crate) fn advertise(uris: &[String], cred: Option<&TurnCredential>) -> Vec<String> {
    uris.iter()
        .map(|s| match (IceUri::parse(s), cred) {
            (Ok(u), Some(c)) if u.scheme.is_turn() => {
                u.with_credentials(&c.username, &c.password).to_uri()
            }
            _ => s.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn credential_matches_the_turn_rest_formula() {
        // Computed independently: printf '%s' '1700043200:alice' |
        //   openssl dgst -sha1 -hmac 'north' -binary | base64
        let s = TurnSecret::new("north\n").unwrap();
        let c = s.credential(
            &UserId::new("alice").unwrap(),
            1_700_000_000,
            Duration::from_secs(43_200),
        );
        assert_eq!(c.username, "1700043200:alice");
        assert_eq!(c.expires_unix, 1_700_043_200);
        assert_eq!(c.password, "01Pv2e5apc0HX4gVDY1wJke35Uc=");
        assert!(!format!("{s:?}{c:?}").contains("north"));
        assert!(!format!("{c:?}").contains(&c.password));
    }

    #[test]
    fn turn_uris_get_the_users_credential_and_stun_uris_stay() {
        let s = TurnSecret::new("x").unwrap();
        let c = s.credential(&UserId::new("bob").unwrap(), 10, Duration::from_secs(5));
        let out = advertise(
            &[
                "stun:127.0.0.1:3478".into(),
                "turn:127.0.0.1:3478".into(),
                "turn:127.0.0.1:3478?transport=tcp".into(),
                "turns:localhost:5349".into(),
            ],
            Some(&c),
        );
        assert_eq!(out[0], "stun:127.0.0.1:3478");
        for (s, transport) in out[1..].iter().zip(["udp", "tcp", "tls"]) {
            let u = IceUri::parse(s).unwrap();
            assert_eq!(
                u.credentials,
                Some((c.username.clone(), c.password.clone())),
                "{transport}"
            );
        }
        assert!(out[2].ends_with("?transport=tcp"));
        assert!(out[3].starts_with("turns:"));
    }

    #[test]
    fn static_passwords_and_turn_without_a_secret_are_refused() {
        let turn = TurnConfig::new(TurnSecret::new("x").unwrap());
        assert!(check_uris(&["turn:a:b@127.0.0.1:1".into()], Some(&turn)).is_err());
        assert!(check_uris(&["turn:127.0.0.1:1".into()], None).is_err());
        assert!(check_uris(&["stun:127.0.0.1:1".into()], None).is_ok());
        assert!(check_uris(&["turn:127.0.0.1:1".into()], Some(&turn)).is_ok());
        assert!(check_uris(&["turns:a:b@localhost:1".into()], Some(&turn)).is_err());
        assert!(check_uris(&["turns:localhost:5349".into()], None).is_err());
        assert!(check_uris(&["turns:localhost".into()], Some(&turn)).is_ok());
        assert!(TurnSecret::new(" \n").is_err());
    }
}
