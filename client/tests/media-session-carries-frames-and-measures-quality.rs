//! Two media sessions keyed as the two ends of a DTLS-SRTP handshake talk
//! through a seeded network emulator (40 ms one-way delay, jitter, 5% loss)
//! on a virtual clock for a minute of 20 ms frames: frames come out in
//! order, losses are concealed, both sides measure loss and round-trip
//! time from RTCP, packet sizes do not vary with the payload, forged
//! datagrams are dropped, and BYE ends the call.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::time::{Duration, Instant};

use cryptic_call::media::{Incoming, MediaConfig, MediaSession};
use cryptic_dtls_srtp::handshake::{Role, SrtpKeys};
use cryptic_dtls_srtp::srtp::Profile;
use cryptic_dtls_srtp::stats::NtpClock;
use cryptic_jitter::Playout;
use cryptic_tests::link::{Datagram, Link};

const FRAME: Duration = Duration::from_millis(20);

fn sessions(start: Instant) -> (MediaSession, MediaSession) {
    sessions_with(start, MediaConfig::new(0xA11CE, "alice", 1))
}

/// Alice with `alice` for her settings, bob with the defaults.
fn sessions_with(start: Instant, alice: MediaConfig) -> (MediaSession, MediaSession) {
    let material: Vec<u8> = (0..56u8).collect();
    let alice_keys =
        SrtpKeys::from_exported(Profile::AeadAes128Gcm, Role::Server, &material).unwrap();
    let bob_keys =
        SrtpKeys::from_exported(Profile::AeadAes128Gcm, Role::Client, &material).unwrap();
    let clock = NtpClock::from_system_time(start, Duration::from_secs(1_800_000_000));
    (
        MediaSession::new(&alice_keys, alice, clock, start).unwrap(),
        MediaSession::new(&bob_keys, MediaConfig::new(0xB0B, "bob", 2), clock, start).unwrap(),
    )
}

/// One direction of the emulated network: the shared seeded link, 5% loss
/// and 35 to 45 ms of delay.
fn link(seed: u64) -> Link {
    Link::new(seed)
        .with_loss(0.05)
        .with_delay(Duration::from_millis(35), Duration::from_millis(45))
}

/// Sends one datagram on `link` (addresses do not matter here).
fn send(link: &mut Link, now: Instant, datagram: &[u8]) {
    let at = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    link.send(
        now,
        Datagram {
            from: at,
            to: at,
            data: datagram.to_vec(),
        },
    );
}

#[test]
fn a_minute_of_frames_through_loss_and_jitter_plays_in_order_and_reports_quality() {
    let start = Instant::now();
    let (mut alice, mut bob) = sessions(start);
    let mut a_to_b = link(10);
    let mut b_to_a = link(20);
    let mut buf = [0u8; 1500];
    let mut sizes = std::collections::BTreeSet::new();
    let mut bob_heard = Vec::new();
    let frames = 3000u32;
    let mut now = start;
    for i in 0..frames + 50 {
        // Every 20 ms both send a frame whose first bytes count frames.
        if i < frames {
            let mut payload = vec![0u8; 60 + (i % 17) as usize];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            let n = alice.send_frame(now, &payload, i == 0, &mut buf).unwrap();
            sizes.insert(n);
            send(&mut a_to_b, now, &buf[..n]);
            let n = bob.send_frame(now, &payload, i == 0, &mut buf).unwrap();
            send(&mut b_to_a, now, &buf[..n]);
        }
        // Deliver what is due, in 1 ms steps.
        for ms in 0..20 {
            let t = now + Duration::from_millis(ms);
            while let Some(d) = a_to_b.poll(t) {
                bob.handle_datagram(t, &d.data).unwrap();
            }
            while let Some(d) = b_to_a.poll(t) {
                alice.handle_datagram(t, &d.data).unwrap();
            }
            for (session, link) in [(&mut alice, &mut a_to_b), (&mut bob, &mut b_to_a)] {
                while let Some(r) = session.poll_transmit(t, &mut buf) {
                    let n = r.unwrap();
                    send(link, t, &buf[..n]);
                }
            }
        }
        match bob.poll_playout(now) {
            Playout::Frame(f) => {
                bob_heard.push(Some(u32::from_be_bytes(f.payload[..4].try_into().unwrap())))
            }
            Playout::Conceal(_) => bob_heard.push(None),
            _ => {}
        }
        let _ = alice.poll_playout(now);
        now += FRAME;
    }

    // Packet sizes: 60..=76-byte payloads all pad to 64 or 96 bytes.
    assert!(sizes.len() <= 2, "sizes leak the payload length: {sizes:?}");

    // Bob heard the frames in order, with losses concealed.
    let played: Vec<u32> = bob_heard.iter().flatten().copied().collect();
    assert!(played.windows(2).all(|w| w[0] < w[1]), "out of order");
    let stats = bob.stats();
    println!("bob: {stats:?}");
    println!("alice: {:?}", alice.stats());
    assert!(
        played.len() as f64 > f64::from(frames) * 0.93,
        "played {}",
        played.len()
    );
    assert!(
        (0.03..0.08).contains(&stats.loss_received),
        "loss {}",
        stats.loss_received
    );
    assert!(stats.concealed > 0);
    assert!(stats.jitter > Duration::ZERO && stats.jitter < Duration::from_millis(10));

    // Both sides measured the round trip from RTCP: 2 x (35..45 ms).
    for s in [alice.stats(), bob.stats()] {
        let rtt = s.rtt.expect("an RTT from RTCP").as_secs_f64() * 1000.0;
        assert!((65.0..95.0).contains(&rtt), "rtt {rtt} ms");
        assert!(s.loss_reported_by_peer < 0.2);
    }
}

