//! STUN and TURN servers as the signaling server advertises them in
//! `welcome` (`ice_servers`), parsed before use.
//!
//! ```text
//! stun:HOST:PORT
//! turn:HOST:PORT                     (no credentials: the client cannot allocate)
//! turn:USER:PASSWORD@HOST:PORT       USER and PASSWORD percent-encoded
//! turn:HOST:PORT?transport=tcp       TURN over TCP to the server
//! turns:HOST:PORT                    TURN over TLS to the server
//! ```
//!
//! With TURN REST credentials the user name is `<expiry-unix>:<user>`: its
//! `:` travels as `%3A`. The only query is `?transport=udp` (the default)
//! or `?transport=tcp` (RFC 7065); `turns:` runs over TLS on TCP. A missing
//! port means 3478, or 5349 for `turns:` (RFC 7064, RFC 7065). HOST is a
//! DNS name, an IPv4 address or a bracketed IPv6 address.

use std::fmt::Write as _;

/// The scheme of an [`IceUri`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceScheme {
    /// `stun:`: address discovery only.
    Stun,
    /// `turn:`: a relay that needs credentials, over UDP or TCP.
    Turn,
    /// `turns:`: a relay that needs credentials, over TLS.
    Turns,
}

impl IceScheme {
    /// Whether this is a relay (`turn:` or `turns:`).
    pub fn is_turn(self) -> bool {
        matches!(self, Self::Turn | Self::Turns)
    }
}

/// How the client reaches the server (`?transport=`; TLS is `turns:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceTransport {
    /// UDP (the default).
    Udp,
    /// TCP (`turn:...?transport=tcp`, and `turns:`).
    Tcp,
}

/// A parsed STUN or TURN server URI. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IceUri {
    /// `stun:` or `turn:`.
    pub scheme: IceScheme,
    /// Host name or address (an IPv6 address without its brackets).
    pub host: String,
    /// Port (3478 when the URI names none).
    pub port: u16,
    /// TURN user name and password, decoded.
    pub credentials: Option<(String, String)>,
    /// UDP or TCP (always TCP for `turns:`).
    pub transport: IceTransport,
}

impl std::fmt::Debug for IceUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceUri")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

/// The longest URI we parse.
const MAX_URI: usize = 1024;

impl IceUri {
    /// Parses `stun:HOST[:PORT]`, `turn:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]`
    /// or `turns:[USER:PASSWORD@]HOST[:PORT][?transport=tcp]`.
    pub fn parse(s: &str) -> Result<IceUri, &'static str> {
        if s.len() > MAX_URI {
            return Err("ICE server URI longer than 1024 bytes");
        }
        let (scheme, rest) = if let Some(r) = s.strip_prefix("stun:") {
            (IceScheme::Stun, r)
        } else if let Some(r) = s.strip_prefix("turn:") {
            (IceScheme::Turn, r)
        } else if let Some(r) = s.strip_prefix("turns:") {
            (IceScheme::Turns, r)
        } else {
            return Err("ICE server URI must start with stun:, turn: or turns:");
        };
        let (rest, transport) = match rest.split_once('?') {
            None if scheme == IceScheme::Turns => (rest, IceTransport::Tcp),
            None => (rest, IceTransport::Udp),
            Some((r, query)) => (r, parse_query(scheme, query)?),
        };
        let (credentials, hostport) = match rest.rsplit_once('@') {
            None => (None, rest),
            Some(_) if scheme == IceScheme::Stun => {
                return Err("a stun: URI carries no credentials")
            }
            Some((cred, hostport)) => {
                let (user, pass) = cred
                    .split_once(':')
                    .ok_or("TURN credentials must be USER:PASSWORD")?;
                let user = percent_decode(user)?;
                if user.is_empty() {
                    return Err("empty TURN user name");
                }
                (Some((user, percent_decode(pass)?)), hostport)
            }
        };
        let default_port = if scheme == IceScheme::Turns {
            5349
        } else {
            3478
        };
        let (host, port) = split_host_port(hostport, default_port)?;
        let uri = IceUri {
            scheme,
            host,
            port,
            credentials,
            transport,
        };
        // Credentials written raw grow when percent-encoded: what parses
        // must also print within the limit (and parse back).
        if uri.to_uri().len() > MAX_URI {
            return Err("ICE server URI longer than 1024 bytes once encoded");
        }
        Ok(uri)
    }

    /// A TURN URI for the same server with these credentials.
    pub fn with_credentials(mut self, user: &str, password: &str) -> IceUri {
        self.credentials = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// The URI as text (credentials percent-encoded); parses back to `self`.
    pub fn to_uri(&self) -> String {
        let mut s = String::from(match self.scheme {
            IceScheme::Stun => "stun:",
            IceScheme::Turn => "turn:",
            IceScheme::Turns => "turns:",
        });
        if let Some((user, pass)) = &self.credentials {
            percent_encode(user, &mut s);
            s.push(':');
            percent_encode(pass, &mut s);
            s.push('@');
        }
        if self.host.contains(':') {
            let _ = write!(s, "[{}]:{}", self.host, self.port);
        } else {
            let _ = write!(s, "{}:{}", self.host, self.port);
        }
        if self.scheme == IceScheme::Turn && self.transport == IceTransport::Tcp {
            s.push_str("?transport=tcp");
        }
        s
    }
}

