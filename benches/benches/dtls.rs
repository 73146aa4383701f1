//! DTLS-SRTP handshake costs, and the memory a completed session holds.
//!
//! * `dtls/handshake`: a full handshake (certificates made beforehand)
//!   between two of our peers over an in-memory pipe and over loopback UDP;
//! * `dtls/identity`: our per-call `Identity::generate` beside rcgen's bare
//!   P-256 key and self-signed certificate (the reference: what we add on
//!   top is the DER copy, the fingerprint and the key conversion);
//! * before the groups run, the memory held per completed session is
//!   measured as the growth of the resident set while both ends of 200
//!   sessions stay open, and printed.
//!
//! Run with `cargo bench -p cryptic-benches --bench dtls`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use cryptic_dtls_srtp::handshake::pipe::{Impairment, MemoryTransport};
use cryptic_dtls_srtp::handshake::{
    handshake, DatagramTransport, DtlsSession, HandshakeConfig, Identity, Role, UdpTransport,
};

/// Resident set size of this process, in bytes (Linux).
fn rss_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn pair_over(
    a: Arc<dyn DatagramTransport>,
    b: Arc<dyn DatagramTransport>,
    x: &Identity,
    y: &Identity,
) -> (DtlsSession, DtlsSession) {
    let (rx, ry) = tokio::join!(
        handshake(a, x, y.fingerprint(), HandshakeConfig::new(Role::Server)),
        handshake(b, y, x.fingerprint(), HandshakeConfig::new(Role::Client)),
    );
    (rx.expect("server side"), ry.expect("client side"))
}

async fn udp_pair() -> (Arc<dyn DatagramTransport>, Arc<dyn DatagramTransport>) {
    let a = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    a.connect(b.local_addr().expect("addr"))
        .await
        .expect("connect");
    b.connect(a.local_addr().expect("addr"))
        .await
        .expect("connect");
    (
        Arc::new(UdpTransport::new(a)),
        Arc::new(UdpTransport::new(b)),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn memory_per_session() {
    let rt = runtime();
    let x = Identity::generate().expect("identity");
    let y = Identity::generate().expect("identity");
    const N: i64 = 200;
    // One session first, so that lazily initialised statics are not counted.
    rt.block_on(async {
        let (a, b) = MemoryTransport::pair(Impairment::none(), Impairment::none());
        let (s1, s2) = pair_over(a, b, &x, &y).await;
        s1.close().await;
        s2.close().await;
    });
    let Some(before) = rss_bytes() else {
        println!("dtls/memory: /proc/self/status unreadable, not measured");
        return;
    };
    let sessions = rt.block_on(async {
        let mut kept = Vec::new();
        for _ in 0..N {
            let (a, b) = MemoryTransport::pair(Impairment::none(), Impairment::none());
            kept.push(pair_over(a, b, &x, &y).await);
        }
        kept
    });
    let after = rss_bytes().unwrap_or(before);
    println!(
        "dtls/memory: {} bytes of resident memory per completed session end (pipe and \
         DTLS tasks included), growth over {N} sessions with both ends open",
        (after - before) / (2 * N)
    );
    rt.block_on(async {
        for (a, b) in sessions {
            a.close().await;
            b.close().await;
        }
    });
}

fn handshakes(c: &mut Criterion) {
    let rt = runtime();
    let x = Identity::generate().expect("identity");
    let y = Identity::generate().expect("identity");
    let mut group = c.benchmark_group("dtls/handshake");
    group.bench_function("memory-pipe", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (a, b) = MemoryTransport::pair(Impairment::none(), Impairment::none());
                let (s1, s2) = pair_over(a, b, &x, &y).await;
                s1.close().await;
                s2.close().await;
            })
        })
    });
    group.bench_function("udp-loopback", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (a, b) = udp_pair().await;
                let (s1, s2) = pair_over(a, b, &x, &y).await;
                s1.close().await;
                s2.close().await;
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("dtls/identity");
    group.bench_function("ours-identity-generate", |b| {
        b.iter(|| Identity::generate().expect("identity"))
    });
    group.bench_function("rcgen-p256-self-signed", |b| {
        b.iter(|| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
            rcgen::CertificateParams::new(vec!["cryptic-call".to_string()])
                .expect("params")
                .self_signed(&key)
                .expect("cert")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = handshakes
}

fn main() {
    memory_per_session();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
