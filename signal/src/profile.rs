//! A user's profile directory.
//!
//! ```text
//! profile.json   {"user": "alice", "server": "127.0.0.1:7443", "server_name": "localhost"}
//! ca.crt         the server's CA certificate
//! client.crt     the user's client certificate (common name = user)
//! client.key     its private key (0600)
//! e2e.json       Olm account, sessions and pinned peer keys (0600, see crate::e2e)
//! ```
//! The client may keep more files there (history database, settings).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::certs::IssuedCert;
use crate::client::ClientConfig;
use crate::e2e::{write_private, E2eStore};
use crate::wire::UserId;
use crate::Error;

/// The profile's settings file.
pub const PROFILE_FILE: &str = "profile.json";

#[derive(Serialize, Deserialize)]
struct ProfileFile {
    user: UserId,
    server: String,
    server_name: String,
}

/// A loaded profile directory.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The directory.
    pub dir: PathBuf,
    /// The user.
    pub user: UserId,
    /// Server address, `host:port`.
    pub server: String,
    /// Name the server certificate must carry (DNS name or IP address).
    pub server_name: String,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(crate::Cause::because(path.display().to_string(), e))
}

/// An exclusive hold on a profile directory: one process at a time uses a
/// profile (its end-to-end store, history and recordings). Released when
/// dropped (or when the process dies).
#[derive(Debug)]
pub struct ProfileLock {
    _file: std::fs::File,
}

impl ProfileLock {
    /// Takes the profile's lock, or says that another process holds it.
    /// Touches nothing else in the directory.
    pub fn acquire(dir: &Path) -> Result<ProfileLock, Error> {
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(ProfileLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(Error::Storage(crate::Cause::new(format!(
                    "the profile {} is in use by another cryptic-call process; \
                 one process per profile at a time",
                    dir.display()
                ))))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }
}

impl Profile {
    /// Writes a new profile directory (created if missing, mode 0700).
    pub fn write(
        dir: &Path,
        user: &UserId,
        server: &str,
        server_name: &str,
        ca_pem: &str,
        client: &IssuedCert,
    ) -> Result<Profile, Error> {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let f = ProfileFile {
            user: user.clone(),
            server: server.into(),
            server_name: server_name.into(),
        };
        let json = serde_json::to_vec_pretty(&f)
            .map_err(|e| Error::Storage(crate::Cause::because("profile", e)))?;
        std::fs::write(dir.join(PROFILE_FILE), json).map_err(io(dir))?;
        std::fs::write(dir.join("ca.crt"), ca_pem).map_err(io(dir))?;
        std::fs::write(dir.join("client.crt"), &client.cert_pem).map_err(io(dir))?;
        write_private(&dir.join("client.key"), client.key_pem.as_bytes())?;
        Profile::load(dir)
    }

    /// Loads a profile directory.
    pub fn load(dir: &Path) -> Result<Profile, Error> {
        let p = dir.join(PROFILE_FILE);
        if !p.exists() {
            return Err(Error::Storage(crate::Cause::new(format!(
                "{} is not a profile (no {PROFILE_FILE}); make one with `cryptic-call ca issue`",
                dir.display()
            ))));
        }
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        let f: ProfileFile = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Storage(crate::Cause::because(p.display().to_string(), e)))?;
        Ok(Profile {
            dir: dir.to_owned(),
            user: f.user,
            server: f.server,
            server_name: f.server_name,
        })
    }

    /// The connection settings (reads the certificate files).
    pub fn client_config(&self) -> Result<ClientConfig, Error> {
        let read = |n: &str| {
            let p = self.dir.join(n);
            std::fs::read_to_string(&p)
                .map_err(|e| Error::Storage(crate::Cause::because(p.display().to_string(), e)))
        };
        Ok(ClientConfig::new(
            self.server.clone(),
            self.server_name.clone(),
            read("ca.crt")?,
            read("client.crt")?,
            read("client.key")?,
        ))
    }

    /// Opens (or creates) the end-to-end store of this profile.
    pub fn e2e(&self) -> Result<E2eStore, Error> {
        E2eStore::load_or_create(&self.dir)
    }
}
