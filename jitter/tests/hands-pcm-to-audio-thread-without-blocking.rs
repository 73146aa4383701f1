//! The decode thread hands PCM to the audio callback through the lock-free
//! ring; the callback never waits and plays silence on underrun.

use std::thread;

use cryptic_jitter::pcm_channel;

#[test]
fn callback_on_another_thread_receives_every_sample_in_order() {
    let (mut tx, mut rx) = pcm_channel(4 * 960).unwrap();
    let frames = 2_000usize;
    let producer = thread::spawn(move || {
        let mut frame = [0i16; 960];
        let mut n = 0u64;
        for f in 0..frames {
            for (i, s) in frame.iter_mut().enumerate() {
                *s = ((f * 960 + i) % 30_000) as i16;
            }
            // The decode thread pushes a whole frame once there is room.
            while tx.vacant() < frame.len() {
                thread::yield_now();
            }
            assert_eq!(tx.push(&frame), frame.len());
            n += 1;
        }
        n
    });
    // The "callback": 480-sample periods, never blocks; real samples must
    // arrive in order, gaps are silence.
    let mut out = [0i16; 480];
    let mut expect = 0usize;
    while expect < frames * 960 {
        let got = rx.fill(&mut out);
        for &s in &out[..got] {
            assert_eq!(s, (expect % 30_000) as i16);
            expect += 1;
        }
        assert!(out[got..].iter().all(|&s| s == 0));
        thread::yield_now();
    }
    producer.join().unwrap();
    let s = rx.stats();
    assert_eq!(s.played, (frames * 960) as u64);
    assert_eq!(s.overrun_samples, 0);
}

#[test]
fn empty_ring_plays_silence_and_counts_each_underrun() {
    let (_tx, mut rx) = pcm_channel(960).unwrap();
    let mut out = [5i16; 480];
    for _ in 0..3 {
        assert_eq!(rx.fill(&mut out), 0);
        assert!(out.iter().all(|&s| s == 0));
    }
    assert_eq!(rx.stats().underruns, 3);
    assert_eq!(rx.stats().underrun_samples, 1_440);
}
