//! Certificate fingerprints as the signaling payload carries them.

use core::fmt;
use core::str::FromStr;

use crate::error::Error;

/// The SHA-256 fingerprint of a DER certificate, written
/// `sha-256 AA:BB:...:FF` (the hash name in lower case as RFC 8122 spells it,
/// then 32 upper-case hex octets separated by colons).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// A fingerprint from its 32 hash bytes (parsed elsewhere).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time (the fingerprint is not secret, but the
    /// comparison costs nothing extra).
    pub fn matches_der(&self, der: &[u8]) -> bool {
        let other = Fingerprint::of_der(der);
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha-256 ")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    /// Parses exactly the form [`Fingerprint`]'s `Display` writes: the
    /// prefix `sha-256 ` (one space), then 32 octets of two upper-case hex
    /// digits each, separated by single colons. Anything else (another
    /// hash, lower-case digits, missing or extra octets, other separators,
    /// surrounding spaces) is refused.
    fn from_str(s: &str) -> Result<Self, Error> {
        let hex = s
            .strip_prefix("sha-256 ")
            .ok_or(Error::BadFingerprint("must start with \"sha-256 \""))?;
        let bytes = hex.as_bytes();
        if bytes.len() != 32 * 3 - 1 {
            return Err(Error::BadFingerprint("must hold exactly 32 octets"));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(Error::BadFingerprint("octets must be upper-case hex")),
        };
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && bytes[at - 1] != b':' {
                return Err(Error::BadFingerprint("octets must be separated by ':'"));
            }
            *o = (digit(bytes[at])? << 4) | digit(bytes[at + 1])?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back_exactly() {
        let fp = Fingerprint::of_der(b"not really a certificate");
        let s = fp.to_string();
        assert!(s.starts_with("sha-256 "));
        assert_eq!(s.len(), 8 + 95);
        assert_eq!(s.parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn refuses_anything_but_the_exact_form() {
        let good = Fingerprint::of_der(b"x").to_string();
        let bad = [
            good.to_lowercase(),
            good.replace("sha-256 ", "sha-1 "),
            good.replace("sha-256 ", "SHA-256 "),
            format!(" {good}"),
            format!("{good} "),
            format!("{good}:00"),
            good[..good.len() - 3].to_string(),
            good.replacen(':', "-", 1),
            good.replacen(':', "", 1) + "0",
            String::new(),
        ];
        for b in bad {
            assert!(b.parse::<Fingerprint>().is_err(), "{b:?}");
        }
    }

    #[test]
    fn matches_only_the_certificate_it_was_made_from() {
        let fp = Fingerprint::of_der(b"cert a");
        assert!(fp.matches_der(b"cert a"));
        assert!(!fp.matches_der(b"cert b"));
    }
}
