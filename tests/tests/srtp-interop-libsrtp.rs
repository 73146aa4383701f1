//! Interop with libsrtp 2 (through the `srtp` crate) for AEAD_AES_128_GCM:
//! 10,000 packets each way, random payloads of 0 to 1200 bytes, starting at
//! sequence number 65,500 so that the rollover counter advances, delivered
//! with reordering and duplicates mixed in. Every unique packet must come out
//! of the receiver exactly as it went into the sender, and every duplicate
//! must be rejected, whichever side protects.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::rtcp;
use cryptic_dtls_srtp::rtp::{ExtensionForm, ExtensionWriter, RtpHeader};
use cryptic_dtls_srtp::srtp::{Config, MasterKey, Profile, SrtpContext};
use cryptic_dtls_srtp::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PACKETS: usize = 10_000;
const FIRST_SEQ: u16 = 65_500;
const SSRC: u32 = 0x0bad_cafe;

struct Keys {
    key: [u8; 16],
    salt: [u8; 12],
}

impl Keys {
    fn random(rng: &mut StdRng) -> Self {
        Keys {
            key: rng.random(),
            salt: rng.random(),
        }
    }

    fn ours(&self) -> SrtpContext {
        let master = MasterKey::new(Profile::AeadAes128Gcm, &self.key, &self.salt).unwrap();
        SrtpContext::new(&master, Config::default()).unwrap()
    }

    fn libsrtp(&self, outbound: bool) -> srtp::Session {
        let mut material = self.key.to_vec();
        material.extend_from_slice(&self.salt);
        let policy = srtp::StreamPolicy {
            rtp: srtp::CryptoPolicy::aes_gcm_128_16_auth(),
            rtcp: srtp::CryptoPolicy::aes_gcm_128_16_auth(),
            key: &material,
            window_size: 128,
            allow_repeat_tx: false,
            encrypt_extension_headers: &[],
        };
        if outbound {
            srtp::Session::with_outbound_template(policy).unwrap()
        } else {
            srtp::Session::with_inbound_template(policy).unwrap()
        }
    }
}

/// 10,000 RTP packets with random payload sizes, some with CSRCs, header
/// extensions or padding, so the whole header is exercised as AAD.
fn rtp_packets(rng: &mut StdRng) -> Vec<Vec<u8>> {
    (0..PACKETS)
        .map(|i| {
            let seq = FIRST_SEQ.wrapping_add(i as u16);
            let payload: Vec<u8> = (0..rng.random_range(0..=1200))
                .map(|_| rng.random())
                .collect();
            let csrcs: Vec<u32> = (0..rng.random_range(0..3)).map(|_| rng.random()).collect();
            let mut ext_buf = [0u8; 16];
            let mut header = RtpHeader::new(111, seq, 960 * i as u32, SSRC);
            header.marker = rng.random_bool(0.1);
            header.csrcs = &csrcs;
            if rng.random_bool(0.3) {
                let mut w = ExtensionWriter::new(ExtensionForm::OneByte, &mut ext_buf).unwrap();
                w.push(1, &[rng.random()]).unwrap();
                header.extension = Some(w.finish());
            }
            let padding = if rng.random_bool(0.1) {
                rng.random_range(1..=16)
            } else {
                0
            };
            let mut out = vec![0u8; 1500];
            let n = header.write_packet(&payload, padding, &mut out).unwrap();
            out.truncate(n);
            out
        })
        .collect()
}

/// 10,000 RTCP compounds: a receiver report then an application-defined
/// packet whose body makes the size random (0 to 1200 bytes).
fn rtcp_packets(rng: &mut StdRng) -> Vec<Vec<u8>> {
    (0..PACKETS)
        .map(|_| {
            let mut out = vec![0u8; 1300];
            let block = rtcp::ReportBlock {
                ssrc: rng.random(),
                fraction_lost: rng.random(),
                jitter: rng.random(),
                ..Default::default()
            };
            let mut n = rtcp::write_receiver_report(&mut out, SSRC, &[block]).unwrap();
            let body = rng.random_range(0..=1200usize) / 4 * 4;
            let words = (body / 4 + 1) as u16;
            out[n..n + 4].copy_from_slice(&[0x80, 204, (words >> 8) as u8, words as u8]);
            for b in &mut out[n + 4..n + 8 + body] {
                *b = rng.random();
            }
            n += 8 + body;
            out.truncate(n);
            out
        })
        .collect()
}

/// The order in which packets reach the receiver: mostly in order, 10% moved
/// up to 20 places later, and 5% delivered a second time further on.
fn delivery_order(rng: &mut StdRng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..n {
        if rng.random_bool(0.1) {
            let j = (i + rng.random_range(1..=20)).min(n - 1);
            order.swap(i, j);
        }
    }
    let mut with_dups = Vec::with_capacity(n + n / 10);
    let mut pending: Vec<(usize, usize)> = Vec::new();
    for (pos, &p) in order.iter().enumerate() {
        with_dups.push(p);
        if rng.random_bool(0.05) {
            pending.push((pos + rng.random_range(1..=30), p));
        }
        pending.retain(|&(at, dup)| {
            if at == pos {
                with_dups.push(dup);
                false
            } else {
                true
            }
        });
    }
    with_dups.extend(pending.into_iter().map(|(_, p)| p));
    with_dups
}

