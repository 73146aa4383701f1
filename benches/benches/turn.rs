//! TURN over TCP and TLS beside TURN over UDP (the reference), against a
//! real coturn on 127.0.0.1 started by the bench:
//!
//! * `turn/setup` (printed, 20 runs each, transports interleaved): from two
//!   relay-only agents starting (allocation, with the 401 round) to both
//!   having selected the pair through the relay;
//! * `turn/relay_100`: 100 datagrams of 160 bytes each way through the
//!   relay, one after the other (ChannelData, padded on the stream);
//! * before the groups run, the CPU time this process and coturn spend to
//!   relay 2,000 such round trips over each transport is printed.
//!
//! Needs `turnserver` (Debian package coturn); prints why and does nothing
//! without it. Run with `cargo bench -p cryptic-benches --bench turn`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use cryptic_ice::{AgentConfig, Driver, Event, IceTransport, Role, Transport, TurnServer};

const USER: &str = "bench";
const PASS: &str = "secret";

struct Coturn {
    child: Child,
    _dir: tempfile::TempDir,
    ca_pem: String,
    udp_tcp: u16,
    tls: u16,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_coturn() -> Option<Coturn> {
    let dir = tempfile::tempdir().ok()?;
    let ca_key = rcgen::KeyPair::generate().ok()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).ok()?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).ok()?;
    let key = rcgen::KeyPair::generate().ok()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .ok()?
        .signed_by(&key, &ca_cert, &ca_key)
        .ok()?;
    std::fs::write(dir.path().join("c.pem"), cert.pem()).ok()?;
    std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).ok()?;
    let base = 41_000 + (std::process::id() % 1000) as u16 * 2;
    let (udp_tcp, tls) = (base, base + 1);
    let d = dir.path().display();
    let mut child = Command::new("turnserver")
        .args([
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            &format!("--listening-port={udp_tcp}"),
            &format!("--tls-listening-port={tls}"),
            &format!("--cert={d}/c.pem"),
            &format!("--pkey={d}/k.pem"),
            "--lt-cred-mech",
            &format!("--user={USER}:{PASS}"),
            "--realm=bench.local",
            "--fingerprint",
            "--no-dtls",
            "--no-cli",
            "--no-rfc5780",
            "--allow-loopback-peers",
            // Every set-up allocates two relays: room for thousands.
            "--min-port=50000",
            "--max-port=59999",
            &format!("--userdb={d}/turndb"),
            &format!("--pidfile={d}/turnserver.pid"),
            "--log-file=stdout",
            "--simple-log",
            // Without it coturn does not log its listeners opening.
            "-v",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = format!("127.0.0.1:{tls}");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.contains("TCP listener opened on") && line.trim_end().ends_with(&needle) {
                let _ = tx.send(());
            }
        }
    });
    let coturn = Coturn {
        child,
        _dir: dir,
        ca_pem: ca_cert.pem(),
        udp_tcp,
        tls,
    };
    rx.recv_timeout(Duration::from_secs(10)).ok()?;
    // The UDP listener opens alongside; give it a moment more.
    std::thread::sleep(Duration::from_millis(200));
    Some(coturn)
}

fn server(c: &Coturn, transport: Transport) -> TurnServer {
    let port = if transport == Transport::Tls {
        c.tls
    } else {
        c.udp_tcp
    };
    let addr = format!("127.0.0.1:{port}").parse().expect("address");
    TurnServer::new(addr, USER, PASS)
        .with_transport(transport)
        .with_server_name("localhost")
}

/// Two relay-only agents on `turn`, connected; returns them and their
/// transports.
async fn connected(
    turn: &TurnServer,
    tls: &Arc<rustls::ClientConfig>,
) -> Option<(Driver, Driver, IceTransport, IceTransport)> {
    let start = |role| {
        let cfg = AgentConfig::new(role)
            .with_turn_server(turn.clone())
            .with_relay_only(true);
        Driver::start_with_tls(
            cfg,
            "127.0.0.1:0".parse().expect("address"),
            vec![],
            Some(tls.clone()),
        )
    };
    let mut a = start(Role::Controlling).await.expect("driver");
    let mut b = start(Role::Controlled).await.expect("driver");
    let ca = gather(&mut a).await;
    let cb = gather(&mut b).await;
    b.set_remote_credentials(a.local_credentials().clone())
        .await
        .expect("credentials");
    a.set_remote_credentials(b.local_credentials().clone())
        .await
        .expect("credentials");
    for c in &ca {
        b.add_remote_candidate(c).await.expect("candidate");
    }
    for c in &cb {
        a.add_remote_candidate(c).await.expect("candidate");
    }
    a.end_of_remote_candidates();
    b.end_of_remote_candidates();
    let (mut sa, mut sb) = (false, false);
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(sa && sb) {
        tokio::select! {
            e = a.next_event() => sa |= matches!(e, Some(Event::Selected(_))),
            e = b.next_event() => sb |= matches!(e, Some(Event::Selected(_))),
            _ = tokio::time::sleep_until(end) => {
                a.close().await;
                b.close().await;
                return None;
            }
        }
    }
    let (ta, tb) = (a.transport(), b.transport());
    Some((a, b, ta, tb))
}

