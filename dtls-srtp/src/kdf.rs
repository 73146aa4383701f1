//! Session key derivation: RFC 3711 section 4.3 for AES-GCM (as RFC 7714
//! section 11 requires), HKDF-SHA256 for the Cryptic ChaCha20-Poly1305
//! profile.

use aes::cipher::{BlockEncrypt, KeyInit};
use zeroize::Zeroize;

use crate::error::Error;

/// RFC 3711 label of the SRTP encryption key.
pub(crate) const LABEL_RTP_KEY: u8 = 0x00;
/// RFC 3711 label of the SRTP salt.
pub(crate) const LABEL_RTP_SALT: u8 = 0x02;
/// RFC 3711 label of the SRTCP encryption key.
pub(crate) const LABEL_RTCP_KEY: u8 = 0x03;
/// RFC 3711 label of the SRTCP salt.
pub(crate) const LABEL_RTCP_SALT: u8 = 0x05;

/// The `info` prefix of the ChaCha20-Poly1305 profile's HKDF; the RFC 3711
/// label byte follows it.
pub const CHACHA_KDF_INFO: &[u8] = b"cryptic srtp chacha20-poly1305 v1";

/// The RFC 3711 AES-CM pseudo-random function with a key derivation rate of
/// zero: fills `out` with `AES_k(x * 2^16 + i)` for `i = 0, 1, ...`, where
/// `x` is the master salt (right-padded with zeros to 112 bits when it is
/// the 96-bit salt of the AEAD profiles, RFC 7714 section 11) with the
/// label XORed into its eighth octet (the key_id `label || r` with `r = 0`,
/// right-aligned in 112 bits).
pub(crate) fn aes_cm_prf(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), Error> {
    if master_salt.len() > 14 {
        return Err(Error::BadKeyLength {
            expected: 14,
            got: master_salt.len(),
        });
    }
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    match master_key.len() {
        16 => {
            let cipher = aes::Aes128::new_from_slice(master_key).map_err(|_| Error::Crypto)?;
            fill_ctr(|b| cipher.encrypt_block(b), &mut iv, out);
        }
        32 => {
            let cipher = aes::Aes256::new_from_slice(master_key).map_err(|_| Error::Crypto)?;
            fill_ctr(|b| cipher.encrypt_block(b), &mut iv, out);
        }
        got => return Err(Error::BadKeyLength { expected: 16, got }),
    }
    iv.zeroize();
    Ok(())
}

fn fill_ctr(encrypt: impl Fn(&mut aes::Block), iv: &mut [u8; 16], out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(16).enumerate() {
        // At most a few blocks are ever asked for, so the 16-bit counter in
        // the last two octets never wraps.
        iv[14..].copy_from_slice(&(i as u16).to_be_bytes());
        let mut block = aes::Block::clone_from_slice(iv);
        encrypt(&mut block);
        chunk.copy_from_slice(&block[..chunk.len()]);
        block.zeroize();
    }
}

/// The ChaCha20-Poly1305 profile's derivation: `HKDF-SHA256` with the
/// master salt as HKDF salt, the master key as input keying material, and
/// `info = CHACHA_KDF_INFO || label`, expanded to `out.len()` bytes.
pub(crate) fn hkdf_sha256(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), Error> {
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, master_salt).extract(master_key);
    let label = [label];
    let info = [CHACHA_KDF_INFO, &label[..]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Error::Crypto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 appendix B.3, the key derivation test vectors.
    #[test]
    fn derives_rfc3711_appendix_b3_session_keys() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut out = [0u8; 16];
        aes_cm_prf(&key, &salt, LABEL_RTP_KEY, &mut out).unwrap();
        assert_eq!(out[..], hex("C61E7A93744F39EE10734AFE3FF7A087")[..]);
        let mut out = [0u8; 14];
        aes_cm_prf(&key, &salt, LABEL_RTP_SALT, &mut out).unwrap();
        assert_eq!(out[..], hex("30CBBC08863D8C85D49DB34A9AE1")[..]);
        let mut out = [0u8; 94];
        aes_cm_prf(&key, &salt, 0x01, &mut out).unwrap();
        assert_eq!(
            out[..],
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
            )[..]
        );
    }

    #[test]
    fn chacha_labels_give_independent_keys() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        hkdf_sha256(&[1; 32], &[2; 12], LABEL_RTP_KEY, &mut a).unwrap();
        hkdf_sha256(&[1; 32], &[2; 12], LABEL_RTCP_KEY, &mut b).unwrap();
        assert_ne!(a, b);
    }
}
