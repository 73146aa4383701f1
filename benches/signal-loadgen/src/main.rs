//! Load generator for the signaling server: real mTLS WebSocket clients of
//! `cryptic-signal`'s client library, against the real server running in a
//! separate process (this binary re-executed as `server`), on loopback.
//!
//! ```text
//! ulimit -n 65536
//! cargo run --release -p cryptic-signal-loadgen -- bench \
//!     --conns 10000 --pairs 200 --call-secs 10 --relay-calls 500 --relay-secs 10 --relay-fps 60
//! ```
//!
//! Phases, all while the idle connections stay open:
//! 1. `--conns` connections are opened and held; the server's resident
//!    memory (VmRSS of its process) before and after gives bytes per idle
//!    connection;
//! 2. `--pairs` caller/callee pairs loop invite, answer, hangup for
//!    `--call-secs`, at `--call-rate` set-ups per second in total (0: as
//!    fast as they can): call set-ups per second, and the one-way routing latency
//!    (client send to peer receive, same process clock) of every message;
//! 3. `--relay-calls` answered calls exchange binary relay frames of
//!    `--frame-bytes` at `--relay-fps` per direction for `--relay-secs`:
//!    frames forwarded per second.
//!
//! With `--cluster redis://127.0.0.1:PORT` (a running `redis-server`), two
//! server processes run as cluster nodes; every caller is connected to the
//! first and every callee to the second, so every call set-up and relay
//! frame crosses nodes through Redis. Memory and CPU are the two nodes'
//! sums.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cryptic_signal::certs::{CertificateAuthority, Validity};
use cryptic_signal::client::{connect, ClientConfig, Connection, Incoming};
use cryptic_signal::server::{Server, ServerConfig};
use cryptic_signal::wire::{CallAnswer, CallHangup, CallId, CallInvite, Message, Sealed, UserId};
use tokio::io::AsyncBufReadExt as _;

