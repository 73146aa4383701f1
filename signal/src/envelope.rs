//! The envelope of a message between two nodes of a server cluster
//! (carried by Redis pub/sub, see `server::cluster`):
//!
//! ```text
//! kind (1 byte) | to length (1) | to (user name) | node length (1) | node | payload
//! ```
//!
//! `kind`: `T` a routed text message (JSON), `B` a relay frame (binary), `K`
//! end the connection whose id is `payload` (decimal): a newer login, `P`
//! presence news for a user (`payload`: see `server::cluster`).
//!
//! One pub/sub message carries a *batch* of envelopes for one node: whatever
//! queued up for that node while the previous publish was on its way.
//!
//! ```text
//! 'M' | (envelope length (4, big endian) | envelope)*
//! ```
//!
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

/// The first byte of a batch.
pub(crate) const BATCH: u8 = b'M';

/// Appends `env` to the batch `batch` (started with [`BATCH`] when empty).
pub(crate) fn push(batch: &mut Vec<u8>, kind: u8, to: &UserId, node: &str, payload: &[u8]) {
    if batch.is_empty() {
        batch.push(BATCH);
    }
    let at = batch.len();
    batch.extend_from_slice(&[0; 4]);
    batch.push(kind);
    for part in [to.as_str().as_bytes(), node.as_bytes()] {
        batch.push(u8::try_from(part.len()).unwrap_or(u8::MAX));
        batch.extend_from_slice(&part[..part.len().min(255)]);
    }
    batch.extend_from_slice(payload);
    let len = u32::try_from(batch.len() - at - 4).unwrap_or(u32::MAX);
    batch[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// The envelopes of a batch, in order, as `(offset of the envelope in
/// `b`, envelope)`; stops at the first truncated or malformed one. A
/// message that is not a batch yields nothing.
pub(crate) fn batch(b: &[u8]) -> impl Iterator<Item = (usize, Envelope<'_>)> {
    let mut at = match b.first() {
        Some(&BATCH) => 1,
        _ => b.len(),
    };
    std::iter::from_fn(move || {
        let len = b.get(at..at + 4)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        let start = at + 4;
        let env = b.get(start..start.checked_add(len)?)?;
        let e = parse(env);
        at = if e.is_some() { start + len } else { b.len() };
        e.map(|e| (start, e))
    })
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

    #[test]
    fn batches_carry_envelopes_in_order_and_stop_at_the_first_bad_one() {
        let (bob, carol) = (UserId::new("bob").unwrap(), UserId::new("carol").unwrap());
        let mut b = Vec::new();
        push(&mut b, b'B', &bob, "n1", b"frame");
        push(&mut b, b'T', &carol, "n1", b"{}");
        let got: Vec<_> = batch(&b)
            .map(|(at, e)| (at, e.kind, e.to.as_str().to_owned(), e.payload.to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                (5, b'B', "bob".into(), b"frame".to_vec()),
                (22, b'T', "carol".into(), b"{}".to_vec())
            ]
        );
        assert_eq!(&b[5..5 + 3], &[b'B', 3, b'b']);
        for cut in 0..b.len() {
            assert!(batch(&b[..cut]).count() < 2, "{cut}");
        }
        let mut bad = b.clone();
        bad[6] = 200; // the first envelope's user length runs past it
        assert_eq!(batch(&bad).count(), 0);
        assert_eq!(batch(&encode(b'T', &bob, "n1", b"{}")).count(), 0);
    }
}
