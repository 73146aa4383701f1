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
