//! `failover --cluster redis://...`: what losing a node costs.
//!
//! ```text
//! failover --conns 2000 --calls 200 --cluster redis://127.0.0.1:PORT [--stop]
//! ```
//!
//! Two cluster nodes. `--conns` users are connected to node 0; `--calls`
//! of them are in answered, relayed calls with users on node 1 (whose
//! media keeps going through the relay, ten frames a second: a call with
//! no relay frame for 3 s is on its ICE pair and goes on). Node 0 is
//! then killed (SIGKILL: its sockets close at once) or, with `--stop`,
//! frozen (SIGSTOP: nothing closes, nothing answers, as when a machine or
//! its network dies). Reported: when node 1's users hear their relayed
//! calls end (`peer_disconnected`), and when node 0's users, who reconnect
//! to node 1 as soon as they notice the loss, are all back.
//!
//! Since the server keeps a call through a user's reconnection
//! (`--reconnect-grace`, 20 s), a user who is back on node 1 in time keeps
//! the call there: the calls then end only when this tool drops the new
//! connections (5 s after they are made) plus the grace, about 25 s after
//! the loss. The ended-call times are the cost without reconnection only
//! when the users stay away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptic_signal::certs::{CertificateAuthority, Validity};
use cryptic_signal::client::{connect, ClientConfig, Incoming};
use cryptic_signal::wire::{CallAnswer, CallId, CallInvite, HangupReason, Message};

use crate::{connect_many, flag, pct, stamp, start_node, user, BoxError, Connection};

