//! Discontinuous transmission: timestamp gaps without sequence gaps are
//! silence, and silence is where the buffer grows or shrinks for free.

use std::time::{Duration, Instant};

use cryptic_jitter::{Config, JitterBuffer, Packet, Playout};

#[test]
fn timestamp_gap_without_sequence_gap_plays_comfort_noise_not_concealment() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default()).unwrap();
    let mut outputs = Vec::new();
    // 1 s talk, 1 s DTX (Opus: a 1-byte frame every 400 ms), 1 s talk;
    // sequence numbers continuous.
    let mut seq = 0u16;
    for k in 0..150u32 {
        let talking = !(50..100).contains(&k);
        let dtx_update = (50..100).contains(&k) && (k - 50) % 20 == 0;
        let now = t0 + Duration::from_millis(u64::from(k) * 20);
        if talking || dtx_update {
            let payload: &[u8] = if talking { b"speech" } else { &[0x08] };
            jb.handle_packet(now, Packet::new(3, seq, k * 960, payload))
                .unwrap();
            seq += 1;
        }
        outputs.push(jb.poll(now + Duration::from_millis(15)).map_kind());
    }
    let s = jb.stats();
    assert_eq!(s.late, 0, "{s:?}");
    assert!(s.played + s.dropped >= 103, "{s:?}");
    assert!(s.silence >= 45, "{s:?}");
    assert_eq!(s.underruns, 0, "{s:?}");
    let conceal = outputs.iter().filter(|k| **k == 'C').count();
    assert_eq!(conceal, 0, "{outputs:?}");
}

#[test]
fn buffer_shrinks_during_silence_by_dropping_silent_frames() {
    let t0 = Instant::now();
    let mut c = Config::default();
    c.start_delay = Duration::from_millis(200);
    let mut jb = JitterBuffer::new(c).unwrap();
    let mut seq = 0u16;
    // Talk for 2 s on a clean network: the buffer starts 200 ms deep and,
    // with no time-stretch, cannot shrink much in speech.
    for k in 0..300u32 {
        let talking = !(100..200).contains(&k);
        let dtx_update = (100..200).contains(&k) && k % 20 == 0;
        let now = t0 + Duration::from_millis(u64::from(k) * 20);
        if talking || dtx_update {
            let payload: &[u8] = if talking { b"speech" } else { &[0x08] };
            jb.handle_packet(now, Packet::new(3, seq, k * 960, payload))
                .unwrap();
            seq += 1;
        }
        let _ = jb.poll(now + Duration::from_millis(5));
    }
    let s = jb.stats();
    assert!(s.dropped >= 5, "silence frames dropped: {s:?}");
    assert!(
        jb.len() <= 2,
        "buffer back to shallow: {} packets",
        jb.len()
    );
}

trait Kind {
    fn map_kind(self) -> char;
}

impl Kind for Playout<'_> {
    fn map_kind(self) -> char {
        match self {
            Playout::Frame(_) => 'F',
            Playout::Conceal(_) => 'C',
            _ => 'S',
        }
    }
}