mod failover;
mod hold;
mod pubsub;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = match args.first().map(String::as_str) {
        Some("server") => rt.block_on(server(&args[1..])),
        Some("bench") => rt.block_on(bench(&args[1..])),
        Some("pubsub") => rt.block_on(pubsub::run(&args[1..])),
        Some("hold") => rt.block_on(hold::run(&args[1..])),
        Some("failover") => rt.block_on(failover::run(&args[1..])),
        Some("hold-part") => rt.block_on(hold::part(&args[1..])),
        _ => {
            eprintln!("usage: signal-loadgen bench [--conns N] [--pairs N] [--call-secs S] [--call-rate N] [--relay-calls N] [--relay-secs S] [--relay-fps N] [--frame-bytes N]");
            eprintln!("       signal-loadgen hold [--nodes N] [--conns N] [--procs N] [--cluster redis://127.0.0.1:PORT]");
            eprintln!("       signal-loadgen failover --cluster redis://127.0.0.1:PORT [--conns N] [--calls N] [--stop]");
            eprintln!("       signal-loadgen pubsub --redis redis://127.0.0.1:PORT [--msgs N] [--bytes N] [--pipeline N] [--rounds N]");
            return ExitCode::FAILURE;
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signal-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn flag(args: &[String], name: &str, default: u64) -> Result<u64, BoxError> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

/// `server --dir D`: runs the server from D's certificates until stdin closes.
async fn server(args: &[String]) -> Result<(), BoxError> {
    let i = args
        .iter()
        .position(|a| a == "--dir")
        .ok_or("--dir missing")?;
    let dir = PathBuf::from(args.get(i + 1).ok_or("--dir needs a value")?);
    let cluster = match args.iter().position(|a| a == "--cluster") {
        Some(i) => Some(cryptic_signal::server::cluster::ClusterConfig::new(
            args.get(i + 1).ok_or("--cluster needs a value")?.as_str(),
            args.get(i + 2).ok_or("--cluster needs a node id")?.as_str(),
        )?),
        None => None,
    };
    let read = |n: &str| std::fs::read_to_string(dir.join(n));
    let mut cfg = ServerConfig::new(
        "127.0.0.1:0".parse()?,
        read("server.crt")?,
        read("server.key")?,
        read("ca.crt")?,
        dir.join(format!("data-{}", std::process::id())),
    );
    cfg.cluster = cluster;
    // The pairs loop calls as fast as they can: lift the per-connection
    // message cap (the relay cap per call stays at its default).
    cfg.limits.messages_per_second = 100_000;
    cfg.limits.message_burst = 100_000;
    // Every load connection comes from 127.0.0.1: lift the per-address caps.
    cfg.limits.max_connections_per_ip = usize::MAX;
    cfg.limits.max_handshakes_per_ip = usize::MAX;
    let server = Server::bind(cfg).await?;
    println!("LISTENING {}", server.local_addr()?);
    let stop = async {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    };
    server.run(stop).await?;
    Ok(())
}

pub(crate) fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

/// CPU seconds (user + system) the process has used, from /proc/PID/stat
/// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn cpu_secs(pid: u32) -> Result<f64, BoxError> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = s.rsplit_once(')').ok_or("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).ok_or("bad stat")?.parse::<u64>()?
        + f.get(12).ok_or("bad stat")?.parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

fn clock() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

pub(crate) fn stamp() -> Sealed {
    let ns = clock().elapsed().as_nanos() as u64;
    Sealed::new(1, &ns.to_be_bytes()).unwrap_or_else(|_| unreachable!("non-empty body, valid kind"))
}

fn since_stamp(s: &Sealed) -> Option<u64> {
    let b: [u8; 8] = s.body().ok()?.try_into().ok()?;
    Some((clock().elapsed().as_nanos() as u64).saturating_sub(u64::from_be_bytes(b)) / 1000)
}

pub(crate) fn pct(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub(crate) async fn connect_many(cfgs: Vec<ClientConfig>) -> Result<Vec<Connection>, BoxError> {
    let mut out = Vec::with_capacity(cfgs.len());
    let mut set = tokio::task::JoinSet::new();
    let mut it = cfgs.into_iter().enumerate();
    let mut slots: Vec<Option<Connection>> = Vec::new();
    loop {
        while set.len() < 128 {
            let Some((i, c)) = it.next() else { break };
            slots.push(None);
            set.spawn(async move { (i, connect(&c).await) });
        }
        let Some(r) = set.join_next().await else {
            break;
        };
        let (i, c) = r?;
        slots[i] = Some(c?);
    }
    for s in slots {
        out.push(s.ok_or("missing connection")?);
    }
    Ok(out)
}

pub(crate) fn user(i: usize) -> Result<UserId, BoxError> {
    Ok(UserId::new(&format!("u{i}"))?)
}

async fn bench(args: &[String]) -> Result<(), BoxError> {
    let conns = flag(args, "--conns", 10_000)? as usize;
    let pairs = flag(args, "--pairs", 200)? as usize;
    let call_secs = flag(args, "--call-secs", 10)?;
    let call_rate = flag(args, "--call-rate", 0)?;
    let relay_calls = flag(args, "--relay-calls", 500)? as usize;
    let relay_secs = flag(args, "--relay-secs", 10)?;
    let relay_fps = flag(args, "--relay-fps", 60)?;
    let frame_bytes = flag(args, "--frame-bytes", 200)? as usize;
    let total = conns.max(2 * pairs + 2 * relay_calls);
    clock();

    // Certificates and the server process.
    let dir = std::env::temp_dir().join(format!("signal-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = CertificateAuthority::create("Loadgen CA")?;
    let sc = ca.issue_server(
        &["localhost".into(), "127.0.0.1".into()],
        Validity::days_from_now(1),
    )?;
    std::fs::write(dir.join("ca.crt"), ca.cert_pem())?;
    std::fs::write(dir.join("server.crt"), &sc.cert_pem)?;
    std::fs::write(dir.join("server.key"), &sc.key_pem)?;
    let cluster = args
        .iter()
        .position(|a| a == "--cluster")
        .map(|i| args.get(i + 1).ok_or("--cluster needs a value"))
        .transpose()?;
    let mut nodes = Vec::new();
    for n in 0..if cluster.is_some() { 2 } else { 1 } {
        // LOADGEN_SERVER_WRAP=heaptrack (or valgrind, perf record ...) runs
        // the server processes under that tool.
        let mut cmd = match std::env::var_os("LOADGEN_SERVER_WRAP") {
            Some(w) => {
                let mut c = tokio::process::Command::new(w);
                c.arg(std::env::current_exe()?);
                c
            }
            None => tokio::process::Command::new(std::env::current_exe()?),
        };
        cmd.args(["server", "--dir"]).arg(&dir);
        if let Some(url) = cluster {
            cmd.args(["--cluster", url, &format!("loadgen-{n}")]);
        }
        nodes.push(start_node(cmd).await?);
    }
    let pids: Vec<u32> = nodes.iter().map(|n| n.1).collect();
    let rss_kib = |_: u32| pids.iter().map(|&p| rss_kib(p)).sum::<Result<u64, _>>();
    let cpu_secs = |_: u32| pids.iter().map(|&p| cpu_secs(p)).sum::<Result<f64, _>>();
    let pid = pids[0];
    let t = Instant::now();
    let mut cfgs = Vec::with_capacity(total);
    for i in 0..total {
        let c = ca.issue_client(&user(i)?, Validity::days_from_now(1))?;
        let mut cfg = ClientConfig::new(
            nodes[i % nodes.len()].2.clone(),
            "localhost".into(),
            ca.cert_pem().into(),
            c.cert_pem,
            c.key_pem,
        );
        // The relay phase's connections are not read during the call
        // phase: with the default 8 s, their first read after it could
        // take them for dead (the receiver counts silence from the last
        // read, and a busy task's first poll may come back empty).
        cfg.dead_after = Duration::from_secs(120);
        cfgs.push(cfg);
    }
    eprintln!(
        "issued {total} client certificates in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Phase 1: idle connections.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(pid)?;
    let t = Instant::now();
    let mut all = connect_many(cfgs).await?;
    let connect_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = rss_kib(pid)?;
    println!(
        "idle connections held: {} (opened in {:.1} s, {:.0}/s); server RSS {} KiB -> {} KiB: {:.1} KiB per connection",
        all.len(),
        connect_secs,
        all.len() as f64 / connect_secs,
        rss0,
        rss1,
        (rss1 - rss0) as f64 / all.len() as f64
    );

    // Phase 2: call set-ups.
    let relay_conns: Vec<Connection> = all.drain(2 * pairs..2 * pairs + 2 * relay_calls).collect();
    let call_conns: Vec<Connection> = all.drain(..2 * pairs).collect();
    if pairs > 0 {
        let c0 = cpu_secs(pid)?;
        call_phase(call_conns, call_secs, call_rate).await?;
        println!(
            "  server CPU during the call phase: {:.1} s",
            cpu_secs(pid)? - c0
        );
    }
    // Phase 3: relay.
    if relay_calls > 0 {
        let c0 = cpu_secs(pid)?;
        relay_phase(relay_conns, relay_secs, relay_fps, frame_bytes).await?;
        println!(
            "  server CPU during the relay phase (incl. set-up): {:.1} s",
            cpu_secs(pid)? - c0
        );
    }
    println!("server RSS at the end: {} KiB", rss_kib(pid)?);
    drop(all);
    for (mut child, _, _) in nodes {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Starts a server process; returns it, its pid and the address it listens on.
pub(crate) async fn start_node(
    mut cmd: tokio::process::Command,
) -> Result<(tokio::process::Child, u32, String), BoxError> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("server exited")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = loop {
        let l = lines
            .next_line()
            .await?
            .ok_or("server exited before listening")?;
        if let Some(a) = l.strip_prefix("LISTENING ") {
            break a.to_string();
        }
    };
    Ok((child, pid, addr))
}

async fn call_phase(conns: Vec<Connection>, secs: u64, rate: u64) -> Result<(), BoxError> {
    // Offered load: each pair starts a call every `pairs / rate` seconds
    // (staggered); rate 0 means each pair calls back to back.
    let pairs = (conns.len() / 2) as u64;
    let period = if rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(pairs as f64 / rate as f64)
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let hangup_sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..conns.len() / 2).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = tokio::task::JoinSet::new();
    let mut it = conns.into_iter();
    let mut k = 0;
    let t0 = Instant::now();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        let (ua, ub) = (a.user().clone(), b.user().clone());
        let (sa, mut ra) = a.split();
        let (sb, mut rb) = b.split();
        let hs = hangup_sent.clone();
        let idx = k;
        k += 1;
        // Callee: answer invites, note latencies.
        let (ua2, ub2) = (ua.clone(), ub.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), rb.recv()).await {
                match m {
                    Incoming::Message(Message::CallInvite(inv)) => {
                        lat.push(since_stamp(&inv.encrypted_payload).unwrap_or(0));
                        let ans = Message::CallAnswer(CallAnswer {
                            call_id: inv.call_id,
                            from_user: ub2.clone(),
                            to_user: ua2.clone(),
                            encrypted_payload: stamp(),
                        });
                        if sb.send(&ans).await.is_err() {
                            break;
                        }
                    }
                    Incoming::Message(Message::CallHangup(_)) => {
                        let sent = hs[idx].load(Ordering::Relaxed);
                        lat.push(
                            ((clock().elapsed().as_nanos() as u64).saturating_sub(sent)) / 1000,
                        );
                    }
                    _ => {}
                }
            }
            (0u64, lat, sb)
        });
        let hs = hangup_sent.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let mut done = 0u64;
            let mut rng_state = idx as u64 + 1;
            let mut next_start = t0 + period.mul_f64(idx as f64 / pairs.max(1) as f64);
            while Instant::now() < deadline {
                if !period.is_zero() {
                    tokio::time::sleep_until(next_start.into()).await;
                    next_start += period;
                }
                rng_state = rng_state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&rng_state.to_be_bytes());
                b[8..].copy_from_slice(&(idx as u64).to_be_bytes());
                let id = CallId::from_bytes(b);
                let inv = Message::CallInvite(CallInvite {
                    call_id: id,
                    from_user: ua.clone(),
                    to_user: ub.clone(),
                    encrypted_payload: stamp(),
                });
                if sa.send(&inv).await.is_err() {
                    break;
                }
                let answered = loop {
                    match tokio::time::timeout(Duration::from_secs(5), ra.recv()).await {
                        Ok(Ok(Incoming::Message(Message::CallAnswer(a)))) if a.call_id == id => {
                            lat.push(since_stamp(&a.encrypted_payload).unwrap_or(0));
                            break true;
                        }
                        Ok(Ok(Incoming::Message(Message::Error(e)))) => {
                            eprintln!("caller error: {:?} {}", e.code, e.message);
                            break false;
                        }
                        Ok(Ok(_)) => continue,
                        _ => break false,
                    }
                };
                if !answered {
                    break;
                }
                hs[idx].store(clock().elapsed().as_nanos() as u64, Ordering::Relaxed);
                let h = Message::CallHangup(CallHangup {
                    call_id: id,
                    from_user: ua.clone(),
                    to_user: ub.clone(),
                    reason: None,
                });
                if sa.send(&h).await.is_err() {
                    break;
                }
                done += 1;
                // Let the hangup reach the callee before the next invite's
                // stamp overwrites nothing it needs: the server keeps order.
            }
            (done, lat, sa)
        });
    }
    let mut calls = 0;
    let mut lat = Vec::new();
    let mut keep = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (d, l, s) = r?;
        calls += d;
        lat.extend(l);
        keep.push(s);
    }
    let elapsed = (Instant::now().min(deadline) - t0).as_secs_f64();
    println!(
        "call set-ups (invite, answer, hangup) by {} pairs: {} in {:.1} s = {:.0}/s; routing latency over {} messages: p50 {:.2} ms, p99 {:.2} ms",
        keep.len() / 2,
        calls,
        elapsed,
        calls as f64 / elapsed,
        lat.len(),
        pct(&mut lat, 0.5) as f64 / 1000.0,
        pct(&mut lat, 0.99) as f64 / 1000.0
    );
    Ok(())
}

