//! Both profiles round-trip and reject the same faults, each with its own
//! error: tampered header, payload or tag and a wrong key fail
//! authentication; truncated packets are truncated; replays are replays; and
//! none of these changes the receiver's state.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use cryptic_dtls_srtp::rtp::{ExtensionForm, ExtensionWriter, RtpHeader};
use cryptic_dtls_srtp::srtp::{
    Config, MasterKey, Profile, SrtpContext, SRTCP_OVERHEAD, SRTP_OVERHEAD,
};
use cryptic_dtls_srtp::{rtcp, Error};

const PROFILES: [Profile; 2] = [Profile::AeadAes128Gcm, Profile::CrypticChaCha20Poly1305];
const SSRC: u32 = 0x1234_5678;

fn key(profile: Profile, fill: u8) -> MasterKey {
    MasterKey::new(
        profile,
        &vec![fill; profile.master_key_len()],
        &[fill ^ 0x5a; 12],
    )
    .unwrap()
}

fn pair(profile: Profile) -> (SrtpContext, SrtpContext) {
    let k = key(profile, 1);
    (
        SrtpContext::new(&k, Config::default()).unwrap(),
        SrtpContext::new(&k, Config::default()).unwrap(),
    )
}

fn rtp(seq: u16, payload_len: usize) -> Vec<u8> {
    let mut ext = [0u8; 8];
    let mut w = ExtensionWriter::new(ExtensionForm::OneByte, &mut ext).unwrap();
    w.push(1, &[0x7f]).unwrap();
    let header = RtpHeader {
        csrcs: &[9],
        extension: Some(w.finish()),
        ..RtpHeader::new(111, seq, u32::from(seq) * 960, SSRC)
    };
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let mut out = vec![0u8; 1500];
    let n = header.write_packet(&payload, 0, &mut out).unwrap();
    out.truncate(n);
    out
}

fn rtcp_compound() -> Vec<u8> {
    let mut out = vec![0u8; 256];
    let mut n =
        rtcp::write_receiver_report(&mut out, SSRC, &[rtcp::ReportBlock::default()]).unwrap();
    n += rtcp::write_sdes(&mut out[n..], SSRC, &[(rtcp::SDES_CNAME, b"bob")]).unwrap();
    out.truncate(n);
    out
}

fn seal(tx: &mut SrtpContext, packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; packet.len() + SRTP_OVERHEAD];
    let n = tx.protect_rtp(packet, &mut out).unwrap();
    out.truncate(n);
    out
}

fn open(rx: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; packet.len()];
    rx.unprotect_rtp(packet, &mut out)
        .map(|n| out[..n].to_vec())
}

#[test]
fn both_profiles_round_trip_every_payload_size_across_sequence_wrap() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        for (i, size) in (0..=1200).step_by(7).enumerate() {
            let packet = rtp(65_000u16.wrapping_add(i as u16 * 5), size);
            assert_eq!(open(&mut rx, &seal(&mut tx, &packet)).unwrap(), packet);
        }
        assert_eq!(rx.rollover_counter(SSRC), Some(1), "{profile:?}");
    }
}

#[test]
fn tampering_any_byte_of_header_payload_or_tag_fails_authentication() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let packet = rtp(100, 160);
        let sealed = seal(&mut tx, &packet);
        // Byte 0 carries version/CC/X and byte 2..4 the sequence number:
        // flipping their low bits changes the header without breaking its
        // parse or pushing the index out of the window.
        for at in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            if at == 12 + 4 + 2 {
                continue; // the extension length: changes where the header ends.
            }
            let got = open(&mut rx, &bad);
            assert!(
                matches!(
                    got,
                    Err(Error::AuthenticationFailed)
                        | Err(Error::Malformed(_))
                        | Err(Error::Truncated { .. })
                ),
                "{profile:?} byte {at}: {got:?}"
            );
        }
        // The genuine packet still goes through: nothing above changed state.
        assert_eq!(open(&mut rx, &sealed).unwrap(), packet);
    }
}

