//! End-to-end sealed payloads: vodozemac's Olm (3DH + Double Ratchet).
//!
//! Each user has one [`E2eStore`] in their profile directory (`e2e.json`,
//! mode 0600, rewritten atomically after every change): the Olm account
//! (identity keys, one-time keys, fallback key), the pairwise sessions, and
//! the pinned identity keys of peers.
//!
//! ```text
//! alice                           server                           bob
//!   keys_fetch{bob} ------------->  key directory (SQLite)
//!   <------------- keys_bundle{identity, signing, one-time key}
//!   start_session(bundle)   (verify signatures, pin bob's key on first use)
//!   seal(bob, offer) -> "0:<pre-key message>" ---- call_invite ---> unseal(alice, ..)
//!                                                  (pins alice, creates the inbound session)
//!   unseal(bob, ..) <---- call_answer "1:<message>" --------------- seal(alice, answer)
//! ```
//!
//! A peer whose identity key differs from the pinned one is refused with
//! [`Error::PeerKeyChanged`] until the user calls [`E2eStore::accept_new_key`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vodozemac::olm::{Account, AccountPickle, OlmMessage, Session, SessionConfig, SessionPickle};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

use crate::wire::{
    B64Bytes, CallId, KeysBundle, KeysPublish, PublicKey, Sealed, SignedKey, UserId,
};
use crate::Error;

/// File name of the store inside a profile directory.
pub const STORE_FILE: &str = "e2e.json";

/// What the Ed25519 key signs to bind the Curve25519 identity key:
/// `"cryptic_identity_v1:" || base64(curve25519 identity key)`.
pub fn identity_statement(identity_key: &PublicKey) -> Vec<u8> {
    format!("cryptic_identity_v1:{}", identity_key.to_base64()).into_bytes()
}

/// What the Ed25519 key signs for a one-time or fallback key:
/// `"cryptic_otk_v1:" || base64(curve25519 key)`.
pub fn one_time_key_statement(key: &PublicKey) -> Vec<u8> {
    format!("cryptic_otk_v1:{}", key.to_base64()).into_bytes()
}

/// A peer's pinned keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedKey {
    /// Curve25519 identity key (what Olm authenticates).
    pub identity_key: PublicKey,
    /// Ed25519 signing key, when learnt from the key directory.
    #[serde(default)]
    pub signing_key: Option<PublicKey>,
    /// The user compared the safety number with the peer and confirmed it.
    #[serde(default)]
    pub verified: bool,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    account: AccountPickle,
    #[serde(default)]
    sessions: BTreeMap<String, Vec<SessionPickle>>,
    #[serde(default)]
    pins: BTreeMap<String, PinnedKey>,
    #[serde(default)]
    pending: BTreeMap<String, PinnedKey>,
    /// Invites seen lately: call id -> their `sent_at` (Unix seconds).
    #[serde(default)]
    seen_invites: BTreeMap<String, i64>,
    /// The session a message from a changed key opened, kept until the
    /// user accepts the key.
    #[serde(default)]
    pending_sessions: BTreeMap<String, SessionPickle>,
}

/// A user's Olm account, sessions and pinned peer keys, persisted in the profile.
pub struct E2eStore {
    /// Where it is saved (`None`: kept in memory only).
    path: Option<PathBuf>,
    account: Account,
    sessions: BTreeMap<UserId, Vec<Session>>,
    pins: BTreeMap<UserId, PinnedKey>,
    pending: BTreeMap<UserId, PinnedKey>,
    seen_invites: BTreeMap<String, i64>,
    pending_sessions: BTreeMap<UserId, Session>,
    /// Seal and unseal leave the save to [`E2eStore::take_snapshot`].
    deferred: bool,
    /// Changed since the last save.
    dirty: bool,
}

/// The store's bytes to write, taken on the async side and written where
/// blocking is fine ([`StoreSnapshot::write`]).
#[derive(Debug)]
pub struct StoreSnapshot {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl StoreSnapshot {
    /// Writes the snapshot atomically with mode 0600 (blocking: fsync).
    pub fn write(self) -> Result<(), Error> {
        write_private(&self.path, &self.bytes)
    }
}

/// How far an invite's `sent_at` may be from our clock, in seconds.
pub const INVITE_WINDOW_SECS: i64 = 120;
/// Invites remembered at most (the window keeps far fewer in practice).
const MAX_SEEN_INVITES: usize = 10_000;

impl std::fmt::Debug for E2eStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2eStore")
            .field("path", &self.path)
            .field("pins", &self.pins.len())
            .finish()
    }
}

