//! Per-packet cost of SRTP protect and unprotect, beside its references.
//!
//! For each payload size (80 and 160 bytes: Opus at 32 and 64 kbit/s; 1200
//! bytes: a full datagram) behind a 12-byte RTP header, each group measures:
//!
//! * `raw-aes128gcm` / `raw-chacha20poly1305`: ring's AEAD alone, sealing or
//!   opening the payload with the header as associated data: the floor;
//! * `ours-aes128gcm` / `ours-chacha20poly1305`: our `SrtpContext`, from a
//!   plaintext packet to an SRTP packet in a caller's buffer and back;
//! * `ours-rustcrypto-*`: the same engine on RustCrypto's pure-Rust AEADs,
//!   the second `CryptoProvider`, to show why ring is the default;
//! * `libsrtp-aes128gcm`: libsrtp 2 through the `srtp` crate, same packet.
//!
//! Run with `cargo bench -p cryptic-benches --bench srtp`; read the ratios
//! of the medians within a group.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cryptic_dtls_srtp::crypto::{CryptoProvider, RingProvider, RustCryptoProvider};
use cryptic_dtls_srtp::rtp::RtpHeader;
use cryptic_dtls_srtp::srtp::{Config, MasterKey, Profile, SrtpContext, SRTP_OVERHEAD};
use ring::aead;
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 3] = [80, 160, 1200];
const SSRC: u32 = 0x5eed_5eed;
const KEY16: [u8; 16] = [0x42; 16];
const KEY32: [u8; 32] = [0x42; 32];
const SALT: [u8; 12] = [0x24; 12];

fn packet(seq: u16, payload: usize) -> Vec<u8> {
    let mut out = vec![0u8; 12 + payload];
    RtpHeader::new(111, seq, u32::from(seq) * 960, SSRC)
        .write_packet(&vec![0xa5; payload], 0, &mut out)
        .expect("buffer sized for the packet");
    out
}

fn set_seq(packet: &mut [u8], seq: u16) {
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn ours_with(profile: Profile, provider: &dyn CryptoProvider) -> SrtpContext {
    let key: &[u8] = match profile {
        Profile::AeadAes128Gcm => &KEY16,
        _ => &KEY32,
    };
    let master = MasterKey::new(profile, key, &SALT).expect("lengths match the profile");
    SrtpContext::with_provider(&master, Config::default(), provider)
        .expect("default config is valid")
}

fn libsrtp(outbound: bool) -> srtp::Session {
    let mut material = KEY16.to_vec();
    material.extend_from_slice(&SALT);
    let policy = srtp::StreamPolicy {
        rtp: srtp::CryptoPolicy::aes_gcm_128_16_auth(),
        rtcp: srtp::CryptoPolicy::aes_gcm_128_16_auth(),
        key: &material,
        window_size: 128,
        allow_repeat_tx: false,
        encrypt_extension_headers: &[],
    };
    if outbound {
        srtp::Session::with_outbound_template(policy).expect("valid policy")
    } else {
        srtp::Session::with_inbound_template(policy).expect("valid policy")
    }
}

/// Our engine on each profile, on ring (the default) and on RustCrypto.
fn ours_variants() -> [(&'static str, Profile, &'static dyn CryptoProvider); 4] {
    [
        ("ours-aes128gcm", Profile::AeadAes128Gcm, &RingProvider),
        (
            "ours-chacha20poly1305",
            Profile::CrypticChaCha20Poly1305,
            &RingProvider,
        ),
        (
            "ours-rustcrypto-aes128gcm",
            Profile::AeadAes128Gcm,
            &RustCryptoProvider,
        ),
        (
            "ours-rustcrypto-chacha20poly1305",
            Profile::CrypticChaCha20Poly1305,
            &RustCryptoProvider,
        ),
    ]
}

fn raw_key(alg: &'static aead::Algorithm) -> aead::LessSafeKey {
    let key: &[u8] = if alg == &aead::AES_128_GCM {
        &KEY16
    } else {
        &KEY32
    };
    aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).expect("key length"))
}

fn nonce(counter: u64) -> aead::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    aead::Nonce::assume_unique_for_key(n)
}

