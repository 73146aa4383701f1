//! # cryptic-dtls-srtp: the packets of a call and their protection
//!
//! ```text
//!  Opus frame -> [ RTP packet ] -> [ SRTP protect ] -> ICE socket -> peer
//!  peer -> ICE socket -> [ SRTP unprotect ] -> [ RTP packet ] -> jitter buffer
//!                 RTCP reports travel the same way through SRTCP
//! ```
//!
//! This crate holds:
//!
//! * [`rtp`]: zero-copy RTP packets (RFC 3550) with RFC 8285 header
//!   extensions and padding;
//! * [`rtcp`]: RTCP compound packets: SR, RR, SDES, BYE, and unknown types
//!   skipped safely;
//! * [`srtp`]: SRTP and SRTCP with AEAD (RFC 7714): `AEAD_AES_128_GCM` and
//!   Cryptic's own ChaCha20-Poly1305 profile, rollover counter estimation and
//!   replay windows, sealing into caller-provided buffers with no allocation
//!   per packet;
//! * [`stats`]: reception and sending statistics for RTCP reports (loss,
//!   interarrival jitter, round-trip time);
//! * [`crypto`]: the AEAD backend behind a small provider trait;
//! * [`handshake`]: the DTLS 1.2 handshake (the `dtls` crate behind our own
//!   [`handshake::DatagramTransport`] trait) that checks the peer's
//!   certificate against the [`Fingerprint`] received end to end and
//!   exports the SRTP master keys (RFC 5764).
//!
//! Everything but the handshake is sans-IO: no sockets, no clock. The
//! handshake is async because the `dtls` crate is; it only touches the
//! transport it is given and tokio's timers.
//!
//! ```
//! use cryptic_dtls_srtp::rtp::RtpHeader;
//! use cryptic_dtls_srtp::srtp::{Config, MasterKey, Profile, SrtpContext, SRTP_OVERHEAD};
//!
//! let key = MasterKey::new(Profile::AeadAes128Gcm, &[7; 16], &[9; 12]).unwrap();
//! let mut alice = SrtpContext::new(&key, Config::default()).unwrap();
//! let mut bob = SrtpContext::new(&key, Config::default()).unwrap();
//!
//! let mut rtp = [0u8; 200];
//! let len = RtpHeader::new(111, 1, 960, 0xC0FFEE).write_packet(&[0x55; 80], 0, &mut rtp).unwrap();
//! let mut wire = [0u8; 200 + SRTP_OVERHEAD];
//! let sent = alice.protect_rtp(&rtp[..len], &mut wire).unwrap();
//! let mut plain = [0u8; 256];
//! let got = bob.unprotect_rtp(&wire[..sent], &mut plain).unwrap();
//! assert_eq!(&plain[..got], &rtp[..len]);
//! // The same packet again is a replay.
//! assert!(bob.unprotect_rtp(&wire[..sent], &mut plain).is_err());
//! ```

pub mod crypto;
mod error;
mod fingerprint;
pub mod handshake;
mod kdf;
pub mod replay;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stats;

pub use error::Error;
pub use fingerprint::Fingerprint;
pub use kdf::CHACHA_KDF_INFO;

