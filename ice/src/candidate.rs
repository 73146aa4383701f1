//! ICE candidates (RFC 8445 section 5.1) and their RFC 8839 `candidate:`
//! attribute form.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::Error;

/// Longest `candidate:` attribute string accepted.
const MAX_LEN: usize = 512;

/// The type of a candidate (RFC 8445 section 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateKind {
    /// An address of a local interface.
    Host,
    /// The address a NAT gave us, learnt from a STUN server.
    ServerReflexive,
    /// An address learnt from a connectivity check.
    PeerReflexive,
    /// An address on a TURN server relaying for us.
    Relayed,
}

impl CandidateKind {
    /// Type preference of RFC 8445 section 5.1.2.2.
    pub fn type_preference(self) -> u32 {
        match self {
            Self::Host => 126,
            Self::PeerReflexive => 110,
            Self::ServerReflexive => 100,
            Self::Relayed => 0,
        }
    }

    /// The `typ` token of RFC 8839.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::ServerReflexive => "srflx",
            Self::PeerReflexive => "prflx",
            Self::Relayed => "relay",
        }
    }
}

/// A UDP candidate for component 1 (one component: RTP and RTCP are muxed).
#[derive(Clone, PartialEq, Eq)]
pub struct Candidate {
    foundation: String,
    priority: u32,
    addr: SocketAddr,
    kind: CandidateKind,
    related: Option<SocketAddr>,
}

impl Candidate {
    pub(crate) fn new(
        kind: CandidateKind,
        addr: SocketAddr,
        related: Option<SocketAddr>,
        local_preference: u16,
        foundation_seed: &str,
    ) -> Self {
        Self {
            foundation: foundation(kind, foundation_seed),
            priority: priority(kind, local_preference),
            addr,
            kind,
            related,
        }
    }

    pub(crate) fn peer_reflexive(addr: SocketAddr, priority: u32) -> Self {
        Self {
            foundation: foundation(CandidateKind::PeerReflexive, &addr.ip().to_string()),
            priority,
            addr,
            kind: CandidateKind::PeerReflexive,
            related: None,
        }
    }

    /// Transport address of the candidate.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// Candidate type.
    pub fn kind(&self) -> CandidateKind {
        self.kind
    }
    /// Priority (RFC 8445 section 5.1.2).
    pub fn priority(&self) -> u32 {
        self.priority
    }
    /// Foundation.
    pub fn foundation(&self) -> &str {
        &self.foundation
    }
    /// Related address (`raddr`/`rport`), if any.
    pub fn related(&self) -> Option<SocketAddr> {
        self.related
    }

    /// Formats the RFC 8839 attribute value, e.g.
    /// `candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host`.
    pub fn to_sdp_string(&self) -> String {
        self.to_string()
    }

    /// Parses an RFC 8839 `candidate:` attribute value strictly. A leading
    /// `a=` is accepted. Only UDP candidates of component 1 with an IP
    /// address are usable here; extension attributes are skipped.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() > MAX_LEN {
            return Err(Error::InvalidCandidate("too long"));
        }
        let s = s.strip_prefix("a=").unwrap_or(s);
        let s = s
            .strip_prefix("candidate:")
            .ok_or(Error::InvalidCandidate("missing candidate: prefix"))?;
        let mut it = s.split(' ');
        let mut next = |what| it.next().ok_or(Error::InvalidCandidate(what));
        let foundation = next("foundation")?;
        if foundation.is_empty() || foundation.len() > 32 || !foundation.bytes().all(is_ice_char) {
            return Err(Error::InvalidCandidate("foundation"));
        }
        let component = next("component")?;
        if component.is_empty()
            || component.len() > 5
            || !component.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::InvalidCandidate("component"));
        }
        let transport = next("transport")?;
        if transport.is_empty()
            || !transport
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::InvalidCandidate("transport"));
        }
        let prio = next("priority")?;
        if prio.is_empty() || prio.len() > 10 || !prio.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidCandidate("priority"));
        }
        let priority: u32 = prio
            .parse()
            .map_err(|_| Error::InvalidCandidate("priority"))?;
        let address = next("address")?;
        let port = parse_port(next("port")?)?;
        if next("typ")? != "typ" {
            return Err(Error::InvalidCandidate("typ"));
        }
        let kind = match next("type")? {
            "host" => CandidateKind::Host,
            "srflx" => CandidateKind::ServerReflexive,
            "prflx" => CandidateKind::PeerReflexive,
            "relay" => CandidateKind::Relayed,
            _ => return Err(Error::InvalidCandidate("type")),
        };
        let (mut raddr, mut rport) = (None, None);
        while let Some(name) = it.next() {
            let value = it
                .next()
                .ok_or(Error::InvalidCandidate("extension without value"))?;
            if name.is_empty()
                || value.is_empty()
                || !name.bytes().all(|b| b.is_ascii_graphic())
                || !value.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(Error::InvalidCandidate("extension"));
            }
            match name {
                "raddr" if raddr.is_none() => {
                    raddr = Some(
                        value
                            .parse::<IpAddr>()
                            .map_err(|_| Error::InvalidCandidate("raddr"))?,
                    )
                }
                "rport" if rport.is_none() => rport = Some(parse_port(value)?),
                "raddr" | "rport" => return Err(Error::InvalidCandidate("repeated raddr/rport")),
                _ => {}
            }
        }
        let related = match (raddr, rport) {
            (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            (None, None) => None,
            _ => return Err(Error::InvalidCandidate("raddr without rport")),
        };
        // Semantics after syntax: what this agent can use.
        if !transport.eq_ignore_ascii_case("udp") {
            return Err(Error::UnsupportedCandidate("transport is not UDP"));
        }
        let component: u32 = component
            .parse()
            .map_err(|_| Error::InvalidCandidate("component"))?;
        if component == 0 || component > 256 {
            return Err(Error::InvalidCandidate("component"));
        }
        if component != 1 {
            return Err(Error::UnsupportedCandidate("component other than 1"));
        }
        if priority == 0 {
            return Err(Error::InvalidCandidate("priority"));
        }
        let ip: IpAddr = address
            .parse()
            .map_err(|_| Error::UnsupportedCandidate("address is not an IP address"))?;
        if port == 0 || ip.is_unspecified() || ip.is_multicast() {
            return Err(Error::UnsupportedCandidate("unusable address"));
        }
        Ok(Self {
            foundation: foundation.to_owned(),
            priority,
            addr: SocketAddr::new(ip, port),
            kind,
            related,
        })
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate:{} 1 udp {} {} {} typ {}",
            self.foundation,
            self.priority,
            self.addr.ip(),
            self.addr.port(),
            self.kind.as_str()
        )?;
        if let Some(r) = self.related {
            write!(f, " raddr {} rport {}", r.ip(), r.port())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Candidate {
    // Addresses are personal data: Debug shows them only with the `pii`
    // environment flag of the agent's logs (see `crate::Pii`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("kind", &self.kind)
            .field("priority", &self.priority)
            .field("addr", &crate::Pii(self.addr))
            .finish()
    }
}

fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn parse_port(s: &str) -> Result<u16, Error> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidCandidate("port"));
    }
    s.parse().map_err(|_| Error::InvalidCandidate("port"))
}

/// RFC 8445 section 5.1.2.1, component 1.
pub(crate) fn priority(kind: CandidateKind, local_preference: u16) -> u32 {
    (kind.type_preference() << 24) + (u32::from(local_preference) << 8) + 255
}

fn foundation(kind: CandidateKind, seed: &str) -> String {
    // FNV-1a over type and base/server: same type, base and server give the
    // same foundation (RFC 8445 section 5.1.1.3).
    let mut h: u32 = 0x811C_9DC5;
    for b in kind.as_str().bytes().chain(seed.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
}

/// Whether `s` is a valid ICE ufrag (`min` 4) or password (`min` 22).
pub(crate) fn valid_ice_string(s: &str, min: usize) -> bool {
    (min..=256).contains(&s.len()) && s.bytes().all(is_ice_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back_every_kind() {
        for kind in [
            CandidateKind::Host,
            CandidateKind::ServerReflexive,
            CandidateKind::PeerReflexive,
            CandidateKind::Relayed,
        ] {
            let related = (kind != CandidateKind::Host).then(|| "10.0.0.1:4000".parse().unwrap());
            let c = Candidate::new(
                kind,
                "[2001:db8::1]:5000".parse().unwrap(),
                related,
                65535,
                "x",
            );
            let s = c.to_sdp_string();
            assert_eq!(Candidate::parse(&s).unwrap(), c, "{s}");
        }
    }

    #[test]
    fn parses_a_browser_candidate_with_extensions() {
        let c = Candidate::parse(
            "candidate:842163049 1 UDP 1677729535 198.51.100.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0 ufrag EsAw network-cost 999",
        )
        .unwrap();
        assert_eq!(c.kind(), CandidateKind::ServerReflexive);
        assert_eq!(c.addr(), "198.51.100.7:46154".parse().unwrap());
        assert_eq!(c.related(), Some("10.0.0.2:46154".parse().unwrap()));
        assert_eq!(c.priority(), 1677729535);
    }

    #[test]
    fn rejects_malformed_and_unusable_candidates() {
        for bad in [
            "",
            "candidate:",
            "candidate:1 1 udp 1 1.2.3.4 5 typ",
            "candidate:1 1 udp 1 1.2.3.4 5 typ host raddr",
            "candidate:1 1 udp 1 1.2.3.4 5 typ host raddr 1.2.3.4",
            "candidate:1 1 udp 99999999999 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 1.2.3.4 70000 typ host",
            "candidate:1 1 udp 1 1.2.3.4 5 typ bogus",
            "candidate:1 1 tcp 1 1.2.3.4 5 typ host",
            "candidate:1 2 udp 1 1.2.3.4 5 typ host",
            "candidate:1 1 udp 1 abc.local 5 typ host",
            "candidate:1 1 udp 1 0.0.0.0 5 typ host",
            "candidate:1  1 udp 1 1.2.3.4 5 typ host",
            "candidate:f\u{e9} 1 udp 1 1.2.3.4 5 typ host",
        ] {
            assert!(Candidate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn priorities_follow_rfc8445_formula() {
        assert_eq!(priority(CandidateKind::Host, 65535), 2130706431);
        assert_eq!(priority(CandidateKind::Relayed, 65535), 16777215);
    }
}
