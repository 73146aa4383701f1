//! Admission at the listener (no I/O here): per-address caps on connections
//! and on TLS handshakes in progress, the accept loop's back-off after
//! errors, and raising the open-file limit at start.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The address a connection counts against: an IPv4 address as it is, an
/// IPv6 address by its /64 (one subscriber's prefix: a host picks any
/// address in it), an IPv4-mapped IPv6 address as IPv4.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Default, Debug)]
struct Count {
    conns: usize,
    handshakes: usize,
}

/// Connections and handshakes in progress per source address.
#[derive(Debug)]
pub(crate) struct AddrSlots {
    map: Mutex<HashMap<IpAddr, Count>>,
    max_conns: usize,
    max_handshakes: usize,
}

impl AddrSlots {
    pub(crate) fn new(max_conns: usize, max_handshakes: usize) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(HashMap::new()),
            max_conns,
            max_handshakes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Count>> {
        // Updates are single arithmetic steps: a poisoned map is consistent.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims a connection slot and a handshake slot for `ip`; `None` when
    /// the address already holds its share of either.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = key(ip);
        let mut map = self.lock();
        let c = map.entry(key).or_default();
        if c.conns >= self.max_conns || c.handshakes >= self.max_handshakes {
            if c.conns == 0 {
                map.remove(&key);
            }
            return None;
        }
        c.conns += 1;
        c.handshakes += 1;
        Some(Slot {
            table: self.clone(),
            key,
            handshaking: true,
        })
    }

    fn release(&self, key: IpAddr, handshaking: bool, conn: bool) {
        let mut map = self.lock();
        if let Some(c) = map.get_mut(&key) {
            if handshaking {
                c.handshakes = c.handshakes.saturating_sub(1);
            }
            if conn {
                c.conns = c.conns.saturating_sub(1);
            }
            if c.conns == 0 {
                map.remove(&key);
            }
        }
    }

    /// Addresses currently holding a slot.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.lock().len()
    }
}

/// One connection's claim on its address's slots; gives them back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<AddrSlots>,
    key: IpAddr,
    handshaking: bool,
}

impl Slot {
    /// The handshake finished (either way): its handshake slot is free,
    /// the connection slot stays taken.
    pub(crate) fn handshake_done(&mut self) {
        if self.handshaking {
            self.handshaking = false;
            self.table.release(self.key, true, false);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.release(self.key, self.handshaking, true);
    }
}

/// First wait after a failed accept.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between two accepts while they keep failing.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval about failing accepts.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The accept loop's answer to errors such as EMFILE (out of file
/// descriptors): the pending connection stays in the backlog, so retrying
/// at once would spin. Wait 10 ms after the first error, doubling up to
/// 1 s while errors continue; log at most once a second.
///
/// Sans-IO: the loop reports each outcome and sleeps for what
/// [`AcceptBackoff::failed`] returns.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    /// An accept succeeded: the next error starts from the shortest wait again.
    pub(crate) fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// An accept failed at `now`: logs (at most once a second) and returns
    /// how long to wait before accepting again.
    pub(crate) fn failed(&mut self, error: &std::io::Error, now: Instant) -> Duration {
        self.delay = (self.delay * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        if self
            .last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(
                error = %error,
                errors_not_logged = self.unlogged,
                pause_ms = self.delay.as_millis() as u64,
                "accept failed; pausing the listener"
            );
            self.last_log = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.delay
    }

    /// Errors since the last log line (for tests).
    #[cfg(test)]
    fn unlogged(&self) -> u64 {
        self.unlogged
    }
}

/// Raises the soft limit on open files to the hard limit, so that the
/// server's caps, not the process's descriptor limit, decide who is
/// refused. Returns the soft limit in force afterwards (`None`: unlimited
/// or unknown).
#[cfg(unix)]
pub(crate) fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    match (l.current, l.maximum) {
        (Some(soft), Some(hard)) if hard > soft => {
            let new = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, new) {
                Ok(()) => {
                    tracing::info!(
                        from = soft,
                        to = hard,
                        "raised the open-file soft limit to the hard limit"
                    );
                    Some(hard)
                }
                Err(e) => {
                    tracing::warn!(soft, hard, error = %e, "could not raise the open-file soft limit");
                    Some(soft)
                }
            }
        }
        (soft, hard) => {
            tracing::info!(soft = ?soft, hard = ?hard, "open-file soft limit already at the hard limit");
            soft
        }
    }
}

/// No descriptor limit to raise on this platform.
#[cfg(not(unix))]
pub(crate) fn raise_fd_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_handshakes_then_its_connections() {
        let t = AddrSlots::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mut s1 = t.admit(a).expect("first");
        let _s2 = t.admit(a).expect("second");
        assert!(t.admit(a).is_none(), "two handshakes in progress");
        s1.handshake_done();
        let mut s3 = t.admit(a).expect("a handshake slot was freed");
        s3.handshake_done();
        assert!(t.admit(a).is_none(), "three connections");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.admit(other).is_some(), "another address is not affected");
        drop(s1);
        assert!(t.admit(a).is_some(), "a connection slot was freed");
    }

    #[test]
    fn slots_are_given_back_and_empty_entries_removed() {
        let t = AddrSlots::new(64, 16);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let slots: Vec<_> = (0..8)
            .filter_map(|_| t.admit(a))
            .chain(t.admit(b))
            .collect();
        assert_eq!(slots.len(), 9);
        assert_eq!(t.addresses(), 1, "one /64");
        drop(slots);
        assert_eq!(t.addresses(), 0);
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(key(mapped), v4);
    }

    #[test]
    fn accept_errors_back_off_and_log_once_a_second() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::other("too many open files");
        let t0 = Instant::now();
        let waits: Vec<_> = (0..9)
            .map(|i| b.failed(&e, t0 + Duration::from_millis(i * 10)))
            .collect();
        assert_eq!(waits[0], Duration::from_millis(10));
        assert_eq!(waits[1], Duration::from_millis(20));
        assert_eq!(waits[8], Duration::from_secs(1), "capped");
        assert_eq!(
            b.unlogged(),
            8,
            "only the first error within a second is logged"
        );
        b.failed(&e, t0 + Duration::from_secs(2));
        assert_eq!(b.unlogged(), 0);
        b.succeeded();
        assert_eq!(b.failed(&e, t0 + Duration::from_secs(4)), BACKOFF_MIN);
    }
}