async fn gather(d: &mut Driver) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), d.next_event()).await {
            Ok(Some(Event::CandidateGathered(c))) => out.push(c.to_sdp_string()),
            Ok(Some(Event::GatheringDone)) => return out,
            Ok(Some(_)) => {}
            _ => panic!("gathering did not finish"),
        }
    }
}

/// `n` round trips of 160-byte SRTP-like datagrams.
async fn round_trips(ta: &IceTransport, tb: &IceTransport, n: usize) {
    let mut pkt = [0u8; 160];
    pkt[0] = 0x80;
    let mut buf = [0u8; 1500];
    for _ in 0..n {
        ta.send(&pkt).await.expect("send");
        let _ = tokio::time::timeout(Duration::from_secs(2), tb.recv(&mut buf)).await;
        tb.send(&pkt).await.expect("send");
        let _ = tokio::time::timeout(Duration::from_secs(2), ta.recv(&mut buf)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// User plus system CPU time of process `pid` ("self" for this one).
fn cpu(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which ends with ')').
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // Clock ticks: 100 per second on Linux.
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

const TRANSPORTS: [(&str, Transport); 3] = [
    ("udp", Transport::Udp),
    ("tcp", Transport::Tcp),
    ("tls", Transport::Tls),
];

fn cpu_per_transport(c: &Coturn, tls: &Arc<rustls::ClientConfig>) {
    let rt = runtime();
    let coturn_pid = c.child.id().to_string();
    println!("turn/cpu: 2000 round trips of 160 bytes through coturn");
    for (name, transport) in TRANSPORTS {
        let turn = server(c, transport);
        rt.block_on(async {
            let (a, b, ta, tb) = connected(&turn, tls)
                .await
                .expect("a pair through the relay");
            let (me, them, wall) = (cpu("self"), cpu(&coturn_pid), Instant::now());
            round_trips(&ta, &tb, 2000).await;
            let wall = wall.elapsed();
            println!(
                "  {name}: wall {:>6.0} ms, this process {:>5} ms CPU, coturn {:>5} ms CPU",
                wall.as_secs_f64() * 1e3,
                (cpu("self") - me).as_millis(),
                (cpu(&coturn_pid) - them).as_millis(),
            );
            a.close().await;
            b.close().await;
        });
    }
}

/// 20 set-ups per transport, one after the other, transports interleaved
/// so they see the same load: median and slowest, and how many found no
/// pair within 10 s.
fn setups(rt: &tokio::runtime::Runtime, c: &Coturn, tls: &Arc<rustls::ClientConfig>) {
    println!("turn/setup: agents started -> both selected through the relay, 20 each");
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); TRANSPORTS.len()];
    let mut failed = [0usize; 3];
    for _ in 0..20 {
        for (i, (_, transport)) in TRANSPORTS.iter().enumerate() {
            let turn = server(c, *transport);
            rt.block_on(async {
                let t = Instant::now();
                match connected(&turn, tls).await {
                    Some((a, b, _, _)) => {
                        times[i].push(t.elapsed());
                        a.close().await;
                        b.close().await;
                    }
                    None => failed[i] += 1,
                }
            });
        }
    }
    for (i, (name, _)) in TRANSPORTS.iter().enumerate() {
        let t = &mut times[i];
        t.sort();
        let median = t.get(t.len() / 2).copied().unwrap_or_default();
        let max = t.last().copied().unwrap_or_default();
        println!(
            "  {name}: median {:>6.1} ms, max {:>6.1} ms, {} of 20 found no pair",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            failed[i]
        );
    }
}

fn turn(c: &mut Criterion) {
    let Some(coturn) = start_coturn() else {
        println!("turn: turnserver (Debian package coturn) missing or not starting: skipped");
        return;
    };
    let tls = cryptic_ice::tls_config(coturn.ca_pem.as_bytes()).expect("CA");
    cpu_per_transport(&coturn, &tls);
    let rt = runtime();
    setups(&rt, &coturn, &tls);
    let mut group = c.benchmark_group("turn/relay_100");
    for (name, transport) in TRANSPORTS {
        let turn = server(&coturn, transport);
        let (a, b, ta, tb) = rt
            .block_on(connected(&turn, &tls))
            .expect("a pair through the relay");
        group.bench_function(name, |bench| {
            bench.iter(|| rt.block_on(round_trips(&ta, &tb, 100)))
        });
        rt.block_on(async {
            a.close().await;
            b.close().await;
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = turn
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