async fn relay_phase(
    conns: Vec<Connection>,
    secs: u64,
    fps: u64,
    frame_bytes: usize,
) -> Result<(), BoxError> {
    let mut calls = Vec::new();
    let mut it = conns.into_iter();
    let mut n = 0u64;
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        n += 1;
        let (ua, ub) = (a.user().clone(), b.user().clone());
        let (sa, mut ra) = a.split();
        let (sb, mut rb) = b.split();
        let mut idb = [0x5au8; 16];
        idb[..8].copy_from_slice(&n.to_be_bytes());
        let id = CallId::from_bytes(idb);
        sa.send(&Message::CallInvite(CallInvite {
            call_id: id,
            from_user: ua.clone(),
            to_user: ub.clone(),
            encrypted_payload: stamp(),
        }))
        .await?;
        loop {
            if let Incoming::Message(Message::CallInvite(_)) = rb.recv().await? {
                break;
            }
        }
        sb.send(&Message::CallAnswer(CallAnswer {
            call_id: id,
            from_user: ub,
            to_user: ua,
            encrypted_payload: stamp(),
        }))
        .await?;
        loop {
            if let Incoming::Message(Message::CallAnswer(_)) = ra.recv().await? {
                break;
            }
        }
        calls.push((id, sa, ra, sb, rb));
    }
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    let frame = vec![0xa5u8; frame_bytes];
    let ncalls = calls.len();
    for (id, sa, ra, sb, rb) in calls {
        for (s, mut r) in [(sa, ra), (sb, rb)] {
            let (recv_count, sent_count) = (received.clone(), sent.clone());
            tokio::spawn(async move {
                while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), r.recv()).await {
                    if matches!(m, Incoming::Relay { .. }) && Instant::now() < end {
                        recv_count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            let frame = frame.clone();
            tasks.spawn(async move {
                // 20 ms ticks carrying fps/50 frames each (fractions carried over).
                let per_tick = fps as f64 / 50.0;
                let mut owed = 0.0f64;
                let mut tick = tokio::time::interval_at(start.into(), Duration::from_millis(20));
                let mut seq = 0u64;
                while Instant::now() < end {
                    tick.tick().await;
                    owed += per_tick;
                    let n = owed.floor();
                    owed -= n;
                    for _ in 0..n as u64 {
                        if let Ok(true) = s.try_send_relay(id, seq, &frame) {
                            sent_count.fetch_add(1, Ordering::Relaxed);
                        }
                        seq += 1;
                    }
                }
                s
            });
        }
    }
    let mut keep = Vec::new();
    while let Some(r) = tasks.join_next().await {
        keep.push(r?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received.load(Ordering::Relaxed);
    println!(
        "relay: {} calls, {} B frames at {} fps per direction for {} s: sent {}, forwarded {} = {:.0} frames/s",
        ncalls,
        frame_bytes,
        fps,
        secs,
        sent.load(Ordering::Relaxed),
        got,
        got as f64 / secs as f64
    );
    Ok(())
}
