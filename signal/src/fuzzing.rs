//! Fuzz entry points (not part of the API).

use crate::wire::{Message, RelayFrame};

/// Parses `data` as a text frame and as a binary frame; whatever parses must
/// serialize and parse back to the same value.
pub fn message(data: &[u8]) {
    if let Ok(m) = Message::parse_bytes(data) {
        let again = Message::parse(&m.to_json());
        assert_eq!(
            again.as_ref().ok(),
            Some(&m),
            "round trip changed the message"
        );
    }
    if let Ok(f) = RelayFrame::parse(data) {
        assert_eq!(f.to_vec(), data, "binary relay frame round trip");
    }
}

/// Parses `data` as an opened sealed payload; whatever parses must
/// serialize and parse back to the same value, and checking its context
/// against an arbitrary expectation never panics.
pub fn payload(data: &[u8]) {
    use crate::payload::{Expect, Kind, Payload};
    if let Ok(p) = Payload::from_bytes(data) {
        let again = Payload::from_bytes(&p.to_bytes());
        assert_eq!(
            again.as_ref().ok(),
            Some(&p),
            "payload round trip changed it"
        );
        let (from, to) = (p.to.clone(), p.from.clone());
        let _ = p.check(&Expect {
            kinds: &[Kind::Invite, Kind::Reveal],
            call_id: p.call_id,
            from: &from,
            to: &to,
            min_counter: p.counter.wrapping_add(1),
        });
    }
}

/// Parses `data` as an advertised STUN/TURN server URI; whatever parses
/// must print and parse back to the same value.
pub fn ice_uri(data: &[u8]) {
    use crate::uri::IceUri;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = IceUri::parse(text) {
        assert_eq!(IceUri::parse(&u.to_uri()).ok(), Some(u), "URI round trip");
    }
}

/// Parses `data` as an envelope between cluster nodes and as a batch of
/// them; whatever parses must encode back to the same bytes.
pub fn cluster_envelope(data: &[u8]) {
    if let Some(e) = crate::envelope::parse(data) {
        let again = crate::envelope::encode(e.kind, &e.to, e.node, e.payload);
        assert_eq!(again, data, "envelope round trip");
    }
    let mut again = Vec::new();
    for (_, e) in crate::envelope::batch(data) {
        crate::envelope::push(&mut again, e.kind, &e.to, e.node, e.payload);
    }
    if !again.is_empty() {
        assert_eq!(
            data.get(..again.len()),
            Some(&again[..]),
            "batch round trip"
        );
    }
}
