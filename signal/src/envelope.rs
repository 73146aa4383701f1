//! The envelope of a message between two nodes of a server cluster
//! (carried by Redis pub/sub, see `server::cluster`):
//!
//! ```text
//! kind (1 byte) | to length (1) | to (user name) | node length (1) | node | payload
//! ```
//!
//! `kind`: `T` a routed text message (JSON), `B` a relay frame (binary), `K`
//! end the connection whose id is `payload` (decimal): a newer login.
//! Sans-IO; here, outside the server feature, so that it can be fuzzed.
#![cfg_attr(not(feature = "server"), allow(dead_code))]

use crate::wire::UserId;

/// One envelope, parsed.
pub(crate) struct Envelope<'a> {
    pub(crate) kind: u8,
    pub(crate) to: UserId,
    pub(crate) node: &'a str,
    pub(crate) payload: &'a [u8],
}

/// Parses an envelope; `None` when it is truncated or malformed.
pub(crate) fn parse(b: &[u8]) -> Option<Envelope<'_>> {
    let (&kind, rest) = b.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let (to, rest) = rest.split_at_checked(usize::from(n))?;
    let (&m, rest) = rest.split_first()?;
    let (node, payload) = rest.split_at_checked(usize::from(m))?;
    Some(Envelope {
        kind,
        to: UserId::new(std::str::from_utf8(to).ok()?).ok()?,
        node: std::str::from_utf8(node).ok()?,
        payload,
    })
}

/// Writes an envelope. User names and node ids are at most 64 bytes.
pub(crate) fn encode(kind: u8, to: &UserId, node: &str, payload: &[u8]) -> Vec<u8> {
    let mut env = Vec::with_capacity(3 + to.as_str().len() + node.len() + payload.len());
    env.push(kind);
    for part in [to.as_str().as_bytes(), node.as_bytes()] {
        env.push(u8::try_from(part.len()).unwrap_or(u8::MAX));
        env.extend_from_slice(&part[..part.len().min(255)]);
    }
    env.extend_from_slice(payload);
    env
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn envelopes_round_trip_and_refuse_truncation() {
        let env = encode(b'T', &UserId::new("bob").unwrap(), "n1", b"{}");
        let e = parse(&env).unwrap();
        assert_eq!(
            (e.kind, e.to.as_str(), e.node, e.payload),
            (b'T', "bob", "n1", &b"{}"[..])
        );
        for cut in 0..7 {
            assert!(parse(&env[..cut]).is_none(), "{cut}");
        }
        assert!(
            parse(&[b'T', 3, b'B', b'O', b'B', 0]).is_none(),
            "bad user name"
        );
    }
}