fn protect(c: &mut Criterion) {
    for size in SIZES {
        let mut group = c.benchmark_group(format!("protect/{size}"));
        group.throughput(Throughput::Elements(1));
        let plain = packet(0, size);

        for (name, alg) in [
            ("raw-aes128gcm", &aead::AES_128_GCM),
            ("raw-chacha20poly1305", &aead::CHACHA20_POLY1305),
        ] {
            let key = raw_key(alg);
            let mut buf = plain.clone();
            let mut counter = 0u64;
            group.bench_function(name, |b| {
                b.iter(|| {
                    counter += 1;
                    let (header, payload) = buf.split_at_mut(12);
                    let tag = key
                        .seal_in_place_separate_tag(
                            nonce(counter),
                            aead::Aad::from(&*header),
                            payload,
                        )
                        .expect("seal");
                    let _sealed = black_box(tag);
                })
            });
        }

        for (name, profile, provider) in ours_variants() {
            let mut tx = ours_with(profile, provider);
            let mut input = plain.clone();
            let mut out = vec![0u8; plain.len() + SRTP_OVERHEAD];
            let mut seq = 0u16;
            group.bench_function(name, |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    set_seq(&mut input, seq);
                    black_box(
                        tx.protect_rtp(black_box(&input), &mut out)
                            .expect("protect"),
                    );
                })
            });
        }

        let mut tx = libsrtp(true);
        let mut input = plain.clone();
        let mut buf = Vec::with_capacity(plain.len() + 64);
        let mut seq = 0u16;
        group.bench_function("libsrtp-aes128gcm", |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                set_seq(&mut input, seq);
                buf.clear();
                buf.extend_from_slice(black_box(&input));
                tx.protect(&mut buf).expect("libsrtp protect");
                black_box(&buf);
            })
        });
        group.finish();
    }
}

fn unprotect(c: &mut Criterion) {
    for size in SIZES {
        let mut group = c.benchmark_group(format!("unprotect/{size}"));
        group.throughput(Throughput::Elements(1));
        let plain = packet(0, size);

        for (name, alg) in [
            ("raw-aes128gcm", &aead::AES_128_GCM),
            ("raw-chacha20poly1305", &aead::CHACHA20_POLY1305),
        ] {
            let key = raw_key(alg);
            let mut counter = 0u64;
            group.bench_function(name, |b| {
                b.iter_batched_ref(
                    || {
                        counter += 1;
                        let mut buf = plain.clone();
                        let (header, payload) = buf.split_at_mut(12);
                        let tag = key
                            .seal_in_place_separate_tag(
                                nonce(counter),
                                aead::Aad::from(&*header),
                                payload,
                            )
                            .expect("seal");
                        buf.extend_from_slice(tag.as_ref());
                        (counter, buf)
                    },
                    |(n, buf)| {
                        let (header, rest) = buf.split_at_mut(12);
                        black_box(
                            key.open_in_place(nonce(*n), aead::Aad::from(&*header), rest)
                                .expect("open"),
                        );
                    },
                    BatchSize::SmallInput,
                )
            });
        }

        for (name, profile, provider) in ours_variants() {
            let mut tx = ours_with(profile, provider);
            let mut rx = ours_with(profile, provider);
            let mut input = plain.clone();
            let mut out = vec![0u8; plain.len() + SRTP_OVERHEAD];
            let mut seq = 0u16;
            group.bench_function(name, |b| {
                b.iter_batched_ref(
                    || {
                        seq = seq.wrapping_add(1);
                        set_seq(&mut input, seq);
                        let mut sealed = vec![0u8; input.len() + SRTP_OVERHEAD];
                        tx.protect_rtp(&input, &mut sealed).expect("protect");
                        sealed
                    },
                    |sealed| {
                        black_box(
                            rx.unprotect_rtp(black_box(sealed), &mut out)
                                .expect("unprotect"),
                        );
                    },
                    BatchSize::SmallInput,
                )
            });
        }

        // The in-place form, as a receive loop that owns its buffer uses it.
        let mut tx = ours_with(Profile::AeadAes128Gcm, &RingProvider);
        let mut rx = ours_with(Profile::AeadAes128Gcm, &RingProvider);
        let mut input = plain.clone();
        let mut seq = 0u16;
        group.bench_function("ours-aes128gcm-in-place", |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    set_seq(&mut input, seq);
                    let mut sealed = vec![0u8; input.len() + SRTP_OVERHEAD];
                    tx.protect_rtp(&input, &mut sealed).expect("protect");
                    sealed
                },
                |sealed| {
                    black_box(
                        rx.unprotect_rtp_in_place(black_box(sealed))
                            .expect("unprotect"),
                    );
                },
                BatchSize::SmallInput,
            )
        });

        let mut tx = libsrtp(true);
        let mut rx = libsrtp(false);
        let mut input = plain.clone();
        let mut seq = 0u16;
        group.bench_function("libsrtp-aes128gcm", |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    set_seq(&mut input, seq);
                    let mut sealed = Vec::with_capacity(input.len() + 64);
                    sealed.extend_from_slice(&input);
                    tx.protect(&mut sealed).expect("libsrtp protect");
                    sealed
                },
                |sealed| {
                    rx.unprotect(sealed).expect("libsrtp unprotect");
                    black_box(&sealed);
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = protect, unprotect
}
criterion_main!(benches);
