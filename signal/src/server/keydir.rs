//! The key directory: users' public keys in SQLite. One-time keys are handed
//! out once; when none are left the fallback key is handed out instead.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use vodozemac::{Ed25519PublicKey, Ed25519Signature};

use crate::e2e::{identity_statement, one_time_key_statement};
use crate::wire::{B64Bytes, KeysBundle, KeysPublish, PublicKey, SignedKey, UserId};
use crate::Error;

/// Most unclaimed one-time keys kept per user.
pub const MAX_ONE_TIME_KEYS: u32 = 200;

/// Most one-time keys in one `keys_publish`.
pub const MAX_ONE_TIME_KEYS_PER_PUBLISH: usize = 100;

fn db(e: rusqlite::Error) -> Error {
    Error::Database(crate::Cause::because("", e))
}

/// The SQLite key directory.
#[derive(Debug)]
pub struct KeyDirectory {
    conn: Mutex<Connection>,
}

fn verify(signing: &PublicKey, msg: &[u8], sig: &B64Bytes<64>) -> bool {
    let Ok(k) = Ed25519PublicKey::from_slice(&signing.0) else {
        return false;
    };
    let Ok(s) = Ed25519Signature::from_slice(&sig.0) else {
        return false;
    };
    k.verify(msg, &s).is_ok()
}

/// Whether a publish is acceptable: at most
/// [`MAX_ONE_TIME_KEYS_PER_PUBLISH`] one-time keys (counted before any
/// signature work), and every signature verifies under its signing key.
pub(crate) fn publish_verifies(p: &KeysPublish) -> bool {
    if p.one_time_keys.len() > MAX_ONE_TIME_KEYS_PER_PUBLISH {
        return false;
    }
    if !verify(
        &p.signing_key,
        &identity_statement(&p.identity_key),
        &p.identity_signature,
    ) {
        return false;
    }
    p.one_time_keys
        .iter()
        .chain(p.fallback_key.iter())
        .all(|k| {
            verify(
                &p.signing_key,
                &one_time_key_statement(&k.key),
                &k.signature,
            )
        })
}

pub(crate) fn key_col(s: String) -> Result<PublicKey, Error> {
    B64Bytes::from_base64(&s).map_err(|e| Error::Database(e.into()))
}

impl KeyDirectory {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS identities (
                 user TEXT PRIMARY KEY,
                 identity_key TEXT NOT NULL,
                 signing_key TEXT NOT NULL,
                 identity_signature TEXT NOT NULL,
                 fallback_key TEXT,
                 fallback_signature TEXT,
                 updated_at INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS one_time_keys (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 user TEXT NOT NULL,
                 key TEXT NOT NULL,
                 signature TEXT NOT NULL,
                 UNIQUE(user, key));",
        )
        .map_err(db)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a user's keys. Signatures must verify (else `Ok(None)`). A new
    /// identity key replaces the old one and drops its one-time keys.
    /// Returns the number of unclaimed one-time keys.
    pub fn publish(&self, user: &UserId, p: &KeysPublish) -> Result<Option<u32>, Error> {
        if !publish_verifies(p) {
            return Ok(None);
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db)?;
        let old: Option<String> = tx
            .query_row(
                "SELECT identity_key FROM identities WHERE user = ?1",
                [user.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        let ik = p.identity_key.to_base64();
        if old.as_deref().is_some_and(|o| o != ik) {
            tx.execute("DELETE FROM one_time_keys WHERE user = ?1", [user.as_str()])
                .map_err(db)?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (fk, fs) = match &p.fallback_key {
            Some(k) => (Some(k.key.to_base64()), Some(k.signature.to_base64())),
            None => (None, None),
        };
        tx.execute(
            "INSERT INTO identities (user, identity_key, signing_key, identity_signature, fallback_key, fallback_signature, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(user) DO UPDATE SET identity_key = ?2, signing_key = ?3, identity_signature = ?4,
               fallback_key = COALESCE(?5, fallback_key), fallback_signature = COALESCE(?6, fallback_signature),
               updated_at = ?7",
            params![user.as_str(), ik, p.signing_key.to_base64(), p.identity_signature.to_base64(), fk, fs, now],
        )
        .map_err(db)?;
        for k in &p.one_time_keys {
            tx.execute(
                "INSERT OR IGNORE INTO one_time_keys (user, key, signature) VALUES (?1, ?2, ?3)",
                params![user.as_str(), k.key.to_base64(), k.signature.to_base64()],
            )
            .map_err(db)?;
        }
        // Keep the newest MAX_ONE_TIME_KEYS.
        tx.execute(
            "DELETE FROM one_time_keys WHERE user = ?1 AND id NOT IN
               (SELECT id FROM one_time_keys WHERE user = ?1 ORDER BY id DESC LIMIT ?2)",
            params![user.as_str(), MAX_ONE_TIME_KEYS],
        )
        .map_err(db)?;
        let count: u32 = tx
            .query_row(
                "SELECT COUNT(*) FROM one_time_keys WHERE user = ?1",
                [user.as_str()],
                |r| r.get(0),
            )
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Some(count))
    }

    /// Claims a bundle for `user`: the oldest one-time key (deleted in the
    /// same transaction, so it is handed out once) or else the fallback key.
    pub fn fetch(&self, user: &UserId) -> Result<Option<KeysBundle>, Error> {
        self.claim(user, true)
    }

    /// Like [`KeyDirectory::fetch`], but with `one_time` false only the
    /// fallback key is handed out (nothing is used up); `Ok(None)` if the
    /// user has none.
    pub fn claim(&self, user: &UserId, one_time: bool) -> Result<Option<KeysBundle>, Error> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db)?;
        type Row = (String, String, String, Option<String>, Option<String>);
        let id: Option<Row> = tx
            .query_row(
                "SELECT identity_key, signing_key, identity_signature, fallback_key, fallback_signature
                 FROM identities WHERE user = ?1",
                [user.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((ik, sk, isig, fk, fsig)) = id else {
            return Ok(None);
        };
        let otk: Option<(i64, String, String)> = if !one_time {
            None
        } else {
            tx.query_row(
                "SELECT id, key, signature FROM one_time_keys WHERE user = ?1 ORDER BY id LIMIT 1",
                [user.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?
        };
        let (key, sig, fallback) = match otk {
            Some((id, k, s)) => {
                tx.execute("DELETE FROM one_time_keys WHERE id = ?1", [id])
                    .map_err(db)?;
                (k, s, false)
            }
            None => match (fk, fsig) {
                (Some(k), Some(s)) => (k, s, true),
                _ => return Ok(None),
            },
        };
        tx.commit().map_err(db)?;
        Ok(Some(KeysBundle {
            user: user.clone(),
            identity_key: key_col(ik)?,
            signing_key: key_col(sk)?,
            identity_signature: B64Bytes::from_base64(&isig)
                .map_err(|e| Error::Database(e.into()))?,
            one_time_key: SignedKey {
                key: key_col(key)?,
                signature: B64Bytes::from_base64(&sig).map_err(|e| Error::Database(e.into()))?,
            },
            fallback,
        }))
    }
}
