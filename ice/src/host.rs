//! The host candidate addresses of a UDP socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};

/// The host candidate addresses of a socket bound to `bound`: the bound
/// address itself, or, when it is unspecified, every local non-loopback
/// address of the family (IPv4 for `0.0.0.0`, IPv4 and IPv6 for `[::]`)
/// with the socket's port; loopback when there is nothing else.
pub fn host_addresses(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    local_addresses(bound.is_ipv6())
        .into_iter()
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect()
}

/// Host candidate addresses for a socket bound to the unspecified address:
/// every non-loopback IPv4 address (and, for a dual-stack IPv6 socket,
/// every global IPv6 address) of the machine, read from /proc on Linux,
/// plus the default route's source; loopback when there is nothing else.
pub(crate) fn local_addresses(v6: bool) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |ip: IpAddr| {
        if !ip.is_loopback() && !ip.is_unspecified() && !out.contains(&ip) {
            out.push(ip);
        }
    };
    // /proc/net/fib_trie: an address line "|-- a.b.c.d" followed by
    // "/32 host LOCAL" is a local address.
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<Ipv4Addr> = None;
        for line in trie.lines() {
            let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
            if let Ok(ip) = t.parse::<Ipv4Addr>() {
                last = Some(ip);
            } else if t.starts_with("/32 host LOCAL") {
                if let Some(ip) = last {
                    push(IpAddr::V4(ip));
                }
            }
        }
    }
    if let Some(ip) = default_route_ip(true) {
        push(ip);
    }
    if v6 {
        // /proc/net/if_inet6: "<32 hex digits> <ifindex> <prefix> <scope> ...";
        // scope 00 is global.
        if let Ok(list) = std::fs::read_to_string("/proc/net/if_inet6") {
            for line in list.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 4 || f[0].len() != 32 || f[3] != "00" {
                    continue;
                }
                if let Ok(bits) = u128::from_str_radix(f[0], 16) {
                    push(IpAddr::V6(Ipv6Addr::from(bits)));
                }
            }
        }
        if let Some(ip) = default_route_ip(false) {
            push(ip);
        }
    }
    if out.is_empty() {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if v6 {
            out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
    }
    out
}

/// The source address of the default route of a family, if there is one.
fn default_route_ip(v4: bool) -> Option<IpAddr> {
    // connect() on UDP sends nothing; it only picks the route's source.
    let (bind, probe): (SocketAddr, SocketAddr) = if v4 {
        (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        )
    } else {
        let doc = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        ((Ipv6Addr::UNSPECIFIED, 0).into(), (doc, 9).into())
    };
    StdUdpSocket::bind(bind)
        .and_then(|s| s.connect(probe).and_then(|_| s.local_addr()))
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
}