#[derive(Debug, Default, PartialEq)]
struct Tally {
    delivered: usize,
    duplicates_rejected: usize,
}

/// Counts acceptances and checks each accepted packet against the original.
fn check_delivery(
    originals: &[Vec<u8>],
    order: &[usize],
    mut receive: impl FnMut(usize) -> Option<Vec<u8>>,
) -> Tally {
    let mut seen = vec![false; originals.len()];
    let mut tally = Tally::default();
    for &p in order {
        match receive(p) {
            Some(plain) => {
                assert!(!seen[p], "packet {p} accepted twice");
                assert_eq!(
                    plain, originals[p],
                    "packet {p} differs after the round trip"
                );
                seen[p] = true;
                tally.delivered += 1;
            }
            None => {
                assert!(seen[p], "packet {p} rejected the first time it arrived");
                tally.duplicates_rejected += 1;
            }
        }
    }
    assert!(seen.iter().all(|&s| s), "some packet never arrived");
    tally
}

#[test]
fn libsrtp_unprotects_srtp_we_protect_across_rollover_with_reordering_and_duplicates() {
    let mut rng = StdRng::seed_from_u64(1);
    let keys = Keys::random(&mut rng);
    let packets = rtp_packets(&mut rng);
    let mut ours = keys.ours();
    let mut buf = [0u8; 1600];
    let sealed: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let n = ours.protect_rtp(p, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();
    assert_eq!(ours.rollover_counter(SSRC), Some(1));

    let order = delivery_order(&mut rng, PACKETS);
    let mut theirs = keys.libsrtp(false);
    let tally = check_delivery(&packets, &order, |p| {
        let mut v = sealed[p].clone();
        theirs.unprotect(&mut v).ok().map(|()| v)
    });
    assert_eq!(tally.delivered, PACKETS);
    assert!(tally.duplicates_rejected > 400, "{tally:?}");
}

#[test]
fn we_unprotect_srtp_libsrtp_protects_across_rollover_with_reordering_and_duplicates() {
    let mut rng = StdRng::seed_from_u64(2);
    let keys = Keys::random(&mut rng);
    let packets = rtp_packets(&mut rng);
    let mut theirs = keys.libsrtp(true);
    let sealed: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let mut v = p.clone();
            theirs.protect(&mut v).unwrap();
            v
        })
        .collect();

    let order = delivery_order(&mut rng, PACKETS);
    let mut ours = keys.ours();
    let mut out = [0u8; 1600];
    let tally = check_delivery(&packets, &order, |p| {
        match ours.unprotect_rtp(&sealed[p], &mut out) {
            Ok(n) => Some(out[..n].to_vec()),
            Err(Error::Replayed { .. }) => None,
            Err(e) => panic!("packet {p}: unexpected {e}"),
        }
    });
    assert_eq!(tally.delivered, PACKETS);
    assert!(tally.duplicates_rejected > 400, "{tally:?}");
    assert_eq!(ours.rollover_counter(SSRC), Some(1));
}

#[test]
fn libsrtp_unprotects_srtcp_we_protect_with_reordering_and_duplicates() {
    let mut rng = StdRng::seed_from_u64(3);
    let keys = Keys::random(&mut rng);
    let packets = rtcp_packets(&mut rng);
    let mut ours = keys.ours();
    let mut buf = [0u8; 1600];
    let sealed: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let n = ours.protect_rtcp(p, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();

    let order = delivery_order(&mut rng, PACKETS);
    let mut theirs = keys.libsrtp(false);
    let tally = check_delivery(&packets, &order, |p| {
        let mut v = sealed[p].clone();
        theirs.unprotect_rtcp(&mut v).ok().map(|()| v)
    });
    assert_eq!(tally.delivered, PACKETS);
    assert!(tally.duplicates_rejected > 400, "{tally:?}");
}

#[test]
fn we_unprotect_srtcp_libsrtp_protects_with_reordering_and_duplicates() {
    let mut rng = StdRng::seed_from_u64(4);
    let keys = Keys::random(&mut rng);
    let packets = rtcp_packets(&mut rng);
    let mut theirs = keys.libsrtp(true);
    let sealed: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let mut v = p.clone();
            theirs.protect_rtcp(&mut v).unwrap();
            v
        })
        .collect();

    let order = delivery_order(&mut rng, PACKETS);
    let mut ours = keys.ours();
    let mut out = [0u8; 1600];
    let tally = check_delivery(&packets, &order, |p| {
        match ours.unprotect_rtcp(&sealed[p], &mut out) {
            Ok(n) => Some(out[..n].to_vec()),
            Err(Error::Replayed { .. }) => None,
            Err(e) => panic!("packet {p}: unexpected {e}"),
        }
    });
    assert_eq!(tally.delivered, PACKETS);
    assert!(tally.duplicates_rejected > 400, "{tally:?}");
}
