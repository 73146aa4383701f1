//! Unwrapping 16-bit sequence numbers and 32-bit timestamps.
//!
//! Extended values live in a `u64` that starts far from zero, so that a
//! packet from just before the first one still has a valid extended value.

/// Where extended sequence numbers start (bits above the 16 wire bits).
pub(crate) const SEQ_BASE: u64 = 1 << 32;
/// Where extended timestamps start (bits above the 32 wire bits).
pub(crate) const TS_BASE: u64 = 1 << 40;

/// Extends `seq` to the value closest to `reference` (an extended sequence number).
pub(crate) fn extend_seq(reference: u64, seq: u16) -> u64 {
    let delta = seq.wrapping_sub(reference as u16) as i16;
    reference.wrapping_add_signed(i64::from(delta))
}

/// Extends `ts` to the value closest to `reference` (an extended timestamp).
pub(crate) fn extend_ts(reference: u64, ts: u32) -> u64 {
    let delta = ts.wrapping_sub(reference as u32) as i32;
    reference.wrapping_add_signed(i64::from(delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_unwrap_across_the_16_bit_boundary() {
        let r = SEQ_BASE + 65_535;
        assert_eq!(extend_seq(r, 0), r + 1);
        assert_eq!(extend_seq(r, 65_530), r - 5);
        assert_eq!(extend_seq(SEQ_BASE + 65_536, 65_535), SEQ_BASE + 65_535);
    }

    #[test]
    fn timestamps_unwrap_across_the_32_bit_boundary() {
        let r = TS_BASE + u64::from(u32::MAX) - 100;
        assert_eq!(extend_ts(r, 860), r + 961);
        assert_eq!(extend_ts(r + 961, u32::MAX - 100), r);
    }
}