#[test]
fn flipping_a_payload_byte_or_a_tag_byte_is_an_authentication_failure() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let sealed = seal(&mut tx, &rtp(7, 80));
        let header_len = sealed.len() - 80 - SRTP_OVERHEAD;
        for at in [8, header_len, header_len + 40, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x80;
            assert_eq!(
                open(&mut rx, &bad),
                Err(Error::AuthenticationFailed),
                "byte {at}"
            );
        }
    }
}

#[test]
fn truncated_packets_are_reported_as_truncated() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let sealed = seal(&mut tx, &rtp(7, 0));
        // Header is 12 + 4 (CSRC) + 8 (extension) bytes; no payload.
        for cut in 0..24 + SRTP_OVERHEAD {
            assert!(
                matches!(open(&mut rx, &sealed[..cut]), Err(Error::Truncated { .. })),
                "{profile:?} cut {cut}"
            );
        }
        assert!(open(&mut rx, &sealed).is_ok());
    }
}

#[test]
fn a_packet_sealed_under_another_key_fails_authentication() {
    for profile in PROFILES {
        let mut tx = SrtpContext::new(&key(profile, 2), Config::default()).unwrap();
        let (_, mut rx) = pair(profile);
        assert_eq!(
            open(&mut rx, &seal(&mut tx, &rtp(1, 100))),
            Err(Error::AuthenticationFailed)
        );
    }
}

#[test]
fn replays_are_rejected_even_after_reordering_and_old_packets_fall_out_of_the_window() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let sealed: Vec<Vec<u8>> = (0..300u16).map(|s| seal(&mut tx, &rtp(s, 20))).collect();
        // Deliver 0..200 but hold back 150.
        for (s, p) in sealed.iter().enumerate().take(200) {
            if s != 150 {
                open(&mut rx, p).unwrap();
            }
        }
        assert!(
            open(&mut rx, &sealed[150]).is_ok(),
            "late but inside the window"
        );
        assert_eq!(
            open(&mut rx, &sealed[150]),
            Err(Error::Replayed { index: 150 })
        );
        assert_eq!(
            open(&mut rx, &sealed[199]),
            Err(Error::Replayed { index: 199 })
        );
        assert_eq!(open(&mut rx, &sealed[71]), Err(Error::TooOld { index: 71 }));
        assert!(open(&mut rx, &sealed[299]).is_ok());
        // 180 was delivered already; 250 arrives late but is new.
        assert_eq!(
            open(&mut rx, &sealed[180]),
            Err(Error::Replayed { index: 180 })
        );
        assert!(open(&mut rx, &sealed[250]).is_ok());
    }
}

#[test]
fn rejects_packet_replayed_after_rollover() {
    for profile in PROFILES {
        let (mut tx, mut rx) = pair(profile);
        let before_wrap = seal(&mut tx, &rtp(65_535, 10));
        open(&mut rx, &before_wrap).unwrap();
        for s in 0..10 {
            open(&mut rx, &seal(&mut tx, &rtp(s, 10))).unwrap();
        }
        assert_eq!(
            open(&mut rx, &before_wrap),
            Err(Error::Replayed { index: 65_535 })
        );
    }
}

#[test]
fn the_sender_refuses_to_protect_the_same_index_twice() {
    for profile in PROFILES {
        let (mut tx, _) = pair(profile);
        seal(&mut tx, &rtp(5, 10));
        let mut out = [0u8; 200];
        assert_eq!(
            tx.protect_rtp(&rtp(5, 11), &mut out),
            Err(Error::IndexReused { index: 5 })
        );
    }
}

#[test]
fn output_buffers_that_are_too_small_are_refused_not_overrun() {
    let (mut tx, mut rx) = pair(Profile::AeadAes128Gcm);
    let packet = rtp(1, 50);
    let mut small = vec![0u8; packet.len() + SRTP_OVERHEAD - 1];
    assert!(matches!(
        tx.protect_rtp(&packet, &mut small),
        Err(Error::BufferTooSmall { .. })
    ));
    let sealed = seal(&mut tx, &packet);
    let mut small = vec![0u8; sealed.len() - 1];
    assert!(matches!(
        rx.unprotect_rtp(&sealed, &mut small),
        Err(Error::BufferTooSmall { .. })
    ));
}

