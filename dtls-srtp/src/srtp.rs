//! SRTP and SRTCP protection with AEAD (RFC 7714), sans-IO.
//!
//! An [`SrtpContext`] holds the session keys derived from one master key
//! and salt, and the per-SSRC state that goes with them: the highest packet
//! index (from which the rollover counter is estimated), the replay
//! windows, and the next SRTCP index. A call uses two: one made from the
//! local master key that only protects, and one from the remote master key
//! that only unprotects.
//!
//! # Wire format
//!
//! Both profiles frame packets exactly as RFC 7714 does for AEAD_AES_128_GCM:
//!
//! ```text
//! SRTP:  RTP header (associated data) | ciphertext of payload+padding | tag (16)
//! SRTCP: first 8 octets | ciphertext of the rest | tag (16) | E | SRTCP index (31 bits)
//! ```
//!
//! * The 12-byte nonce of an SRTP packet is
//!   `(0x0000 || SSRC || ROC || SEQ) XOR session_salt`, and of an SRTCP packet
//!   `(0x0000 || SSRC || 0x0000 || 0 || SRTCP index) XOR session_salt`
//!   (RFC 7714 sections 8.1 and 9.1; all fields big-endian).
//! * SRTP associated data: the whole RTP header, CSRCs and extension
//!   included. SRTCP associated data with E = 1: the first 8 octets then the
//!   4-octet `E || index` word; with E = 0 (authentication only): the whole
//!   RTCP packet then that word, and nothing is encrypted.
//!
//! # Session keys
//!
//! * [`Profile::AeadAes128Gcm`]: 16-byte master key, 12-byte master salt.
//!   Session keys come from the RFC 3711 AES-CM key derivation with a key
//!   derivation rate of 0, the master salt right-padded with two zero octets
//!   (RFC 7714 section 11): labels 0x00 (SRTP key, 16 bytes), 0x02 (SRTP
//!   salt, 12 bytes), 0x03 (SRTCP key) and 0x05 (SRTCP salt).
//! * [`Profile::CrypticChaCha20Poly1305`], our own profile: 32-byte master key,
//!   12-byte master salt, the AEAD is ChaCha20-Poly1305 of RFC 8439 with its
//!   32-byte key, 12-byte nonce and 16-byte tag, and everything above (nonce,
//!   associated data, framing, indices, replay rules) is unchanged. Each
//!   session key or salt is `HKDF-SHA256(salt = master salt, ikm = master
//!   key, info = "cryptic srtp chacha20-poly1305 v1" || label, L)` (RFC 5869,
//!   the info string in ASCII without a terminator, followed by the one label
//!   octet), with the RFC 3711 labels above and L = 32 for keys, 12 for salts.
//!
//! # Driving it
//!
//! Nothing here does I/O or reads a clock. Protect a plaintext packet with
//! [`SrtpContext::protect_rtp`] (or the in-place form, with
//! [`TAG_LEN`] spare bytes after the packet) and send the bytes it wrote;
//! give every received datagram to [`SrtpContext::unprotect_rtp`] and drop
//! it on any error. State changes only when a packet authenticates, so a
//! forged or replayed packet leaves the context exactly as it was.

use zeroize::Zeroize;

use crate::crypto::{AeadAlgorithm, AeadCipher, CryptoProvider, RingProvider, NONCE_LEN, TAG_LEN};
use crate::error::{need, Error};
use crate::kdf;
use crate::replay::{estimate_index, ReplayWindow};
use crate::rtp;

/// Bytes SRTP adds to an RTP packet (the tag).
pub const SRTP_OVERHEAD: usize = TAG_LEN;
/// Bytes SRTCP adds to an RTCP packet (the tag and the `E || index` word).
pub const SRTCP_OVERHEAD: usize = TAG_LEN + 4;
/// The largest SRTP packet index plus one (48 bits).
const SRTP_INDEX_LIMIT: u64 = 1 << 48;
/// The largest SRTCP index plus one (31 bits).
const SRTCP_INDEX_LIMIT: u32 = 1 << 31;

