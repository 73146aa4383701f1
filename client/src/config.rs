//! The profile directory as the client's commands use it: what makes a
//! directory a profile, and its optional config file `config.toml`.
//!
//! ```toml
//! input = "device:pulse"     # default microphone (as --input)
//! output = "default"         # default speaker (as --output)
//! relay = false              # media through the server for the whole call
//! wait_for_direct = false    # true: media waits for ICE (the server relay
//!                            # only after 3 s without a direct path)
//! chacha = false             # prefer the ChaCha20-Poly1305 SRTP profile
//! low_latency = true         # 10 ms frames also from a file or tone (as
//!                            # --low-latency); false: 20 ms frames also
//!                            # from the microphone (as --save-bandwidth);
//!                            # unset: 10 ms from a microphone only
//! auto_answer = false        # the shell answers every call
//! servers = ["a.example:8443", "b.example:8443"]   # instead of the profile's
//!                            # address(es): tried in turn when one is lost
//!
//! share_presence = ["mum"]   # who may see you online (and you them):
//!                            # shown only once both listed each other
//!
//! [contacts]                 # names to call people by: alias = "user"
//! mum = "alice"
//! bob = "bob"
//! ```
//!
//! Flags on the command line win over the file; a missing file is an
//! empty one; a file that does not parse is an error naming the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cryptic_signal::profile::PROFILE_FILE;
use serde::{Deserialize, Serialize};

/// The config file's name in the profile directory.
pub const CONFIG_FILE: &str = "config.toml";

/// The history database's name in the profile directory.
pub const HISTORY_FILE: &str = "history.sqlite";

/// The environment variable naming the profile of every command.
pub const PROFILE_ENV: &str = "CRYPTIC_CALL_PROFILE";

/// The user's settings, from `config.toml` in the profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The default microphone (an `--input` value).
    pub input: Option<String>,
    /// The default speaker (an `--output` value).
    pub output: Option<String>,
    /// Send media through the signaling server from the start.
    pub relay: bool,
    /// Media waits for an ICE pair: the server relay carries nothing while
    /// ICE checks run, only after 3 s without a direct path.
    pub wait_for_direct: bool,
    /// Prefer the ChaCha20-Poly1305 SRTP profile.
    pub chacha: bool,
    /// 10 ms frames whatever the input (`true`, as `--low-latency`), 20 ms
    /// frames whatever the input (`false`, as `--save-bandwidth`), or what
    /// the input calls for (unset: 10 ms from a microphone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_latency: Option<bool>,
    /// The shell answers every incoming call at once.
    pub auto_answer: bool,
    /// The users (or aliases) this user shares presence with.
    pub share_presence: Vec<String>,
    /// The signaling server's addresses (`host:port`, nodes of one
    /// cluster behind one certificate name), instead of the profile's:
    /// the first that answers is used, and the next ones when it is lost.
    pub servers: Vec<String>,
    /// Names to call people by: alias to user name.
    pub contacts: BTreeMap<String, String>,
}

impl Config {
    /// Reads `config.toml` from the profile `dir` (an empty config when
    /// there is none).
    pub fn load(dir: &Path) -> Result<Config, String> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the text of a config file.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Writes the config back to the profile `dir` (the shell's `input`
    /// and `output` commands remember the choice).
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(CONFIG_FILE);
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The user an alias (or a user name) stands for.
    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.contacts.get(name).map_or(name, String::as_str)
    }
}

/// Checks that `dir` is a profile directory (made by `ca issue`), so that
/// no command creates files in a directory that is not one.
pub fn check_profile(dir: &Path) -> Result<(), String> {
    if dir.join(PROFILE_FILE).is_file() {
        return Ok(());
    }
    let what = if dir.is_dir() {
        "is not a profile"
    } else {
        "does not exist"
    };
    Err(format!(
        "{} {what} (no {PROFILE_FILE}): give --profile DIR or set {PROFILE_ENV}; \
         an operator makes one with `cryptic-call ca issue USER --out DIR`",
        dir.display()
    ))
}

/// The history database of a profile (checked to be one).
pub fn history_path(dir: &Path) -> Result<PathBuf, String> {
    check_profile(dir)?;
    Ok(dir.join(HISTORY_FILE))
}

/// The host part of a `host:port` server address (`[v6]:port`, a bare
/// host, an IP address): what the server's certificate must name.
pub fn server_host(server: &str) -> &str {
    if let Some(rest) = server.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match server.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_reads_devices_preferences_and_contacts() {
        let c =
            Config::parse("input = \"tone\"\nrelay = true\n[contacts]\nmum = \"alice\"\n").unwrap();
        assert_eq!(c.input.as_deref(), Some("tone"));
        assert!(c.relay && !c.chacha && !c.wait_for_direct);
        assert!(
            Config::parse("wait_for_direct = true")
                .unwrap()
                .wait_for_direct
        );
        assert_eq!(c.low_latency, None);
        let fast = Config::parse("low_latency = true").unwrap();
        assert_eq!(fast.low_latency, Some(true));
        assert!(toml::to_string(&c).unwrap().find("low_latency").is_none());
        assert!(toml::to_string(&fast)
            .unwrap()
            .contains("low_latency = true"));
        assert_eq!(c.resolve("mum"), "alice");
        assert_eq!(c.resolve("bob"), "bob");
        let again = Config::parse(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let c = Config::parse("servers = [\"a:1\", \"b:2\"]\n").unwrap();
        assert_eq!(c.servers, ["a:1", "b:2"]);
    }

    #[test]
    fn a_bad_config_file_is_an_error_naming_the_line() {
        let e = Config::parse("relay = true\nrelya = true\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(Config::parse("relay = \"yes\"").is_err());
    }

    #[test]
    fn the_server_name_is_the_host_of_the_server_address() {
        assert_eq!(server_host("chat.example.org:8443"), "chat.example.org");
        assert_eq!(server_host("192.0.2.7:8443"), "192.0.2.7");
        assert_eq!(server_host("[2001:db8::1]:8443"), "2001:db8::1");
        assert_eq!(server_host("2001:db8::1"), "2001:db8::1");
        assert_eq!(server_host("example.org"), "example.org");
    }
}
