//! The interactive mode: one connection to the server, commands typed at a
//! prompt, incoming calls announced with the caller's name.
//!
//! Commands: `call <user>`, `accept`, `reject`, `hangup`, `mute`, `unmute`,
//! `stats`, `history`, `devices`, `help`, `quit`.

use std::path::Path;
use std::time::Duration;

use cryptic_signal::client::{connect, Incoming};
use cryptic_signal::profile::Profile;
use cryptic_signal::wire::{KeysFetch, Message, UserId};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::call::{run_call_with, CallOptions, CallReport, CallSide, Control};
use crate::history::{format_record, History};

const HELP: &str = "commands: call <user> | accept | reject | hangup | mute | unmute | stats | history | devices | help | quit";

/// Runs the shell on stdin until `quit` or end of input. `record` is called
/// with every call's report (the CLI writes the history with it).
pub async fn run_shell(
    profile_dir: &Path,
    options: CallOptions,
    record: impl Fn(&CallReport),
) -> Result<(), String> {
    let profile = Profile::load(profile_dir).map_err(|e| e.to_string())?;
    let _lock =
        cryptic_signal::profile::ProfileLock::acquire(profile_dir).map_err(|e| e.to_string())?;
    let mut conn = connect(&profile.client_config().map_err(|e| e.to_string())?)
        .await
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    let mut e2e = profile.e2e().map_err(|e| e.to_string())?;
    crate::call::publish_keys(&mut conn, &mut e2e, 10).await?;
    let me = conn.user().clone();
    let ice_servers = conn.ice_servers().to_vec();
    let (sender, receiver) = conn.split();
    let mut side = CallSide {
        me: me.clone(),
        e2e,
        sender,
        receiver,
        ice_servers,
    };
    let (line_tx, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    println!("signed in as {me}. {HELP}");
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { return Ok(()) };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["call", peer] => {
                        let peer = match UserId::new(peer) {
                            Ok(p) => p,
                            Err(e) => {
                                println!("bad user name: {e:?}");
                                continue;
                            }
                        };
                        if let Err(e) = ensure_session(&mut side, &peer).await {
                            println!("cannot call {peer}: {e}");
                            continue;
                        }
                        let report = in_call(&mut side, Some(peer), &options, None, &mut lines).await;
                        finish(report, &record);
                    }
                    ["history"] => match History::open(&profile_dir.join("history.sqlite")).and_then(|h| h.recent(20)) {
                        Ok(calls) => calls.iter().for_each(|c| println!("{}", format_record(c))),
                        Err(e) => println!("history: {e}"),
                    },
                    ["devices"] => match cryptic_audio::list_devices() {
                        Ok(devices) => devices.iter().for_each(|d| println!("{d:?}")),
                        Err(e) => println!("devices: {e}"),
                    },
                    ["quit"] | ["exit"] => return Ok(()),
                    [] => {}
                    ["help"] => println!("{HELP}"),
                    _ => println!("not now or not a command. {HELP}"),
                }
            }
            incoming = side.receiver.recv() => {
                match incoming {
                    Ok(Incoming::Message(m @ Message::CallInvite(_))) => {
                        println!("(type accept or reject)");
                        let report = in_call(&mut side, None, &options, Some(m), &mut lines).await;
                        finish(report, &record);
                    }
                    Ok(_) => {}
                    Err(cryptic_signal::Error::Protocol(_)) => {}
                    Err(e) => return Err(format!("signaling: {e}")),
                }
            }
        }
    }
}

async fn ensure_session(side: &mut CallSide, peer: &UserId) -> Result<(), String> {
    if side.e2e.has_session(peer) {
        return Ok(());
    }
    side.sender
        .send(&Message::KeysFetch(KeysFetch { user: peer.clone() }))
        .await
        .map_err(|e| e.to_string())?;
    let bundle = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match side.receiver.recv().await {
                Ok(Incoming::Message(Message::KeysBundle(b))) if &b.user == peer => return Ok(b),
                Ok(Incoming::Message(Message::Error(e))) => {
                    return Err(format!("{:?}: {}", e.code, e.message))
                }
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "the server did not answer the key request".to_string())??;
    side.e2e.start_session(&bundle).map_err(|e| e.to_string())
}

/// Runs one call while typed lines become its controls.
async fn in_call(
    side: &mut CallSide,
    callee: Option<UserId>,
    options: &CallOptions,
    initial: Option<Message>,
    lines: &mut mpsc::UnboundedReceiver<String>,
) -> Result<CallReport, String> {
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    let call = run_call_with(side, callee, options, initial, &mut ctl_rx);
    tokio::pin!(call);
    loop {
        tokio::select! {
            report = &mut call => return report.map_err(|e| e.to_string()),
            line = lines.recv() => {
                let control = match line.as_deref().map(str::trim) {
                    Some("accept") => Control::Accept,
                    Some("reject") => Control::Reject,
                    Some("hangup") | Some("quit") | None => Control::Hangup,
                    Some("mute") => Control::Mute(true),
                    Some("unmute") => Control::Mute(false),
                    Some("stats") => Control::Stats,
                    Some(other) => {
                        println!("in a call: accept | reject | hangup | mute | unmute | stats (not {other:?})");
                        continue;
                    }
                };
                let _ = ctl_tx.send(control);
            }
        }
    }
}

fn finish(report: Result<CallReport, String>, record: &impl Fn(&CallReport)) {
    match report {
        Ok(r) => {
            println!(
                "call ended: {} ({}), path {}, SAS {}",
                r.outcome.as_str(),
                r.reason,
                r.path.as_deref().unwrap_or("-"),
                r.sas.as_deref().unwrap_or("-")
            );
            record(&r);
        }
        Err(e) => println!("call failed: {e}"),
    }
}