/// An SRTP protection profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// `AEAD_AES_128_GCM` of RFC 7714 (DTLS-SRTP profile `0x0007`).
    AeadAes128Gcm,
    /// Cryptic's ChaCha20-Poly1305 profile, described in the module docs.
    /// Not registered with IANA: use it only when both peers chose it in the
    /// end-to-end encrypted signaling.
    CrypticChaCha20Poly1305,
}

impl Profile {
    /// Length of the master key.
    pub fn master_key_len(self) -> usize {
        match self {
            Profile::AeadAes128Gcm => 16,
            Profile::CrypticChaCha20Poly1305 => 32,
        }
    }

    /// Length of the master salt.
    pub fn master_salt_len(self) -> usize {
        12
    }

    /// The DTLS-SRTP protection profile identifier (RFC 5764), if any.
    pub fn dtls_srtp_id(self) -> Option<u16> {
        match self {
            Profile::AeadAes128Gcm => Some(0x0007),
            Profile::CrypticChaCha20Poly1305 => None,
        }
    }

    /// The name used in signaling.
    pub fn name(self) -> &'static str {
        match self {
            Profile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Profile::CrypticChaCha20Poly1305 => "CRYPTIC_CHACHA20_POLY1305",
        }
    }

    fn algorithm(self) -> AeadAlgorithm {
        match self {
            Profile::AeadAes128Gcm => AeadAlgorithm::Aes128Gcm,
            Profile::CrypticChaCha20Poly1305 => AeadAlgorithm::ChaCha20Poly1305,
        }
    }

    fn derive(self, key: &[u8], salt: &[u8], label: u8, out: &mut [u8]) -> Result<(), Error> {
        match self {
            Profile::AeadAes128Gcm => kdf::aes_cm_prf(key, salt, label, out),
            Profile::CrypticChaCha20Poly1305 => kdf::hkdf_sha256(key, salt, label, out),
        }
    }
}

/// A master key and master salt for one direction of a session. Wiped from
/// memory when dropped.
#[derive(Clone)]
pub struct MasterKey {
    profile: Profile,
    key: [u8; 32],
    salt: [u8; 12],
}

impl MasterKey {
    /// Checks the lengths against the profile and keeps a copy.
    pub fn new(profile: Profile, key: &[u8], salt: &[u8]) -> Result<Self, Error> {
        if key.len() != profile.master_key_len() {
            return Err(Error::BadKeyLength {
                expected: profile.master_key_len(),
                got: key.len(),
            });
        }
        if salt.len() != profile.master_salt_len() {
            return Err(Error::BadKeyLength {
                expected: profile.master_salt_len(),
                got: salt.len(),
            });
        }
        let mut k = [0u8; 32];
        k[..key.len()].copy_from_slice(key);
        let mut s = [0u8; 12];
        s.copy_from_slice(salt);
        Ok(MasterKey {
            profile,
            key: k,
            salt: s,
        })
    }

    /// The profile this key is for.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn key(&self) -> &[u8] {
        &self.key[..self.profile.master_key_len()]
    }
}

impl core::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("MasterKey")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.salt.zeroize();
    }
}

/// Settings of an [`SrtpContext`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Replay window, in packets, for SRTP and (separately) SRTCP: 64 to
    /// 1024. Default 128.
    pub replay_window: usize,
    /// Most SSRCs the context tracks (a 1:1 audio call needs one per
    /// direction, two across a sender restart). Default 8.
    pub max_streams: usize,
    /// Encrypt SRTCP (E = 1). With `false`, SRTCP packets are only
    /// authenticated. Default `true`. Receiving accepts both.
    pub encrypt_rtcp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            replay_window: 128,
            max_streams: 8,
            encrypt_rtcp: true,
        }
    }
}

impl Config {
    /// The default configuration with another replay window size.
    pub fn with_replay_window(mut self, packets: usize) -> Self {
        self.replay_window = packets;
        self
    }

    /// The configuration with another SSRC limit.
    pub fn with_max_streams(mut self, streams: usize) -> Self {
        self.max_streams = streams;
        self
    }

