//! The AEAD backends behind the SRTP engine.
//!
//! The engine only needs one operation in each direction: seal or open a
//! buffer in place under a 12-byte nonce, with associated data, and a
//! 16-byte tag kept apart. [`CryptoProvider`] makes those keyed
//! [`AeadCipher`]s, so that a backend can be swapped and two backends can be
//! benchmarked side by side. [`RingProvider`] (ring's assembly AES-GCM and
//! ChaCha20-Poly1305) is the default: measured on our machines it is several
//! times faster than the pure-Rust crates for audio-sized packets.

use crate::error::Error;

/// Length of every AEAD nonce used by SRTP (RFC 7714 section 8.1).
pub const NONCE_LEN: usize = 12;
/// Length of every AEAD tag used by SRTP (RFC 7714 section 8.2).
pub const TAG_LEN: usize = 16;

/// An AEAD algorithm the engine can ask a provider for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AeadAlgorithm {
    /// AES-128 in Galois/Counter Mode, 16-byte key.
    Aes128Gcm,
    /// ChaCha20-Poly1305 (RFC 8439), 32-byte key.
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            AeadAlgorithm::Aes128Gcm => 16,
            AeadAlgorithm::ChaCha20Poly1305 => 32,
        }
    }
}

/// The authentication tag did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagMismatch;

/// A keyed AEAD cipher.
pub trait AeadCipher: Send + Sync {
    /// Encrypts `in_out` in place and returns the tag over `aad` and the
    /// ciphertext.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error>;

    /// Verifies `tag` over `aad` and the ciphertext in `in_out`, then
    /// decrypts it in place. On failure the contents of `in_out` are
    /// unspecified.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), TagMismatch>;
}

/// Makes keyed AEAD ciphers.
pub trait CryptoProvider: Send + Sync {
    /// A cipher of `algorithm` keyed with `key` (of `algorithm.key_len()`
    /// bytes).
    fn cipher(&self, algorithm: AeadAlgorithm, key: &[u8]) -> Result<Box<dyn AeadCipher>, Error>;
}

/// The default provider: ring.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingProvider;

struct RingCipher(ring::aead::LessSafeKey);

impl CryptoProvider for RingProvider {
    fn cipher(&self, algorithm: AeadAlgorithm, key: &[u8]) -> Result<Box<dyn AeadCipher>, Error> {
        if key.len() != algorithm.key_len() {
            return Err(Error::BadKeyLength {
                expected: algorithm.key_len(),
                got: key.len(),
            });
        }
        let alg = match algorithm {
            AeadAlgorithm::Aes128Gcm => &ring::aead::AES_128_GCM,
            AeadAlgorithm::ChaCha20Poly1305 => &ring::aead::CHACHA20_POLY1305,
        };
        let key = ring::aead::UnboundKey::new(alg, key).map_err(|_| Error::Crypto)?;
        Ok(Box::new(RingCipher(ring::aead::LessSafeKey::new(key))))
    }
}

impl AeadCipher for RingCipher {
    #[inline]
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce);
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce, ring::aead::Aad::from(aad), in_out)
            .map_err(|_| Error::Crypto)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    #[inline]
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), TagMismatch> {
        let nonce = ring::aead::Nonce::assume_unique_for_key(*nonce);
        self.0
            .open_in_place_separate_tag(
                nonce,
                ring::aead::Aad::from(aad),
                ring::aead::Tag::from(*tag),
                in_out,
                0..,
            )
            .map(|_| ())
            .map_err(|_| TagMismatch)
    }
}

/// RustCrypto's pure-Rust AES-GCM and ChaCha20-Poly1305 (feature
/// `rustcrypto`): a second backend, so that the choice of ring stays a
/// measurement and not a habit.
#[cfg(feature = "rustcrypto")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoProvider;

#[cfg(feature = "rustcrypto")]
mod rustcrypto {
    use super::{AeadAlgorithm, AeadCipher, CryptoProvider, RustCryptoProvider, TagMismatch};
    use super::{NONCE_LEN, TAG_LEN};
    use crate::error::Error;
    use aes_gcm::aead::{AeadInPlace, KeyInit};

    struct Cipher<A>(A);

    impl CryptoProvider for RustCryptoProvider {
        fn cipher(
            &self,
            algorithm: AeadAlgorithm,
            key: &[u8],
        ) -> Result<Box<dyn AeadCipher>, Error> {
            let bad = |_| Error::BadKeyLength {
                expected: algorithm.key_len(),
                got: key.len(),
            };
            Ok(match algorithm {
                AeadAlgorithm::Aes128Gcm => Box::new(Cipher(
                    aes_gcm::Aes128Gcm::new_from_slice(key).map_err(bad)?,
                )),
                AeadAlgorithm::ChaCha20Poly1305 => Box::new(Cipher(
                    chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).map_err(bad)?,
                )),
            })
        }
    }

    impl<A> AeadCipher for Cipher<A>
    where
        A: AeadInPlace + Send + Sync,
        A: aes_gcm::aead::AeadCore<
            NonceSize = aes_gcm::aead::consts::U12,
            TagSize = aes_gcm::aead::consts::U16,
        >,
    {
        fn seal_in_place(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            in_out: &mut [u8],
        ) -> Result<[u8; TAG_LEN], Error> {
            let tag = self
                .0
                .encrypt_in_place_detached(nonce.into(), aad, in_out)
                .map_err(|_| Error::Crypto)?;
            Ok(tag.into())
        }

        fn open_in_place(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            in_out: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), TagMismatch> {
            self.0
                .decrypt_in_place_detached(nonce.into(), aad, in_out, tag.into())
                .map_err(|_| TagMismatch)
        }
    }
}