#[test]
fn the_stream_limit_bounds_state_from_new_ssrcs() {
    let k = key(Profile::AeadAes128Gcm, 1);
    let mut tx = SrtpContext::new(&k, Config::default().with_max_streams(16)).unwrap();
    let mut rx = SrtpContext::new(&k, Config::default().with_max_streams(2)).unwrap();
    let mut out = [0u8; 256];
    for (i, ssrc) in [10u32, 11, 12].into_iter().enumerate() {
        let header = RtpHeader::new(0, 1, 0, ssrc);
        let mut p = [0u8; 64];
        let n = header.write_packet(b"x", 0, &mut p).unwrap();
        let m = tx.protect_rtp(&p[..n], &mut out).unwrap();
        let mut o = [0u8; 256];
        let got = rx.unprotect_rtp(&out[..m], &mut o);
        if i < 2 {
            assert!(got.is_ok());
        } else {
            assert_eq!(got, Err(Error::TooManyStreams));
        }
    }
}

#[test]
fn srtcp_round_trips_and_rejects_the_same_faults_in_both_profiles() {
    for profile in PROFILES {
        for encrypt in [true, false] {
            let k = key(profile, 3);
            let mut tx =
                SrtpContext::new(&k, Config::default().with_rtcp_encryption(encrypt)).unwrap();
            let mut rx = SrtpContext::new(&k, Config::default()).unwrap();
            let compound = rtcp_compound();
            let mut sealed = vec![0u8; compound.len() + SRTCP_OVERHEAD];
            let mut out = vec![0u8; sealed.len()];
            let mut first = Vec::new();
            for i in 0..3 {
                let n = tx.protect_rtcp(&compound, &mut sealed).unwrap();
                assert_eq!(n, compound.len() + SRTCP_OVERHEAD);
                assert_eq!(sealed[n - 4] >> 7, u8::from(encrypt), "E flag");
                if encrypt {
                    assert_ne!(&sealed[8..compound.len()], &compound[8..]);
                }
                if i == 0 {
                    first = sealed.clone();
                }
                let m = rx.unprotect_rtcp(&sealed, &mut out).unwrap();
                assert_eq!(&out[..m], &compound[..]);
            }
            assert_eq!(
                rx.unprotect_rtcp(&first, &mut out),
                Err(Error::Replayed { index: 0 })
            );
            // A fresh packet, tampered before the genuine one arrives.
            tx.protect_rtcp(&compound, &mut sealed).unwrap();
            let fresh = sealed.clone();
            for at in [1, 8, compound.len(), fresh.len() - 5] {
                let mut bad = fresh.clone();
                bad[at] ^= 0x04;
                assert_eq!(
                    rx.unprotect_rtcp(&bad, &mut out),
                    Err(Error::AuthenticationFailed),
                    "{profile:?} E={encrypt} byte {at}"
                );
            }
            // Flipping the E flag itself changes the associated data.
            let mut bad = fresh.clone();
            let e = bad.len() - 4;
            bad[e] ^= 0x80;
            assert!(rx.unprotect_rtcp(&bad, &mut out).is_err());
            for cut in 0..8 + SRTCP_OVERHEAD {
                assert!(matches!(
                    rx.unprotect_rtcp(&fresh[..cut], &mut out),
                    Err(Error::Truncated { .. })
                ));
            }
            let m = rx.unprotect_rtcp(&fresh, &mut out).unwrap();
            assert_eq!(&out[..m], &compound[..], "state survived the forgeries");
        }
    }
}

#[test]
fn the_profiles_do_not_understand_each_other() {
    let mut gcm = SrtpContext::new(&key(Profile::AeadAes128Gcm, 1), Config::default()).unwrap();
    let mut chacha =
        SrtpContext::new(&key(Profile::CrypticChaCha20Poly1305, 1), Config::default()).unwrap();
    let sealed = seal(&mut gcm, &rtp(1, 60));
    assert_eq!(open(&mut chacha, &sealed), Err(Error::AuthenticationFailed));
}