/// Entry points for the cargo-fuzz targets in `fuzz/`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::srtp::{Config, MasterKey, Profile, SrtpContext};

    /// Parses `data` as an RTP packet and walks every accessor.
    pub fn rtp_parse(data: &[u8]) {
        if let Ok(p) = crate::rtp::RtpPacket::parse(data) {
            let _ = (
                p.marker(),
                p.payload_type(),
                p.sequence_number(),
                p.timestamp(),
                p.ssrc(),
            );
            let _ = p.csrcs().count();
            assert!(p.header().len() + p.payload().len() + p.padding_len() == data.len());
            if let Some(ext) = p.extension() {
                for e in ext.elements() {
                    let _ = e.expect("parse checked every element");
                }
            }
        }
    }

    /// Parses `data` as an RTCP compound and walks every packet.
    pub fn rtcp_parse(data: &[u8]) {
        use crate::rtcp::RtcpPacket;
        if let Ok(c) = crate::rtcp::Compound::parse(data) {
            for p in c.packets() {
                match p {
                    RtcpPacket::SenderReport(sr) => {
                        let _ = sr.reports().count();
                    }
                    RtcpPacket::ReceiverReport(rr) => {
                        let _ = rr.reports().count();
                    }
                    RtcpPacket::SourceDescription(sdes) => {
                        for chunk in sdes.chunks() {
                            let chunk = chunk.expect("parse checked every chunk");
                            for item in chunk.items() {
                                let _ = item.expect("parse checked every item");
                            }
                        }
                    }
                    RtcpPacket::Goodbye(bye) => {
                        let _ = bye.ssrcs().count();
                    }
                    _ => {}
                }
            }
        }
    }

    fn context(chacha: bool) -> SrtpContext {
        let key = if chacha {
            MasterKey::new(Profile::CrypticChaCha20Poly1305, &[3; 32], &[4; 12])
        } else {
            MasterKey::new(Profile::AeadAes128Gcm, &[1; 16], &[2; 12])
        };
        SrtpContext::new(
            &key.expect("fixed lengths match"),
            Config::default().with_max_streams(2),
        )
        .expect("fixed configuration is valid")
    }

    /// Feeds `data`, split into datagrams, to an SRTP receiving context,
    /// interleaved with genuine packets so that the fuzzer reaches the
    /// states after authentication too.
    pub fn srtp_unprotect(data: &[u8]) {
        drive(data, false);
    }

    /// As [`srtp_unprotect`], for SRTCP.
    pub fn srtcp_unprotect(data: &[u8]) {
        drive(data, true);
    }

    fn drive(data: &[u8], rtcp: bool) {
        let Some((&mode, mut rest)) = data.split_first() else {
            return;
        };
        let mut tx = context(mode & 1 != 0);
        let mut rx = context(mode & 1 != 0);
        let mut buf = [0u8; 2048];
        let mut out = [0u8; 2048];
        while let Some((&op, tail)) = rest.split_first() {
            let n = usize::from(op & 0x3f).min(tail.len());
            let (chunk, tail) = tail.split_at(n);
            rest = tail;
            if op & 0x80 != 0 {
                // Protect a genuine packet built from the chunk, maybe
                // flip one bit of it, and unprotect it.
                let mut plain = [0u8; 80];
                plain[0] = 0x80;
                plain[1] = if rtcp { 201 } else { 111 };
                plain[2..2 + chunk.len().min(10)].copy_from_slice(&chunk[..chunk.len().min(10)]);
                if rtcp {
                    plain[2] = 0;
                    plain[3] = 1;
                }
                let len = if rtcp { 8 } else { 12 + chunk.len().min(60) };
                let sealed = if rtcp {
                    tx.protect_rtcp(&plain[..len], &mut buf)
                } else {
                    tx.protect_rtp(&plain[..len], &mut buf)
                };
                if let Ok(m) = sealed {
                    if op & 0x40 != 0 && m > 0 {
                        buf[usize::from(op) % m] ^= 1;
                    }
                    let _ = if rtcp {
                        rx.unprotect_rtcp(&buf[..m], &mut out)
                    } else {
                        rx.unprotect_rtp(&buf[..m], &mut out)
                    };
                }
            } else {
                let _ = if rtcp {
                    rx.unprotect_rtcp(chunk, &mut out)
                } else {
                    rx.unprotect_rtp(chunk, &mut out)
                };
            }
        }
    }

    /// Runs a real DTLS handshake between two of our peers over an
    /// in-memory pipe while injecting the datagrams encoded in `data` into
    /// either side, spread over the handshake. The handshake must either
    /// complete with matching keys or fail with an error within its bound;
    /// it must never panic or hang.
    ///
    /// `data` is a sequence of `[side_and_delay, len, bytes...]` records:
    /// bit 0 of the first byte picks the side, the other bits a delay in
    /// milliseconds before the injection.
    pub fn dtls_handshake(data: &[u8]) {
        use crate::handshake::pipe::{Impairment, MemoryTransport};
        use crate::handshake::{handshake, HandshakeConfig, Identity, Role};
        use std::sync::OnceLock;
        use std::time::Duration;

        static IDS: OnceLock<(Identity, Identity)> = OnceLock::new();
        let (a_id, b_id) = IDS.get_or_init(|| {
            (
                Identity::generate().expect("certificate generation works"),
                Identity::generate().expect("certificate generation works"),
            )
        });
        let mut records = Vec::new();
        let mut rest = data;
        while let [head, len, tail @ ..] = rest {
            let n = usize::from(*len).min(tail.len());
            records.push((*head, tail[..n].to_vec()));
            rest = &tail[n..];
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime can always be built");
        runtime.block_on(async {
            let (a, b) = MemoryTransport::pair(Impairment::none(), Impairment::none());
            let (ia, ib) = (a.clone(), b.clone());
            let noise = async move {
                for (head, bytes) in records {
                    tokio::time::sleep(Duration::from_millis(u64::from(head >> 1) / 8)).await;
                    if head & 1 == 0 {
                        ia.inject(&bytes)
                    } else {
                        ib.inject(&bytes)
                    }
                }
            };
            let config = |role| HandshakeConfig::new(role).with_timeout(Duration::from_secs(2));
            let (ra, rb, ()) = tokio::join!(
                handshake(a, a_id, b_id.fingerprint(), config(Role::Server)),
                handshake(b, b_id, a_id.fingerprint(), config(Role::Client)),
                noise,
            );
            if let (Ok(sa), Ok(sb)) = (ra, rb) {
                assert_eq!(sa.peer_fingerprint(), b_id.fingerprint());
                assert_eq!(sb.peer_fingerprint(), a_id.fingerprint());
            }
        });
    }
}