    /// The configuration with SRTCP encryption on or off.
    pub fn with_rtcp_encryption(mut self, encrypt: bool) -> Self {
        self.encrypt_rtcp = encrypt;
        self
    }
}

struct SessionKey {
    cipher: Box<dyn AeadCipher>,
    salt: [u8; 12],
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

#[derive(Debug, Clone)]
struct Stream {
    ssrc: u32,
    rtp: ReplayWindow,
    rtcp: ReplayWindow,
    next_rtcp_index: u32,
}

/// SRTP and SRTCP state for one direction of a session: one master key,
/// any number of SSRCs up to [`Config::max_streams`].
pub struct SrtpContext {
    profile: Profile,
    config: Config,
    rtp: SessionKey,
    rtcp: SessionKey,
    streams: Vec<Stream>,
    window_template: ReplayWindow,
}

impl core::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("config", &self.config)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn srtp_nonce(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    for (a, b) in n.iter_mut().zip(salt) {
        *a ^= b;
    }
    n
}

#[inline]
fn srtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[8..12].copy_from_slice(&index.to_be_bytes());
    for (a, b) in n.iter_mut().zip(salt) {
        *a ^= b;
    }
    n
}

impl SrtpContext {
    /// A context for `master`, with ring as the AEAD backend.
    pub fn new(master: &MasterKey, config: Config) -> Result<Self, Error> {
        Self::with_provider(master, config, &RingProvider)
    }

    /// A context for `master` whose AEADs come from `provider`.
    pub fn with_provider(
        master: &MasterKey,
        config: Config,
        provider: &dyn CryptoProvider,
    ) -> Result<Self, Error> {
        let profile = master.profile;
        let klen = profile.algorithm().key_len();
        let mut keys = [[0u8; 32]; 2];
        let mut salts = [[0u8; 12]; 2];
        let labels = [
            (kdf::LABEL_RTP_KEY, kdf::LABEL_RTP_SALT),
            (kdf::LABEL_RTCP_KEY, kdf::LABEL_RTCP_SALT),
        ];
        let mut result = Ok(());
        for (i, (key_label, salt_label)) in labels.into_iter().enumerate() {
            result = result
                .and_then(|_| {
                    profile.derive(master.key(), &master.salt, key_label, &mut keys[i][..klen])
                })
                .and_then(|_| {
                    profile.derive(master.key(), &master.salt, salt_label, &mut salts[i])
                });
        }
        let context = result.and_then(|_| {
            Self::with_session_keys(
                profile,
                (&keys[0][..klen], &salts[0]),
                (&keys[1][..klen], &salts[1]),
                config,
                provider,
            )
        });
        keys.zeroize();
        salts.zeroize();
        context
    }

    /// A context from session keys and salts given directly, skipping the
    /// key derivation: `rtp` and `rtcp` are `(key, salt)` pairs. This is what
    /// the RFC 7714 test vectors need; sessions use [`SrtpContext::new`].
    pub fn with_session_keys(
        profile: Profile,
        rtp: (&[u8], &[u8]),
        rtcp: (&[u8], &[u8]),
        config: Config,
        provider: &dyn CryptoProvider,
    ) -> Result<Self, Error> {
        if config.max_streams == 0 {
            return Err(Error::BadConfig("max_streams must be at least 1"));
        }
        let window_template = ReplayWindow::new(config.replay_window)?;
        let session = |(key, salt): (&[u8], &[u8])| -> Result<SessionKey, Error> {
            let salt: [u8; 12] = salt.try_into().map_err(|_| Error::BadKeyLength {
                expected: 12,
                got: salt.len(),
            })?;
            Ok(SessionKey {
                cipher: provider.cipher(profile.algorithm(), key)?,
                salt,
            })
        };
        Ok(SrtpContext {
            profile,
            config,
            rtp: session(rtp)?,
            rtcp: session(rtcp)?,
            streams: Vec::with_capacity(config.max_streams),
            window_template,
        })
    }

