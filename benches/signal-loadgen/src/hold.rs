//! `hold`: how many idle connections server nodes hold, and their memory.
//!
//! ```text
//! hold --nodes 1 --conns 19000 --procs 2
//! hold --nodes 3 --conns 50000 --procs 3 --cluster redis://127.0.0.1:PORT
//! ```
//!
//! Starts `--nodes` server processes (cluster nodes on the Redis of
//! `--cluster` when given), then `--procs` client processes (this binary as
//! `hold-part`), each connecting from its own source address 127.0.0.(2+i)
//! (so that no address runs out of ephemeral ports, and no process out of
//! open files) and spreading its connections over the nodes. Reports the
//! connections held and each node's resident memory per connection.

use std::process::Stdio;
use std::time::{Duration, Instant};

use cryptic_signal::certs::{CertificateAuthority, Validity};
use cryptic_signal::client::{connect, ClientConfig};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::{flag, rss_kib, start_node, user, BoxError};

pub(crate) async fn run(args: &[String]) -> Result<(), BoxError> {
    let nodes_n = flag(args, "--nodes", 1)? as usize;
    let conns = flag(args, "--conns", 10_000)? as usize;
    let procs = flag(args, "--procs", 1)?.max(1) as usize;
    let cluster = args
        .iter()
        .position(|a| a == "--cluster")
        .map(|i| args.get(i + 1).ok_or("--cluster needs a value"))
        .transpose()?;
    if nodes_n > 1 && cluster.is_none() {
        return Err("several nodes need --cluster redis://...".into());
    }
    let dir = std::env::temp_dir().join(format!("signal-loadgen-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = CertificateAuthority::create("Loadgen CA")?;
    ca.save(&dir.join("ca"))?;
    let sc = ca.issue_server(
        &["localhost".into(), "127.0.0.1".into()],
        Validity::days_from_now(1),
    )?;
    std::fs::write(dir.join("ca.crt"), ca.cert_pem())?;
    std::fs::write(dir.join("server.crt"), &sc.cert_pem)?;
    std::fs::write(dir.join("server.key"), &sc.key_pem)?;
    let mut nodes = Vec::new();
    for n in 0..nodes_n {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.args(["server", "--dir"]).arg(&dir);
        if let Some(url) = cluster {
            cmd.args(["--cluster", url, &format!("hold-{n}")]);
        }
        nodes.push(start_node(cmd).await?);
    }
    let addrs: Vec<String> = nodes.iter().map(|n| n.2.clone()).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0: Vec<u64> = nodes
        .iter()
        .map(|n| rss_kib(n.1))
        .collect::<Result<_, _>>()?;

    let t = Instant::now();
    let per = conns.div_ceil(procs);
    let mut parts = Vec::new();
    for p in 0..procs {
        let first = p * per;
        let count = per.min(conns.saturating_sub(first));
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("hold-part")
            .arg("--dir")
            .arg(&dir)
            .args(["--addrs", &addrs.join(",")])
            .args(["--first", &first.to_string(), "--count", &count.to_string()])
            .args(["--source", &format!("127.0.0.{}", 2 + p)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        parts.push((child, BufReader::new(out).lines()));
    }
    let mut held = 0;
    let mut failed = 0;
    for (_, lines) in &mut parts {
        while let Some(l) = lines.next_line().await? {
            if let Some(rest) = l.strip_prefix("HELD ") {
                let mut w = rest.split_whitespace();
                held += w.next().ok_or("bad HELD")?.parse::<usize>()?;
                failed += w.nth(1).ok_or("bad HELD")?.parse::<usize>()?;
                break;
            }
            eprintln!("{l}");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "{held} connections held ({failed} failed) by {nodes_n} node(s), from {procs} client process(es), opened in {secs:.1} s"
    );
    let mut total_kib = 0;
    for (i, n) in nodes.iter().enumerate() {
        let rss1 = rss_kib(n.1)?;
        let on_node = (0..held).filter(|c| c % nodes_n == i).count().max(1);
        total_kib += rss1 - rss0[i];
        println!(
            "  node {i}: about {on_node} connections, RSS {} KiB -> {rss1} KiB: {:.1} KiB per connection",
            rss0[i],
            (rss1 - rss0[i]) as f64 / on_node as f64
        );
    }
    println!(
        "  all nodes: {:.1} KiB per connection",
        total_kib as f64 / held.max(1) as f64
    );
    for (mut child, _) in parts {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    }
    for (mut child, _, _) in nodes {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn arg<'a>(args: &'a [String], name: &str) -> Result<&'a str, BoxError> {
    let i = args
        .iter()
        .position(|a| a == name)
        .ok_or(format!("{name} missing"))?;
    Ok(args.get(i + 1).ok_or(format!("{name} needs a value"))?)
}

/// `hold-part`: opens `--count` connections as users `--first`.. from
/// `--source`, spread over `--addrs`; prints `HELD n failed m`; holds them
/// until stdin closes.
pub(crate) async fn part(args: &[String]) -> Result<(), BoxError> {
    let dir = std::path::PathBuf::from(arg(args, "--dir")?);
    let addrs: Vec<String> = arg(args, "--addrs")?.split(',').map(String::from).collect();
    let first = flag(args, "--first", 0)? as usize;
    let count = flag(args, "--count", 0)? as usize;
    let source: std::net::IpAddr = arg(args, "--source")?.parse()?;
    let ca = CertificateAuthority::load(&dir.join("ca"))?;
    let mut cfgs = Vec::with_capacity(count);
    for i in first..first + count {
        let c = ca.issue_client(&user(i)?, Validity::days_from_now(1))?;
        let mut cfg = ClientConfig::new(
            addrs[i % addrs.len()].clone(),
            "localhost".into(),
            ca.cert_pem().into(),
            c.cert_pem,
            c.key_pem,
        );
        cfg.local_ip = Some(source);
        // Idle connections: a ping a minute keeps them under the server's
        // idle timeout (120 s) without loading it.
        cfg.keepalive = Duration::from_secs(50);
        cfg.dead_after = Duration::from_secs(3600);
        cfg.connect_timeout = Duration::from_secs(60);
        cfgs.push(cfg);
    }
    let mut held = Vec::with_capacity(count);
    let mut failed = 0;
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    let mut set = tokio::task::JoinSet::new();
    let mut it = cfgs.into_iter();
    loop {
        while set.len() < 64 {
            let Some(c) = it.next() else { break };
            set.spawn(async move { connect(&c).await });
        }
        let Some(r) = set.join_next().await else {
            break;
        };
        match r? {
            Ok(c) => held.push(c),
            Err(e) => {
                failed += 1;
                *errors.entry(e.to_string()).or_default() += 1;
            }
        }
    }
    for (e, n) in errors {
        println!("  {n} failed: {e}");
    }
    println!("HELD {} failed {failed}", held.len());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
    Ok(())
}
