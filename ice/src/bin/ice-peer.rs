//! `ice-peer`: one ICE agent on a UDP socket, signaled line by line over
//! stdin/stdout. The network-namespace tests run one per namespace; it is
//! also handy by hand.
//!
//! Arguments: `--role controlling|controlled`, `--bind IP:PORT`,
//! `--stun ADDR`, `--turn ADDR --user U --pass P`, `--relay-only`,
//! `--consent-interval-ms N`, `--consent-timeout-ms N`,
//! `--nomination-wait-ms N`.
//!
//! Prints: `cred UFRAG PWD`, `cand candidate:...`, `eoc`,
//! `selected KIND`, `lost`, `restarted UFRAG PWD`, `pong N`, `failed`.
//! Reads: `cred UFRAG PWD`, `cand candidate:...`, `eoc`, `restart`,
//! `ping N` (sends N datagrams, reports the echoes), `quit`.
//! Datagrams starting with 23 (DTLS application data) are echoed back
//! with first byte 0x80.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use cryptic_ice::{AgentConfig, Credentials, Driver, Event, Role, Timers, TurnServer};
use tokio::io::{AsyncBufReadExt, BufReader};

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn main() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let role = match arg("--role").as_deref() {
        Some("controlled") => Role::Controlled,
        _ => Role::Controlling,
    };
    let bind: SocketAddr = arg("--bind")
        .unwrap_or_else(|| "0.0.0.0:0".into())
        .parse()
        .map_err(|_| bad("--bind"))?;
    let mut timers = Timers::default();
    if let Some(ms) = arg("--consent-interval-ms").and_then(|v| v.parse().ok()) {
        timers.consent_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = arg("--nomination-wait-ms").and_then(|v| v.parse().ok()) {
        timers.nomination_wait = Duration::from_millis(ms);
    }
    if let Some(ms) = arg("--consent-timeout-ms").and_then(|v| v.parse().ok()) {
        timers.consent_timeout = Duration::from_millis(ms);
    }
    let mut cfg = AgentConfig::new(role)
        .with_timers(timers)
        .with_relay_only(args.iter().any(|a| a == "--relay-only"));
    if let Some(s) = arg("--stun") {
        cfg = cfg.with_stun_server(s.parse().map_err(|_| bad("--stun"))?);
    }
    if let Some(t) = arg("--turn") {
        let user = arg("--user").unwrap_or_default();
        let pass = arg("--pass").unwrap_or_default();
        cfg = cfg.with_turn_server(TurnServer::new(
            t.parse().map_err(|_| bad("--turn"))?,
            user,
            pass,
        ));
    }
    let mut d = Driver::start(cfg, bind).await?;
    let c = d.local_credentials().clone();
    out(&format!("cred {} {}", c.ufrag, c.pwd));
    let transport = d.transport();
    let echo = transport.clone();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok(n) = echo.recv(&mut buf).await {
            if buf[0] == 23 {
                buf[0] = 0x80;
                let _ = echo.send(&buf[..n]).await;
            } else {
                let _ = pong_tx.send(());
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            e = d.next_event() => match e {
                Some(Event::CandidateGathered(c)) => out(&format!("cand {}", c.to_sdp_string())),
                Some(Event::GatheringDone) => out("eoc"),
                Some(Event::Selected(p)) => out(&format!("selected {:?}", p.kind)),
                Some(Event::PathLost) => out("lost"),
                Some(Event::Failed) => out("failed"),
                Some(Event::Restarted(c)) => out(&format!("restarted {} {}", c.ufrag, c.pwd)),
                Some(_) => {}
                None => break,
            },
            l = lines.next_line() => {
                let Ok(Some(l)) = l else { break };
                let (cmd, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
                match cmd {
                    "cred" => {
                        let (u, p) = rest.split_once(' ').unwrap_or((rest, ""));
                        if let Ok(c) = Credentials::new(u, p) {
                            let _ = d.set_remote_credentials(c).await;
                        }
                    }
                    "cand" => {
                        if let Err(e) = d.add_remote_candidate(rest).await {
                            out(&format!("error {e}"));
                        }
                    }
                    "eoc" => d.end_of_remote_candidates(),
                    "restart" => d.restart(),
                    "ping" => {
                        let n: u32 = rest.parse().unwrap_or(1);
                        while pong_rx.try_recv().is_ok() {}
                        for i in 0u32..n {
                            let mut p = [23u8; 100];
                            p[1..5].copy_from_slice(&i.to_be_bytes());
                            let _ = transport.send(&p).await;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        let mut got = 0;
                        let end = tokio::time::Instant::now() + Duration::from_secs(2);
                        while got < n {
                            match tokio::time::timeout_at(end, pong_rx.recv()).await {
                                Ok(Some(())) => got += 1,
                                _ => break,
                            }
                        }
                        out(&format!("pong {got}"));
                    }
                    "quit" => break,
                    _ => out("error unknown command"),
                }
            }
        }
    }
    d.close().await;
    Ok(())
}