    /// The profile of this context.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The SSRCs this context has state for.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.iter().map(|s| s.ssrc)
    }

    /// The rollover counter of an SSRC's stream, if the context knows it.
    pub fn rollover_counter(&self, ssrc: u32) -> Option<u32> {
        self.find(ssrc)
            .and_then(|i| self.streams[i].rtp.top())
            .map(|top| (top >> 16) as u32)
    }

    /// Sets the SRTCP index the next protected SRTCP packet of `ssrc` will
    /// carry (RFC 7714 test vectors start mid-stream). Indices already used
    /// must never be used again under the same key: this is for tests.
    #[doc(hidden)]
    pub fn set_next_srtcp_index(&mut self, ssrc: u32, index: u32) -> Result<(), Error> {
        let i = self.find_or_add(ssrc)?;
        self.streams[i].next_rtcp_index = index;
        Ok(())
    }

    #[inline]
    fn find(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    fn add(&mut self, ssrc: u32) -> Result<usize, Error> {
        if self.streams.len() >= self.config.max_streams {
            return Err(Error::TooManyStreams);
        }
        self.streams.push(Stream {
            ssrc,
            rtp: self.window_template.clone(),
            rtcp: self.window_template.clone(),
            next_rtcp_index: 0,
        });
        Ok(self.streams.len() - 1)
    }

    #[inline]
    fn find_or_add(&mut self, ssrc: u32) -> Result<usize, Error> {
        match self.find(ssrc) {
            Some(i) => Ok(i),
            None => self.add(ssrc),
        }
    }

    /// Protects the RTP packet in `rtp` into `out` (which needs
    /// `rtp.len() + SRTP_OVERHEAD` bytes); returns the SRTP length.
    #[inline]
    pub fn protect_rtp(&mut self, rtp: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let needed = rtp.len() + SRTP_OVERHEAD;
        let Some(dst) = out.get_mut(..rtp.len()) else {
            return Err(Error::BufferTooSmall {
                needed,
                got: out.len(),
            });
        };
        dst.copy_from_slice(rtp);
        self.protect_rtp_in_place(out, rtp.len())
    }

    /// Protects the RTP packet in `buf[..len]` in place; `buf` needs
    /// [`SRTP_OVERHEAD`] more bytes after it. Returns the SRTP length.
    ///
    /// The packet index comes from the header's sequence number and the
    /// stream's rollover counter, which advances when the sequence number
    /// wraps. Protecting the same index twice is refused
    /// ([`Error::IndexReused`]): it would reuse a nonce.
    pub fn protect_rtp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let total = len + SRTP_OVERHEAD;
        if buf.len() < total {
            return Err(Error::BufferTooSmall {
                needed: total,
                got: buf.len(),
            });
        }
        let header_len = rtp::header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(buf, 8);
        let s = self.find_or_add(ssrc)?;
        let stream = &mut self.streams[s];
        let index = estimate_index(stream.rtp.top(), seq).ok_or(Error::IndexReused {
            index: u64::from(seq),
        })?;
        if index >= SRTP_INDEX_LIMIT {
            return Err(Error::KeyExhausted);
        }
        stream
            .rtp
            .check(index)
            .map_err(|_| Error::IndexReused { index })?;
        let nonce = srtp_nonce(&self.rtp.salt, ssrc, index);
        let (header, rest) = buf.split_at_mut(header_len);
        let (payload, tail) = rest.split_at_mut(len - header_len);
        let tag = self.rtp.cipher.seal_in_place(&nonce, header, payload)?;
        tail[..TAG_LEN].copy_from_slice(&tag);
        stream.rtp.accept(index);
        Ok(total)
    }

    /// Checks and decrypts the SRTP packet in `srtp` into `out` (which needs
    /// `srtp.len() - SRTP_OVERHEAD` bytes, or simply `srtp.len()`); returns
    /// the RTP length. On error `out` holds nothing useful and the context
    /// is unchanged.
    #[inline]
    pub fn unprotect_rtp(&mut self, srtp: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let Some(dst) = out.get_mut(..srtp.len()) else {
            return Err(Error::BufferTooSmall {
                needed: srtp.len(),
                got: out.len(),
            });
        };
        dst.copy_from_slice(srtp);
        self.unprotect_rtp_in_place(dst)
    }

    /// Checks and decrypts the SRTP packet that is all of `buf`, in place;
    /// returns the RTP length (the packet is then `buf[..len]`).
    ///
    /// In order: the header must parse and a tag must fit; the index is
    /// estimated and checked against the replay window; the tag is
    /// verified; only then are the window and the rollover counter updated.
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = buf.len();
        let header_len = rtp::header_len(buf)?;
        need(buf, header_len + TAG_LEN)?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(buf, 8);
        let found = self.find(ssrc);
        if found.is_none() && self.streams.len() >= self.config.max_streams {
            return Err(Error::TooManyStreams);
        }
        let top = found.and_then(|s| self.streams[s].rtp.top());
        let index = estimate_index(top, seq).ok_or(Error::TooOld {
            index: u64::from(seq),
        })?;
        if index >= SRTP_INDEX_LIMIT {
            return Err(Error::Malformed("SRTP index beyond 2^48"));
        }
        if let Some(s) = found {
            self.streams[s].rtp.check(index)?;
        }
        let nonce = srtp_nonce(&self.rtp.salt, ssrc, index);
        let plain_len = len - TAG_LEN;
        let (packet, tag) = buf.split_at_mut(plain_len);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Crypto)?;
        let (header, payload) = packet.split_at_mut(header_len);
        self.rtp
            .cipher
            .open_in_place(&nonce, header, payload, tag)
            .map_err(|_| Error::AuthenticationFailed)?;
        let s = match found {
            Some(s) => s,
            None => self.add(ssrc)?,
        };
        self.streams[s].rtp.accept(index);
        Ok(plain_len)
    }

    /// Protects the RTCP compound in `rtcp` into `out` (which needs
    /// `rtcp.len() + SRTCP_OVERHEAD` bytes); returns the SRTCP length.
    #[inline]
    pub fn protect_rtcp(&mut self, rtcp: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let needed = rtcp.len() + SRTCP_OVERHEAD;
        let Some(dst) = out.get_mut(..rtcp.len()) else {
            return Err(Error::BufferTooSmall {
                needed,
                got: out.len(),
            });
        };
        dst.copy_from_slice(rtcp);
        self.protect_rtcp_in_place(out, rtcp.len())
    }

    /// Protects the RTCP compound in `buf[..len]` in place; `buf` needs
    /// [`SRTCP_OVERHEAD`] more bytes after it. Returns the SRTCP length.
    /// Each SSRC's SRTCP index counts up from 0; after 2^31 packets the key
    /// is exhausted.
    pub fn protect_rtcp_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        let total = len + SRTCP_OVERHEAD;
        if buf.len() < total {
            return Err(Error::BufferTooSmall {
                needed: total,
                got: buf.len(),
            });
        }
        need(&buf[..len], 8)?;
        if buf[0] >> 6 != 2 {
            return Err(Error::Malformed("RTCP version is not 2"));
        }
        let ssrc = be32(buf, 4);
        let s = self.find_or_add(ssrc)?;
        let stream = &mut self.streams[s];
        let index = stream.next_rtcp_index;
        if index >= SRTCP_INDEX_LIMIT {
            return Err(Error::KeyExhausted);
        }
        let nonce = srtcp_nonce(&self.rtcp.salt, ssrc, index);
        let tag = if self.config.encrypt_rtcp {
            let word = (0x8000_0000 | index).to_be_bytes();
            let mut aad = [0u8; 12];
            aad[..8].copy_from_slice(&buf[..8]);
            aad[8..].copy_from_slice(&word);
            let tag = self
                .rtcp
                .cipher
                .seal_in_place(&nonce, &aad, &mut buf[8..len])?;
            buf[len + TAG_LEN..total].copy_from_slice(&word);
            tag
        } else {
            let word = index.to_be_bytes();
            // Associated data is the packet then the index word: put the word
            // where the tag will go, seal nothing, then lay out the trailer.
            buf[len..len + 4].copy_from_slice(&word);
            let tag = self
                .rtcp
                .cipher
                .seal_in_place(&nonce, &buf[..len + 4], &mut [])?;
            buf[len + TAG_LEN..total].copy_from_slice(&word);
            tag
        };
        buf[len..len + TAG_LEN].copy_from_slice(&tag);
        stream.next_rtcp_index = index + 1;
        Ok(total)
    }

    /// Checks and decrypts the SRTCP packet in `srtcp` into `out` (which
    /// needs `srtcp.len()` bytes); returns the RTCP length.
    #[inline]
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8], out: &mut [u8]) -> Result<usize, Error> {
        let Some(dst) = out.get_mut(..srtcp.len()) else {
            return Err(Error::BufferTooSmall {
                needed: srtcp.len(),
                got: out.len(),
            });
        };
        dst.copy_from_slice(srtcp);
        self.unprotect_rtcp_in_place(dst)
    }

    /// Checks and decrypts (E = 1) or only checks (E = 0) the SRTCP packet
    /// that is all of `buf`, in place; returns the RTCP length. Each SSRC
    /// has its own SRTCP replay window.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = buf.len();
        need(buf, 8 + SRTCP_OVERHEAD)?;
        if buf[0] >> 6 != 2 {
            return Err(Error::Malformed("RTCP version is not 2"));
        }
        let word = be32(buf, len - 4);
        let encrypted = word & 0x8000_0000 != 0;
        let index = word & 0x7fff_ffff;
        let ssrc = be32(buf, 4);
        let found = self.find(ssrc);
        if found.is_none() && self.streams.len() >= self.config.max_streams {
            return Err(Error::TooManyStreams);
        }
        if let Some(s) = found {
            self.streams[s].rtcp.check(u64::from(index))?;
        }
        let nonce = srtcp_nonce(&self.rtcp.salt, ssrc, index);
        let plain_len = len - SRTCP_OVERHEAD;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[plain_len..plain_len + TAG_LEN]);
        let opened = if encrypted {
            let mut aad = [0u8; 12];
            aad[..8].copy_from_slice(&buf[..8]);
            aad[8..].copy_from_slice(&word.to_be_bytes());
            self.rtcp
                .cipher
                .open_in_place(&nonce, &aad, &mut buf[8..plain_len], &tag)
        } else {
            // Associated data is the packet then the index word: move the
            // word next to the packet (the tag was copied out above).
            buf.copy_within(len - 4.., plain_len);
            self.rtcp
                .cipher
                .open_in_place(&nonce, &buf[..plain_len + 4], &mut [], &tag)
        };
        opened.map_err(|_| Error::AuthenticationFailed)?;
        let s = match found {
            Some(s) => s,
            None => self.add(ssrc)?,
        };
        self.streams[s].rtcp.accept(u64::from(index));
        Ok(plain_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_rfc7714_srtp_and_srtcp_nonces() {
        let salt: [u8; 12] = *b"Quid pro quo";
        assert_eq!(
            srtp_nonce(&salt, 0x5501_a0b2, 0xf17b),
            [0x51, 0x75, 0x3c, 0x65, 0x80, 0xc2, 0x72, 0x6f, 0x20, 0x71, 0x84, 0x14]
        );
        assert_eq!(
            srtcp_nonce(&salt, 0x4d61_7273, 0x5d4),
            [0x51, 0x75, 0x24, 0x05, 0x52, 0x03, 0x72, 0x6f, 0x20, 0x71, 0x70, 0xbb]
        );
    }

    #[test]
    fn master_key_refuses_wrong_lengths() {
        assert!(MasterKey::new(Profile::AeadAes128Gcm, &[0; 16], &[0; 12]).is_ok());
        assert_eq!(
            MasterKey::new(Profile::AeadAes128Gcm, &[0; 32], &[0; 12]).unwrap_err(),
            Error::BadKeyLength {
                expected: 16,
                got: 32
            }
        );
        assert!(MasterKey::new(Profile::CrypticChaCha20Poly1305, &[0; 32], &[0; 14]).is_err());
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let k = MasterKey::new(Profile::AeadAes128Gcm, &[0xab; 16], &[0xcd; 12]).unwrap();
        let s = format!("{k:?}");
        assert!(!s.contains("171") && !s.to_lowercase().contains("ab"));
    }
}