pub(crate) async fn run(args: &[String]) -> Result<(), BoxError> {
    let conns = flag(args, "--conns", 2000)? as usize;
    let calls = (flag(args, "--calls", 200)? as usize).min(conns);
    let freeze = args.iter().any(|a| a == "--stop");
    let url = args
        .iter()
        .position(|a| a == "--cluster")
        .and_then(|i| args.get(i + 1))
        .ok_or("--cluster redis://127.0.0.1:PORT needed")?;
    let dir = std::env::temp_dir().join(format!("signal-loadgen-failover-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = Arc::new(CertificateAuthority::create("Loadgen CA")?);
    let sc = ca.issue_server(
        &["localhost".into(), "127.0.0.1".into()],
        Validity::days_from_now(1),
    )?;
    std::fs::write(dir.join("ca.crt"), ca.cert_pem())?;
    std::fs::write(dir.join("server.crt"), &sc.cert_pem)?;
    std::fs::write(dir.join("server.key"), &sc.key_pem)?;
    let mut nodes = Vec::new();
    for n in 0..2 {
        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
        cmd.args(["server", "--dir"]).arg(&dir);
        cmd.args([
            "--cluster",
            url,
            &format!("failover-{n}-{}", std::process::id()),
        ]);
        nodes.push(start_node(cmd).await?);
    }
    let cfg = |i: usize, node: usize| -> Result<ClientConfig, BoxError> {
        let c = ca.issue_client(&user(i)?, Validity::days_from_now(1))?;
        Ok(ClientConfig::new(
            nodes[node].2.clone(),
            "localhost".into(),
            ca.cert_pem().into(),
            c.cert_pem,
            c.key_pem,
        ))
    };
    // Users 0..conns on node 0; their call partners conns.. on node 1.
    let mut on0 = Vec::new();
    let mut again = Vec::new();
    for i in 0..conns {
        on0.push(cfg(i, 0)?);
        again.push(cfg(i, 1)?);
    }
    let partners: Vec<ClientConfig> = (0..calls)
        .map(|i| cfg(conns + i, 1))
        .collect::<Result<_, _>>()?;
    let mut on0 = connect_many(on0).await?;
    let mut partners = connect_many(partners).await?;
    let ids = relayed_calls(&mut on0, &mut partners).await?;
    println!(
        "{conns} users on node 0, {} of them in relayed calls with users on node 1",
        ids.len()
    );

    let t0 = Instant::now();
    let victim = nodes[0].1;
    let signal = if freeze { "-STOP" } else { "-KILL" };
    std::process::Command::new("kill")
        .args([signal, &victim.to_string()])
        .status()?;
    let (mut ended, not_ended, mut back, not_back) =
        watch_the_loss(t0, partners, &ids, on0, again).await?;
    let ms = |v: &mut Vec<u64>, p| pct(v, p) as f64 / 1000.0;
    println!(
        "node 0 {}: relayed calls ended on node 1 for {} of {} (p50 {:.0} ms, max {:.0} ms after the loss; {not_ended} not told within 30 s)",
        if freeze { "frozen (SIGSTOP)" } else { "killed (SIGKILL)" },
        ended.len(),
        ids.len(),
        ms(&mut ended, 0.5),
        ms(&mut ended, 1.0),
    );
    println!(
        "  users of node 0 back on node 1: {} of {conns} (p50 {:.0} ms, p99 {:.0} ms, all {:.0} ms after the loss; {not_back} not back within 60 s)",
        back.len(),
        ms(&mut back, 0.5),
        ms(&mut back, 0.99),
        ms(&mut back, 1.0),
    );
    if freeze {
        std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()?;
    }
    for (mut child, _, _) in nodes {
        drop(child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One answered call between each user on node 0 and its partner on node
/// 1, each of which has carried a relay frame.
async fn relayed_calls(
    on0: &mut [Connection],
    partners: &mut [Connection],
) -> Result<Vec<CallId>, BoxError> {
    let mut ids = Vec::new();
    for (i, (a, b)) in on0.iter_mut().zip(partners.iter_mut()).enumerate() {
        let mut idb = [0x77u8; 16];
        idb[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let id = CallId::from_bytes(idb);
        let (ua, ub) = (a.user().clone(), b.user().clone());
        a.sender()
            .send(&Message::CallInvite(CallInvite {
                call_id: id,
                from_user: ua.clone(),
                to_user: ub.clone(),
                encrypted_payload: stamp(),
            }))
            .await?;
        while !matches!(b.recv().await?, Incoming::Message(Message::CallInvite(_))) {}
        b.sender()
            .send(&Message::CallAnswer(CallAnswer {
                call_id: id,
                from_user: ub,
                to_user: ua,
                encrypted_payload: stamp(),
            }))
            .await?;
        while !matches!(a.recv().await?, Incoming::Message(Message::CallAnswer(_))) {}
        a.sender().send_relay(id, 0, b"media").await?;
        while !matches!(b.recv().await?, Incoming::Relay { .. }) {}
        ids.push(id);
    }
    Ok(ids)
}

/// When each partner hears its call end (`peer_disconnected`) and when each
/// user of the lost node is back on node 1: (ended µs, not told, back µs,
/// not back).
async fn watch_the_loss(
    t0: Instant,
    partners: Vec<Connection>,
    ids: &[CallId],
    mut on0: Vec<Connection>,
    again: Vec<ClientConfig>,
) -> Result<(Vec<u64>, usize, Vec<u64>, usize), BoxError> {
    let mut tasks = tokio::task::JoinSet::new();
    for (b, id) in partners.into_iter().zip(ids.iter().copied()) {
        tasks.spawn(async move {
            let (s, mut r) = b.split();
            // The partner's media keeps going through the relay (ten
            // frames a second is enough): the server ends only calls
            // still relayed when their other node dies.
            let media = tokio::spawn(async move {
                for seq in 1..=600u64 {
                    if s.send_relay(id, seq, b"media").await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let _stop = AbortOnDrop(media);
            let end = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                match tokio::time::timeout_at(end, r.recv()).await {
                    Ok(Ok(Incoming::Message(Message::CallHangup(h))))
                        if h.reason == Some(HangupReason::PeerDisconnected) =>
                    {
                        return (0u8, Some(t0.elapsed()));
                    }
                    Ok(Ok(_)) => {}
                    _ => return (0, None),
                }
            }
        });
    }
    for (c, cfg) in on0.drain(..).zip(again) {
        tasks.spawn(async move {
            let (_s, mut r) = c.split();
            // Until the connection is noticed dead (closed, or silent for
            // the client's dead_after), then at once to node 1.
            while r.recv().await.is_ok() {}
            let end = t0 + Duration::from_secs(60);
            while Instant::now() < end {
                if let Ok(c) = connect(&cfg).await {
                    let back = t0.elapsed();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        drop(c);
                    });
                    return (1u8, Some(back));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (1, None)
        });
    }
    let (mut ended, mut back) = (Vec::new(), Vec::new());
    let (mut not_ended, mut not_back) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r? {
            (0, Some(t)) => ended.push(t.as_micros() as u64),
            (0, None) => not_ended += 1,
            (_, Some(t)) => back.push(t.as_micros() as u64),
            (_, None) => not_back += 1,
        }
    }
    Ok((ended, not_ended, back, not_back))
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