/// The `?transport=` query of RFC 7065: `udp` or `tcp` on `turn:`, `tcp`
/// on `turns:`, nothing on `stun:`.
fn parse_query(scheme: IceScheme, query: &str) -> Result<IceTransport, &'static str> {
    let transport = match query {
        "transport=udp" => IceTransport::Udp,
        "transport=tcp" => IceTransport::Tcp,
        _ => return Err("the only query is ?transport=udp or ?transport=tcp"),
    };
    match (scheme, transport) {
        (IceScheme::Stun, _) => Err("a stun: URI takes no ?transport="),
        (IceScheme::Turns, IceTransport::Udp) => {
            Err("turns: runs over TLS on TCP (DTLS to the server is not supported)")
        }
        _ => Ok(transport),
    }
}

fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("IPv6 address without its closing ]")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("not an IPv6 address between [ and ]");
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after the IPv6 address")?),
        };
        (host, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.len() > 253 {
        return Err("ICE server host must be 1 to 253 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    let ipv6 = host.contains(':');
    if !host.chars().all(allowed) || !ipv6 && !host.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err("ICE server host may only hold letters, digits, '.', '-' and '_'");
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err("ICE server port must be a number from 1 to 65535"),
        },
    };
    Ok((host.to_owned(), port))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad percent-encoding in TURN credentials")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "TURN credentials are not UTF-8")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stun_and_turn_uris_parse_with_and_without_credentials() {
        let u = IceUri::parse("stun:127.0.0.1:3478").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (IceScheme::Stun, "127.0.0.1", 3478)
        );
        assert_eq!(u.credentials, None);
        let u = IceUri::parse("turn:alice:s3cret:x@turn.example.org:3479?transport=udp").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("turn.example.org", 3479));
        assert_eq!(u.credentials, Some(("alice".into(), "s3cret:x".into())));
        let u = IceUri::parse("turn:1764500000%3Aalice:ab%2Fc%2B%3D@[::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 3478));
        assert_eq!(
            u.credentials,
            Some(("1764500000:alice".into(), "ab/c+=".into()))
        );
        assert_eq!(IceUri::parse(&u.to_uri()).unwrap(), u);
        assert!(
            !format!("{u:?}").contains("ab/c"),
            "Debug hides the password"
        );
    }

    #[test]
    fn turn_over_tcp_and_tls_uris_parse_and_print_back() {
        let u = IceUri::parse("turn:127.0.0.1:3478?transport=tcp").unwrap();
        assert_eq!(
            (u.scheme, u.transport),
            (IceScheme::Turn, IceTransport::Tcp)
        );
        assert_eq!(u.to_uri(), "turn:127.0.0.1:3478?transport=tcp");
        let u = IceUri::parse("turns:turn.example.org").unwrap();
        assert_eq!(
            (u.scheme, u.transport, u.port),
            (IceScheme::Turns, IceTransport::Tcp, 5349)
        );
        assert_eq!(u.to_uri(), "turns:turn.example.org:5349");
        let u = IceUri::parse("turns:turn.example.org:443?transport=tcp")
            .unwrap()
            .with_credentials("1:bob", "pw");
        assert_eq!(IceUri::parse(&u.to_uri()).unwrap(), u);
        let u = IceUri::parse("turn:[::1]?transport=udp").unwrap();
        assert_eq!(u.to_uri(), "turn:[::1]:3478");
        assert!(u.scheme.is_turn() && IceScheme::Turns.is_turn() && !IceScheme::Stun.is_turn());
    }

    #[test]
    fn malformed_uris_are_refused_in_words() {
        for bad in [
            "",
            "stun:",
            "http://x",
            "stun:u:p@host:1",
            "turn:nopass@127.0.0.1:1",
            "turn::p@127.0.0.1:1",
            "turn:u:p@127.0.0.1:0",
            "turn:u:p@127.0.0.1:99999",
            "turn:u:p@127.0.0.1:+1",
            "turn:u:%zz@127.0.0.1:1",
            "turn:u:%ff@127.0.0.1:1",
            "turn:[::1:1",
            "turn:[nope]:1",
            "turn:ho st:1",
            "turn:-host:1",
            "turn:h:1?transport=sctp",
            "turn:h:1?transport=tcp&x=1",
            "turns:h:1?transport=udp",
            "stun:h:1?transport=tcp",
            "turns:",
            "turnss:h:1",
        ] {
            assert!(IceUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_credentials_that_grow_past_the_limit_when_encoded_are_refused() {
        // Found by the fuzzer: 1,000 raw '>' parse, but print as 3,000
        // bytes of %3E, which would not parse back.
        let uri = format!("turn:u:{}@127.0.0.1:3478", ">".repeat(1000));
        assert!(uri.len() <= MAX_URI);
        assert_eq!(
            IceUri::parse(&uri).err(),
            Some("ICE server URI longer than 1024 bytes once encoded")
        );
        let fits = format!("turn:u:{}@127.0.0.1:3478", ">".repeat(300));
        let u = IceUri::parse(&fits).unwrap();
        assert_eq!(IceUri::parse(&u.to_uri()).ok(), Some(u));
    }

    #[test]
    fn credentials_with_any_characters_survive_a_round_trip() {
        let u = IceUri::parse("turn:127.0.0.1:3478")
            .unwrap()
            .with_credentials("1:a@b", "p%w:/?#[]@ é");
        assert_eq!(IceUri::parse(&u.to_uri()).unwrap(), u);
    }
}