#[test]
fn forged_and_replayed_datagrams_are_dropped_and_counted_and_bye_ends_the_call() {
    let start = Instant::now();
    let (mut alice, mut bob) = sessions(start);
    let mut buf = [0u8; 1500];
    let n = alice
        .send_frame(start, b"hello bob", true, &mut buf)
        .unwrap();
    let genuine = buf[..n].to_vec();
    assert!(matches!(
        bob.handle_datagram(start, &genuine),
        Ok(Incoming::Media(_))
    ));
    assert!(bob.handle_datagram(start, &genuine).is_err(), "replay");
    let mut forged = genuine.clone();
    forged[n - 1] ^= 1;
    assert!(bob.handle_datagram(start, &forged).is_err());
    assert!(bob.handle_datagram(start, &[0x80, 200, 0, 1]).is_err());
    assert!(bob.handle_datagram(start, &[]).is_err());
    assert_eq!(bob.stats().dropped, 4);

    let n = alice.write_bye(start + FRAME, &mut buf).unwrap();
    assert_eq!(
        bob.handle_datagram(start + FRAME, &buf[..n]),
        Ok(Incoming::Bye)
    );
}

/// Runs `frames` frames of `step` ms from alice to bob over a clean 5 ms
/// path, alice's RTP timestamps stepping by `samples` a frame, and bob
/// polling once per his buffer's frame; returns what bob played (frame
/// numbers) and his buffer's frame length.
fn frames_of(samples: u32, step: Duration, frames: u32) -> (Vec<u32>, u32) {
    let start = Instant::now();
    let (mut alice, mut bob) = sessions(start);
    alice.set_frame_samples(samples);
    let mut a_to_b = Link::new(3).with_delay(Duration::from_millis(5), Duration::from_millis(5));
    let mut buf = [0u8; 1500];
    let mut heard = Vec::new();
    let mut next_play = start;
    let end = start + step * (frames + 20);
    let mut now = start;
    let mut i = 0u32;
    while now < end {
        if i < frames && now >= start + step * i {
            let mut payload = [0u8; 40];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            let n = alice.send_frame(now, &payload, i == 0, &mut buf).unwrap();
            send(&mut a_to_b, now, &buf[..n]);
            i += 1;
        }
        while let Some(d) = a_to_b.poll(now) {
            bob.handle_datagram(now, &d.data).unwrap();
        }
        if now >= next_play {
            if let Playout::Frame(f) = bob.poll_playout(now) {
                heard.push(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
            }
            let per_frame = u64::from(bob.playout_frame_samples()) * 1000 / 48;
            next_play += Duration::from_micros(per_frame);
        }
        now += Duration::from_millis(1);
    }
    (heard, bob.playout_frame_samples())
}

#[test]
fn the_receiver_plays_frames_as_long_as_the_sender_makes_them() {
    // 10 ms frames (a sound device): bob's buffer learns it from the first
    // two packets and plays them in order, at 100 a second (the first is
    // taken by the buffer it replaces, and one or two may be left out as
    // the start-up delay shrinks to the path's); a buffer that kept 20 ms
    // frames would play half.
    let (heard, samples) = frames_of(480, Duration::from_millis(10), 300);
    assert_eq!(samples, 480);
    assert!(heard.windows(2).all(|w| w[1] > w[0]), "{heard:?}");
    assert!(heard.len() >= 295, "played {} of 300", heard.len());

    // 20 ms frames (a file): nothing changes.
    let (heard, samples) = frames_of(960, Duration::from_millis(20), 150);
    assert_eq!(samples, 960);
    assert!(heard.windows(2).all(|w| w[1] > w[0]), "{heard:?}");
    assert!(heard.len() >= 147, "played {} of 150", heard.len());

    // A step that is no frame length Opus sends here (700 samples) is not
    // followed: the buffer keeps 20 ms frames.
    let (_, samples) = frames_of(700, Duration::from_millis(20), 50);
    assert_eq!(samples, 960);
}

/// A minute of 20 ms frames from alice to bob through 5 % random loss and
/// 35 to 45 ms of delay, alice sending `copies` copies of the frames before
/// each one; returns the frames bob played (in order) and his figures.
fn one_way_with_copies(copies: usize, seed: u64) -> (Vec<u32>, cryptic_call::media::MediaStats) {
    let start = Instant::now();
    let mut config = MediaConfig::new(0xA11CE, "alice", 1);
    config.peer_takes_red = true;
    let (mut alice, mut bob) = sessions_with(start, config);
    alice.set_redundancy(copies);
    let mut a_to_b = link(seed);
    let mut buf = [0u8; 1500];
    let mut heard = Vec::new();
    let mut sizes = std::collections::BTreeSet::new();
    let mut now = start;
    for i in 0..3050u32 {
        if i < 3000 {
            // Constant-bitrate frames: the same size every time.
            let mut payload = [0u8; 80];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            let n = alice.send_frame(now, &payload, i == 0, &mut buf).unwrap();
            if i >= 2 {
                sizes.insert(n);
            }
            send(&mut a_to_b, now, &buf[..n]);
        }
        for ms in 0..20 {
            let t = now + Duration::from_millis(ms);
            while let Some(d) = a_to_b.poll(t) {
                bob.handle_datagram(t, &d.data).unwrap();
            }
        }
        if let Playout::Frame(f) = bob.poll_playout(now) {
            heard.push(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
        }
        now += FRAME;
    }
    assert_eq!(sizes.len(), 1, "sizes vary with copies on: {sizes:?}");
    assert!(heard.windows(2).all(|w| w[0] < w[1]), "out of order");
    (heard, bob.stats())
}

#[test]
fn copies_of_the_two_frames_before_rebuild_nearly_every_loss() {
    // Without copies about 5 % of frames are concealed; with two, a frame
    // is lost only when three packets in a row are (about 1 in 8 000).
    let (plain, plain_stats) = one_way_with_copies(0, 10);
    let (copied, stats) = one_way_with_copies(2, 10);
    println!("without copies: {plain_stats:?}");
    println!("with two copies: {stats:?}");
    assert_eq!(plain_stats.recovered, 0);
    assert!(plain.len() < 2_900, "played {} of 3000", plain.len());
    assert!(
        (0.03..0.08).contains(&stats.loss_received),
        "the path lost {}",
        stats.loss_received
    );
    assert!(stats.recovered >= 100, "rebuilt {}", stats.recovered);
    assert!(copied.len() >= 2_990, "played {} of 3000", copied.len());
    assert_eq!(stats.copies_sent, 0, "bob sends none");
}

#[test]
fn a_malformed_redundant_payload_is_dropped_in_plain_words() {
    let start = Instant::now();
    // Mallory's session sends raw bytes under the redundant payload type.
    let mut config = MediaConfig::new(0x3A11, "mallory", 1);
    config.payload_type = config.red_payload_type;
    config.payload_bucket = 0;
    let (mut mallory, mut bob) = sessions_with(start, config);
    let mut buf = [0u8; 1500];
    for (payload, words) in [
        (&[0x80u8 | 111, 0x0f][..], "cut short"),
        (
            &[0x80 | 111, 0x0f, 0x00, 40, 111, 1, 2][..],
            "longer than the packet",
        ),
        (&[8u8, 1, 2][..], "not Opus"),
    ] {
        let n = mallory.send_frame(start, payload, false, &mut buf).unwrap();
        let e = bob.handle_datagram(start, &buf[..n]).unwrap_err();
        assert!(e.to_string().contains(words), "{e}");
    }
    assert_eq!(bob.stats().dropped, 3);
    assert_eq!(bob.stats().packets_received, 3);
}

#[test]
fn a_first_gap_is_reported_at_once_not_at_the_next_regular_report() {
    let start = Instant::now();
    let (mut alice, mut bob) = sessions(start);
    let mut buf = [0u8; 1500];
    let deliver = |i: u32, lose: bool, alice: &mut MediaSession, bob: &mut MediaSession| {
        let now = start + FRAME * i;
        let mut buf = [0u8; 1500];
        let n = alice.send_frame(now, &[0u8; 60], i == 0, &mut buf).unwrap();
        if !lose {
            bob.handle_datagram(now, &buf[..n]).unwrap();
        }
        now
    };
    for i in 0..3 {
        deliver(i, false, &mut alice, &mut bob);
    }
    let regular = bob.poll_timeout();
    assert!(regular >= start + Duration::from_millis(500));
    deliver(3, true, &mut alice, &mut bob);
    let seen = deliver(4, false, &mut alice, &mut bob);
    let due = bob.poll_timeout();
    assert!(
        due <= seen + cryptic_call::media::EARLY_REPORT,
        "the gap is reported {:?} after it was seen",
        due - seen
    );
    let n = bob.poll_transmit(due, &mut buf).expect("a report").unwrap();
    alice.handle_datagram(due, &buf[..n]).unwrap();
    let s = alice.stats();
    assert_eq!(s.peer_reports, 1);
    assert!(s.loss_reported_by_peer > 0.1, "{s:?}");
    // Another gap before a report said no loss again: no second early one.
    deliver(5, true, &mut alice, &mut bob);
    let seen = deliver(6, false, &mut alice, &mut bob);
    assert!(bob.poll_timeout() >= seen + Duration::from_millis(400));
}