fn pk(k: Curve25519PublicKey) -> PublicKey {
    B64Bytes(k.to_bytes())
}

impl E2eStore {
    /// Loads `dir/e2e.json`, or creates a fresh account there.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(STORE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let f: StoreFile = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Storage(crate::Cause::because(path.display().to_string(), e))
                })?;
                let mut sessions = BTreeMap::new();
                for (u, v) in f.sessions {
                    let u = UserId::new(&u).map_err(|e| Error::Storage(e.into()))?;
                    sessions.insert(u, v.into_iter().map(Session::from_pickle).collect());
                }
                let conv =
                    |m: BTreeMap<String, PinnedKey>| -> Result<BTreeMap<UserId, PinnedKey>, Error> {
                        m.into_iter()
                            .map(|(u, p)| {
                                Ok((UserId::new(&u).map_err(|e| Error::Storage(e.into()))?, p))
                            })
                            .collect()
                    };
                Ok(Self {
                    path: Some(path),
                    account: Account::from_pickle(f.account),
                    sessions,
                    pins: conv(f.pins)?,
                    pending: conv(f.pending)?,
                    seen_invites: f.seen_invites,
                    pending_sessions: f
                        .pending_sessions
                        .into_iter()
                        .map(|(u, p)| {
                            Ok((
                                UserId::new(&u).map_err(|e| Error::Storage(e.into()))?,
                                Session::from_pickle(p),
                            ))
                        })
                        .collect::<Result<_, Error>>()?,
                    deferred: false,
                    dirty: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Self {
                    path: Some(path),
                    account: Account::new(),
                    sessions: BTreeMap::new(),
                    pins: BTreeMap::new(),
                    pending: BTreeMap::new(),
                    seen_invites: BTreeMap::new(),
                    pending_sessions: BTreeMap::new(),
                    deferred: false,
                    dirty: false,
                };
                s.save()?;
                Ok(s)
            }
            Err(e) => Err(Error::Storage(crate::Cause::because(
                path.display().to_string(),
                e,
            ))),
        }
    }

    /// A fresh account kept in memory only (never saved): for tests and
    /// simulations.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            account: Account::new(),
            sessions: BTreeMap::new(),
            pins: BTreeMap::new(),
            pending: BTreeMap::new(),
            seen_invites: BTreeMap::new(),
            pending_sessions: BTreeMap::new(),
            deferred: false,
            dirty: false,
        }
    }

    /// Writes the store atomically with mode 0600 (nothing for a store
    /// kept in memory).
    pub fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        write_private(path, &self.to_bytes()?)
    }

    /// While on, [`E2eStore::seal`] and [`E2eStore::unseal`] do not write
    /// the file themselves: the caller takes [`E2eStore::take_snapshot`] and
    /// writes it off the async threads before anything it sealed leaves (a
    /// crash must never make a ratchet key be used twice).
    pub fn set_deferred_saves(&mut self, on: bool) {
        self.deferred = on;
    }

    /// The bytes to write when something changed since the last snapshot
    /// (`None` for a store kept in memory, or when nothing changed).
    pub fn take_snapshot(&mut self) -> Result<Option<StoreSnapshot>, Error> {
        if !std::mem::take(&mut self.dirty) {
            return Ok(None);
        }
        let Some(path) = self.path.clone() else {
            return Ok(None);
        };
        Ok(Some(StoreSnapshot {
            path,
            bytes: self.to_bytes()?,
        }))
    }

    /// Saves now, or (deferred) marks the store for the next snapshot.
    fn save_or_defer(&mut self) -> Result<(), Error> {
        if self.deferred {
            self.dirty = true;
            Ok(())
        } else {
            self.save()
        }
    }

    fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let f = StoreFile {
            account: self.account.pickle(),
            sessions: self
                .sessions
                .iter()
                .map(|(u, v)| {
                    (
                        u.as_str().to_owned(),
                        v.iter().map(Session::pickle).collect(),
                    )
                })
                .collect(),
            pins: self
                .pins
                .iter()
                .map(|(u, p)| (u.as_str().to_owned(), p.clone()))
                .collect(),
            pending: self
                .pending
                .iter()
                .map(|(u, p)| (u.as_str().to_owned(), p.clone()))
                .collect(),
            seen_invites: self.seen_invites.clone(),
            pending_sessions: self
                .pending_sessions
                .iter()
                .map(|(u, s)| (u.as_str().to_owned(), s.pickle()))
                .collect(),
        };
        serde_json::to_vec(&f).map_err(|e| Error::Storage(crate::Cause::because("e2e store", e)))
    }

    /// Our Curve25519 identity key.
    pub fn identity_key(&self) -> PublicKey {
        pk(self.account.identity_keys().curve25519)
    }

    /// Our Ed25519 signing key.
    pub fn signing_key(&self) -> PublicKey {
        B64Bytes(*self.account.identity_keys().ed25519.as_bytes())
    }

    fn signed(&self, k: Curve25519PublicKey) -> SignedKey {
        let key = pk(k);
        SignedKey {
            signature: B64Bytes(self.account.sign(one_time_key_statement(&key)).to_bytes()),
            key,
        }
    }

    /// Generates `count` fresh one-time keys (and a fallback key if there is
    /// none), marks them published, saves, and returns the `keys_publish`
    /// message body. `count` is capped at 100.
    pub fn keys_to_publish(&mut self, count: usize) -> Result<KeysPublish, Error> {
        let count = count.min(100);
        if count > 0 {
            self.account.generate_one_time_keys(count);
        }
        if self.account.fallback_key().is_empty() {
            self.account.generate_fallback_key();
        }
        let one_time_keys = self
            .account
            .one_time_keys()
            .into_values()
            .map(|k| self.signed(k))
            .collect();
        let fallback_key = self
            .account
            .fallback_key()
            .into_values()
            .next()
            .map(|k| self.signed(k));
        self.account.mark_keys_as_published();
        self.save()?;
        let identity_key = self.identity_key();
        Ok(KeysPublish {
            identity_signature: B64Bytes(
                self.account
                    .sign(identity_statement(&identity_key))
                    .to_bytes(),
            ),
            identity_key,
            signing_key: self.signing_key(),
            one_time_keys,
            fallback_key,
        })
    }

    /// Admits an invite to ring: refused when its `sent_at` is more than
    /// [`INVITE_WINDOW_SECS`] from `now_unix`, or when its call id was
    /// already seen (kept across restarts, for as long as the window makes a
    /// replay possible). Saves before it answers.
    pub fn admit_invite(
        &mut self,
        call_id: &CallId,
        sent_at: i64,
        now_unix: i64,
    ) -> Result<(), Error> {
        if (sent_at - now_unix).abs() > INVITE_WINDOW_SECS {
            return Err(Error::StaleInvite);
        }
        let key = call_id.to_string();
        if self.seen_invites.contains_key(&key) {
            return Err(Error::ReplayedInvite);
        }
        self.seen_invites
            .retain(|_, t| (*t - now_unix).abs() <= 2 * INVITE_WINDOW_SECS);
        if self.seen_invites.len() >= MAX_SEEN_INVITES {
            // Flooded with fresh invites: forget the oldest first.
            if let Some(oldest) = self
                .seen_invites
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.seen_invites.remove(&oldest);
            }
        }
        self.seen_invites.insert(key, sent_at);
        self.save()
    }

    /// Marks `peer`'s pinned key as verified by the user (after comparing
    /// the safety number). Fails when no key is pinned.
    pub fn mark_verified(&mut self, peer: &UserId) -> Result<(), Error> {
        let p = self
            .pins
            .get_mut(peer)
            .ok_or_else(|| Error::NoSession { user: peer.clone() })?;
        p.verified = true;
        self.save()
    }

    /// Whether the user verified `peer`'s current key.
    pub fn is_verified(&self, peer: &UserId) -> bool {
        self.pins.get(peer).is_some_and(|p| p.verified)
    }

    /// Whether a session with `peer` exists.
    pub fn has_session(&self, peer: &UserId) -> bool {
        self.sessions.get(peer).is_some_and(|v| !v.is_empty())
    }

    /// The pinned key of `peer`, if any.
    pub fn pinned_key(&self, peer: &UserId) -> Option<&PinnedKey> {
        self.pins.get(peer)
    }

    /// The new key seen for `peer` that differs from the pinned one, if any.
    pub fn pending_key(&self, peer: &UserId) -> Option<&PinnedKey> {
        self.pending.get(peer)
    }

    /// Accepts the changed key of `peer` last refused with
    /// [`Error::PeerKeyChanged`]: pins it and drops the old sessions.
    /// Returns false when there was no pending key.
    pub fn accept_new_key(&mut self, peer: &UserId) -> Result<bool, Error> {
        let Some(p) = self.pending.remove(peer) else {
            return Ok(false);
        };
        self.pins.insert(peer.clone(), p);
        self.sessions.remove(peer);
        if let Some(s) = self.pending_sessions.remove(peer) {
            self.sessions.insert(peer.clone(), vec![s]);
        }
        self.save()?;
        Ok(true)
    }

    fn check_pin(&mut self, peer: &UserId, seen: PinnedKey) -> Result<(), Error> {
        match self.pins.get_mut(peer) {
            None => {
                self.pins.insert(peer.clone(), seen);
                Ok(())
            }
            Some(p) if p.identity_key == seen.identity_key => {
                match (p.signing_key, seen.signing_key) {
                    (Some(a), Some(b)) if a != b => {
                        self.pending.insert(peer.clone(), seen);
                        let _ = self.save();
                        Err(Error::PeerKeyChanged { user: peer.clone() })
                    }
                    (None, Some(b)) => {
                        p.signing_key = Some(b);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            Some(_) => {
                self.pending.insert(peer.clone(), seen);
                let _ = self.save();
                Err(Error::PeerKeyChanged { user: peer.clone() })
            }
        }
    }

    /// Starts an outbound session with the bundle's user: checks both
    /// signatures, checks or pins the identity key, saves.
    pub fn start_session(&mut self, bundle: &KeysBundle) -> Result<(), Error> {
        let signing =
            Ed25519PublicKey::from_slice(&bundle.signing_key.0).map_err(|_| Error::BadSignature)?;
        let sig = Ed25519Signature::from_slice(&bundle.identity_signature.0)
            .map_err(|_| Error::BadSignature)?;
        signing
            .verify(&identity_statement(&bundle.identity_key), &sig)
            .map_err(|_| Error::BadSignature)?;
        let sig = Ed25519Signature::from_slice(&bundle.one_time_key.signature.0)
            .map_err(|_| Error::BadSignature)?;
        signing
            .verify(&one_time_key_statement(&bundle.one_time_key.key), &sig)
            .map_err(|_| Error::BadSignature)?;
        self.check_pin(
            &bundle.user,
            PinnedKey {
                identity_key: bundle.identity_key,
                signing_key: Some(bundle.signing_key),
                verified: false,
            },
        )?;
        let session = self.account.create_outbound_session(
            SessionConfig::version_2(),
            Curve25519PublicKey::from_bytes(bundle.identity_key.0),
            Curve25519PublicKey::from_bytes(bundle.one_time_key.key.0),
        );
        self.sessions
            .entry(bundle.user.clone())
            .or_default()
            .insert(0, session);
        self.save()
    }

    /// Seals `plaintext` for `peer` with the most recently used session.
    pub fn seal(&mut self, peer: &UserId, plaintext: &[u8]) -> Result<Sealed, Error> {
        let s = self
            .sessions
            .get_mut(peer)
            .and_then(|v| v.first_mut())
            .ok_or_else(|| Error::NoSession { user: peer.clone() })?;
        let (kind, body) = s.encrypt(plaintext).to_parts();
        let sealed = Sealed::new(kind as u8, &body).map_err(|e| Error::Storage(e.into()))?;
        self.save_or_defer()?;
        Ok(sealed)
    }

    /// Opens a message sealed by `peer` (creating the inbound session for a
    /// pre-key message, pinning the peer's key on first use). Any alteration
    /// in transit makes it fail with [`Error::DecryptFailed`].
    pub fn unseal(&mut self, peer: &UserId, sealed: &Sealed) -> Result<Vec<u8>, Error> {
        let body = sealed.body().map_err(|_| Error::DecryptFailed)?;
        let msg = OlmMessage::from_parts(sealed.kind() as usize, &body)
            .map_err(|_| Error::DecryptFailed)?;
        let plaintext = match &msg {
            OlmMessage::PreKey(pre) => {
                let seen = PinnedKey {
                    identity_key: pk(pre.identity_key()),
                    signing_key: None,
                    verified: false,
                };
                let sessions = self.sessions.entry(peer.clone()).or_default();
                let (plaintext, new_session) = if let Some(i) = sessions
                    .iter()
                    .position(|s| s.session_id() == pre.session_id())
                {
                    let p = sessions[i]
                        .decrypt(&msg)
                        .map_err(|_| Error::DecryptFailed)?;
                    let s = sessions.remove(i);
                    (p, s)
                } else {
                    let r = self
                        .account
                        .create_inbound_session(pre.identity_key(), pre)
                        .map_err(|_| Error::DecryptFailed)?;
                    (r.plaintext, r.session)
                };
                // Only now, with a message that decrypted, is the key the
                // peer's: pin it, or refuse a changed one (keeping the
                // session it opened for when the user accepts the key).
                if let Err(e) = self.check_pin(peer, seen) {
                    self.pending_sessions.insert(peer.clone(), new_session);
                    let _ = self.save();
                    return Err(e);
                }
                let sessions = self.sessions.entry(peer.clone()).or_default();
                sessions.insert(0, new_session);
                sessions.truncate(8);
                plaintext
            }
            OlmMessage::Normal(_) => {
                let sessions = self
                    .sessions
                    .get_mut(peer)
                    .ok_or_else(|| Error::NoSession { user: peer.clone() })?;
                let mut found = None;
                for (i, s) in sessions.iter_mut().enumerate() {
                    if let Ok(p) = s.decrypt(&msg) {
                        found = Some((i, p));
                        break;
                    }
                }
                let (i, p) = found.ok_or(Error::DecryptFailed)?;
                let s = sessions.remove(i);
                sessions.insert(0, s);
                p
            }
        };
        self.save_or_defer()?;
        Ok(plaintext)
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) with mode 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let err =
        |e: std::io::Error| Error::Storage(crate::Cause::because(path.display().to_string(), e));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Emoji of the safety number's picture form, one per 6 bits.
const SAFETY_EMOJI: [&str; 64] = [
    "🐶", "🐱", "🦁", "🐴", "🦄", "🐷", "🐘", "🐰", "🐼", "🐓", "🐧", "🐢", "🐟", "🐙", "🦋", "🌷",
    "🌳", "🌵", "🍄", "🌏", "🌙", "☁️", "🔥", "🍌", "🍎", "🍓", "🌽", "🍕", "🎂", "❤️", "😀", "🤖",
    "🎩", "👓", "🔧", "🎅", "👍", "☂️", "⌛", "⏰", "🎁", "💡", "📕", "✏️", "📎", "✂️", "🔒", "🔑",
    "🔨", "☎️", "🏁", "🚂", "🚲", "✈️", "🚀", "🏆", "⚽", "🎸", "🎺", "🔔", "⚓", "🎧", "📁", "📌",
];

/// The safety number of two users: what they compare once, out of band,
/// to know that each holds the other's real identity key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyNumber {
    /// 60 digits in twelve groups of five.
    pub digits: String,
    /// The same number as eight emoji.
    pub emoji: String,
}

/// The safety number of users `a` and `b` with identity keys `ka` and `kb`.
/// The same for both users (the pair is ordered by user id):
///
/// ```text
/// h = SHA-256("cryptic_safety_number_v1" || lp(first user id) || lp(its key)
///             || lp(second user id) || lp(its key)),  lp(x) = u32 BE length || x
/// digits: group i (0..12) = (h[2i] << 16 | h[2i+1] << 8 | h[24 + i mod 8]) mod 100000,
///         five digits each
/// emoji:  the first 48 bits of h in 6-bit groups, indexing a fixed list of 64
/// ```
pub fn safety_number(a: &UserId, ka: &PublicKey, b: &UserId, kb: &PublicKey) -> SafetyNumber {
    use sha2::{Digest, Sha256};
    let ((u1, k1), (u2, k2)) = if a.as_str() <= b.as_str() {
        ((a, ka), (b, kb))
    } else {
        ((b, kb), (a, ka))
    };
    let mut h = Sha256::new();
    h.update(b"cryptic_safety_number_v1");
    for x in [u1.as_str().as_bytes(), &k1.0, u2.as_str().as_bytes(), &k2.0] {
        h.update((x.len() as u32).to_be_bytes());
        h.update(x);
    }
    let h: [u8; 32] = h.finalize().into();
    let digits = (0..12)
        .map(|i| {
            let w = u32::from_be_bytes([0, h[2 * i], h[2 * i + 1], h[24 + i % 8]]);
            format!("{:05}", w % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ");
    let bits = u64::from_be_bytes([0, 0, h[0], h[1], h[2], h[3], h[4], h[5]]);
    let emoji = (0..8)
        .map(|i| SAFETY_EMOJI[((bits >> (42 - 6 * i)) & 63) as usize])
        .collect::<Vec<_>>()
        .join(" ");
    SafetyNumber { digits, emoji }
}

/// An identity key as people read it: 64 hex digits in groups of four.
pub fn key_fingerprint(key: &PublicKey) -> String {
    key.0
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bundle(store: &mut E2eStore, user: &str) -> KeysBundle {
        let p = store.keys_to_publish(2).unwrap();
        KeysBundle {
            user: UserId::new(user).unwrap(),
            identity_key: p.identity_key,
            signing_key: p.signing_key,
            identity_signature: p.identity_signature,
            one_time_key: p.one_time_keys[0].clone(),
            fallback: false,
        }
    }

    #[test]
    fn seals_and_opens_both_ways_and_survives_reload() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        let mut b = E2eStore::load_or_create(db.path()).unwrap();
        let bb = bundle(&mut b, "bob");
        a.start_session(&bb).unwrap();
        let s = a.seal(&bob, b"offer").unwrap();
        assert_eq!(s.kind(), 0);
        assert_eq!(b.unseal(&alice, &s).unwrap(), b"offer");
        drop(b);
        let mut b = E2eStore::load_or_create(db.path()).unwrap();
        let r = b.seal(&alice, b"answer").unwrap();
        assert_eq!(a.unseal(&bob, &r).unwrap(), b"answer");
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        let s2 = a.seal(&bob, b"more").unwrap();
        assert_eq!(s2.kind(), 1);
        assert_eq!(b.unseal(&alice, &s2).unwrap(), b"more");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(da.path().join(STORE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_a_changed_identity_key_until_accepted() {
        let (da, db, dc) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let bob = UserId::new("bob").unwrap();
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        let mut b = E2eStore::load_or_create(db.path()).unwrap();
        a.start_session(&bundle(&mut b, "bob")).unwrap();
        // bob reinstalls: a new account under the same name
        let mut b2 = E2eStore::load_or_create(dc.path()).unwrap();
        let nb = bundle(&mut b2, "bob");
        assert!(matches!(
            a.start_session(&nb),
            Err(Error::PeerKeyChanged { .. })
        ));
        assert_eq!(a.pinned_key(&bob).unwrap().identity_key, b.identity_key());
        assert!(a.accept_new_key(&bob).unwrap());
        a.start_session(&nb).unwrap();
        assert_eq!(a.pinned_key(&bob).unwrap().identity_key, b2.identity_key());
    }

    #[test]
    fn refuses_a_message_from_a_changed_identity_with_a_clear_error() {
        let (da, db, dc) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        let mut b = E2eStore::load_or_create(db.path()).unwrap();
        b.start_session(&bundle(&mut a, "alice")).unwrap();
        let first = b.seal(&alice, b"hi").unwrap();
        a.unseal(&bob, &first).unwrap();
        // Someone else now claims to be bob and calls alice.
        let mut imp = E2eStore::load_or_create(dc.path()).unwrap();
        imp.start_session(&bundle(&mut a, "alice")).unwrap();
        let forged = imp.seal(&alice, b"trust me").unwrap();
        let e = a.unseal(&bob, &forged).unwrap_err();
        assert!(matches!(e, Error::PeerKeyChanged { .. }));
        assert!(e.to_string().contains("identity key of bob changed"));
        assert_eq!(
            a.pending_key(&bob).unwrap().identity_key,
            imp.identity_key()
        );
        // Still refused after a restart, until accepted; then the new
        // key's next message opens.
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        assert!(a.unseal(&bob, &forged).is_err());
        assert!(a.accept_new_key(&bob).unwrap());
        let next = imp.seal(&alice, b"it is me").unwrap();
        assert_eq!(a.unseal(&bob, &next).unwrap(), b"it is me");
    }

    #[test]
    fn rejects_a_bundle_with_a_bad_signature() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        let mut b = E2eStore::load_or_create(db.path()).unwrap();
        let mut bb = bundle(&mut b, "bob");
        bb.one_time_key.key.0[0] ^= 1;
        assert!(matches!(a.start_session(&bb), Err(Error::BadSignature)));
    }

    #[test]
    fn the_safety_number_is_the_same_from_both_sides_and_changes_with_a_key() {
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let (ka, kb) = (B64Bytes([1; 32]), B64Bytes([2; 32]));
        let ab = safety_number(&alice, &ka, &bob, &kb);
        assert_eq!(ab, safety_number(&bob, &kb, &alice, &ka));
        assert_eq!(ab.digits.len(), 12 * 5 + 11);
        assert_eq!(ab.emoji.split(' ').count(), 8);
        assert_ne!(ab, safety_number(&alice, &ka, &bob, &B64Bytes([3; 32])));
    }

    #[test]
    fn verification_is_kept_and_lost_with_a_key_change() {
        let (da, db, dc) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        let mut b = E2eStore::load_or_create(db.path()).unwrap();
        a.start_session(&bundle(&mut b, "bob")).unwrap();
        assert!(!a.is_verified(&bob));
        a.mark_verified(&bob).unwrap();
        let mut a = E2eStore::load_or_create(da.path()).unwrap();
        assert!(a.is_verified(&bob));
        // Bob's key changes; accepting it leaves him unverified.
        let mut imp = E2eStore::load_or_create(dc.path()).unwrap();
        imp.start_session(&bundle(&mut a, "alice")).unwrap();
        let forged = imp.seal(&alice, b"new phone").unwrap();
        assert!(a.unseal(&bob, &forged).is_err());
        assert!(
            a.is_verified(&bob),
            "the old key stays verified until a change is accepted"
        );
        assert!(a.accept_new_key(&bob).unwrap());
        assert!(!a.is_verified(&bob));
    }

    #[test]
    fn storage_errors_keep_their_io_source() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(STORE_FILE)).unwrap();
        let e = E2eStore::load_or_create(d.path()).unwrap_err();
        let source = std::error::Error::source(&e).expect("a source");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
        assert!(e.to_string().contains(STORE_FILE), "{e}");
    }

    #[test]
    fn a_seen_invite_is_refused_even_after_a_restart_and_a_stale_one_always() {
        let d = tempfile::tempdir().unwrap();
        let id: CallId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        let now = 1_800_000_000;
        let mut a = E2eStore::load_or_create(d.path()).unwrap();
        a.admit_invite(&id, now - 5, now).unwrap();
        assert!(matches!(
            a.admit_invite(&id, now - 5, now),
            Err(Error::ReplayedInvite)
        ));
        let mut a = E2eStore::load_or_create(d.path()).unwrap();
        assert!(matches!(
            a.admit_invite(&id, now - 5, now + 30),
            Err(Error::ReplayedInvite)
        ));
        let other: CallId = "0f8fad5b-d9cb-469f-a165-70867728950f".parse().unwrap();
        assert!(matches!(
            a.admit_invite(&other, now - INVITE_WINDOW_SECS - 1, now),
            Err(Error::StaleInvite)
        ));
        assert!(matches!(
            a.admit_invite(&other, now + INVITE_WINDOW_SECS + 1, now),
            Err(Error::StaleInvite)
        ));
        a.admit_invite(&other, now, now).unwrap();
    }

    #[test]
    fn a_garbage_pre_key_message_pins_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut a = E2eStore::load_or_create(d.path()).unwrap();
        let mallory = UserId::new("mallory").unwrap();
        for garbage in [
            Sealed::new(0, &[0u8; 200]).unwrap(),
            Sealed::new(0, b"\x03not olm at all").unwrap(),
            Sealed::new(1, &[7u8; 64]).unwrap(),
        ] {
            assert!(a.unseal(&mallory, &garbage).is_err());
        }
        assert!(a.pinned_key(&mallory).is_none(), "the pin was poisoned");
        assert!(a.pending_key(&mallory).is_none());
        let a = E2eStore::load_or_create(d.path()).unwrap();
        assert!(a.pinned_key(&mallory).is_none());
    }
}
