//! `pubsub --redis URL`: how Redis carries messages from one node to
//! another, three ways side by side on the same Redis in the same run:
//! classic pub/sub (`PUBLISH`/`SUBSCRIBE`), sharded pub/sub
//! (`SPUBLISH`/`SSUBSCRIBE`) and a stream (`XADD`/`XREAD BLOCK`).
//!
//! A publisher sends `--msgs` messages of `--bytes` bytes in pipelines of
//! `--pipeline`, as the cluster's per-node publishers do; a reader on its
//! own connection counts them. Reported: messages per second end to end,
//! and Redis' own CPU time per message (from `INFO cpu`).

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::{flag, BoxError};

pub(crate) async fn run(args: &[String]) -> Result<(), BoxError> {
    let url = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1))
        .ok_or("--redis redis://127.0.0.1:PORT needed")?;
    let msgs = flag(args, "--msgs", 200_000)?;
    let bytes = flag(args, "--bytes", 200)? as usize;
    let pipeline = flag(args, "--pipeline", 64)?;
    let rounds = flag(args, "--rounds", 3)?;
    let client = redis::Client::open(url.as_str())?;
    let addr = url.trim_start_matches("redis://").trim_end_matches('/');
    println!("{msgs} messages of {bytes} B, pipelines of {pipeline}, {rounds} rounds, interleaved");
    for round in 0..rounds {
        for mode in ["publish", "spublish", "stream"] {
            let cpu0 = redis_cpu(&client).await?;
            let (n, secs) = one(&client, addr, mode, msgs, bytes, pipeline, round).await?;
            let cpu = redis_cpu(&client).await? - cpu0;
            println!(
                "round {round} {mode:>8}: {n} received in {secs:.2} s = {:>7.0} msg/s; Redis CPU {:.2} us/msg",
                n as f64 / secs,
                cpu * 1e6 / n.max(1) as f64
            );
        }
    }
    Ok(())
}

/// Redis' CPU seconds so far (user + system).
async fn redis_cpu(client: &redis::Client) -> Result<f64, BoxError> {
    let mut c = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut c).await?;
    let mut t = 0.0;
    for l in info.lines() {
        for k in ["used_cpu_sys:", "used_cpu_user:"] {
            if let Some(v) = l.strip_prefix(k) {
                t += v.trim().parse::<f64>()?;
            }
        }
    }
    Ok(t)
}

async fn one(
    client: &redis::Client,
    addr: &str,
    mode: &str,
    msgs: u64,
    bytes: usize,
    pipeline: u64,
    round: u64,
) -> Result<(u64, f64), BoxError> {
    let key = format!("bench:{mode}:{round}:{}", std::process::id());
    let reader = match mode {
        "stream" => tokio::spawn(read_stream(client.clone(), key.clone(), msgs)),
        _ => {
            let sub = if mode == "spublish" {
                "SSUBSCRIBE"
            } else {
                "SUBSCRIBE"
            };
            let s = subscribe(addr, sub, &key).await?;
            tokio::spawn(read_pubsub(s, msgs))
        }
    };
    let mut c = client.get_multiplexed_async_connection().await?;
    let payload = vec![0x5au8; bytes];
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < msgs {
        let mut p = redis::pipe();
        for _ in 0..pipeline.min(msgs - sent) {
            match mode {
                "stream" => p
                    .cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(10_000)
                    .arg("*")
                    .arg("m")
                    .arg(&payload[..])
                    .ignore(),
                "spublish" => p.cmd("SPUBLISH").arg(&key).arg(&payload[..]).ignore(),
                _ => p.cmd("PUBLISH").arg(&key).arg(&payload[..]).ignore(),
            };
            sent += 1;
        }
        p.query_async::<()>(&mut c).await?;
    }
    let n = tokio::time::timeout(Duration::from_secs(60), reader).await???;
    let secs = t0.elapsed().as_secs_f64();
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut c).await?;
    Ok((n, secs))
}

/// A raw RESP2 subscriber (the `redis` crate has no `SSUBSCRIBE` outside
/// its cluster client): sends the command, waits for its confirmation.
async fn subscribe(addr: &str, cmd: &str, ch: &str) -> Result<BufReader<TcpStream>, BoxError> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!("*2\r\n${}\r\n{cmd}\r\n${}\r\n{ch}\r\n", cmd.len(), ch.len());
    s.write_all(req.as_bytes()).await?;
    let mut r = BufReader::new(s);
    // The confirmation: *3, $N kind, $N channel, :1.
    for _ in 0..6 {
        let mut line = String::new();
        r.read_line(&mut line).await?;
    }
    Ok(r)
}

/// Counts `*3 kind channel payload` pushes until `msgs` arrived.
async fn read_pubsub(mut r: BufReader<TcpStream>, msgs: u64) -> Result<u64, BoxError> {
    let mut n = 0;
    let mut line = String::new();
    let mut skip = Vec::new();
    while n < msgs {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            break;
        }
        if line.starts_with('*') {
            continue;
        }
        let len: usize = line
            .trim_end()
            .strip_prefix('$')
            .ok_or("unexpected RESP")?
            .parse()?;
        skip.resize(len + 2, 0);
        r.read_exact(&mut skip).await?;
        // Three bulk strings a message: count on the payload.
        n += u64::from(skip.len() > 2 && skip[0] == 0x5a);
    }
    Ok(n)
}

/// Reads a stream with `XREAD BLOCK` from the start until `msgs` arrived.
async fn read_stream(client: redis::Client, key: String, msgs: u64) -> Result<u64, BoxError> {
    let mut c = client.get_multiplexed_async_connection().await?;
    let mut last = "0".to_string();
    let mut n = 0;
    while n < msgs {
        let v: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last)
            .query_async(&mut c)
            .await?;
        // [[key, [[id, [field, value]], ...]]] (RESP2)
        let Some(entries) = stream_entries(v) else {
            continue;
        };
        for (id, _) in entries {
            last = id;
            n += 1;
        }
    }
    Ok(n)
}

fn stream_entries(v: redis::Value) -> Option<Vec<(String, redis::Value)>> {
    use redis::Value;
    let Value::Array(streams) = v else {
        return None;
    };
    let Value::Array(mut kv) = streams.into_iter().next()? else {
        return None;
    };
    let Value::Array(entries) = kv.pop()? else {
        return None;
    };
    Some(
        entries
            .into_iter()
            .filter_map(|e| match e {
                Value::Array(mut p) if p.len() == 2 => {
                    let fields = p.pop()?;
                    match p.pop()? {
                        Value::BulkString(id) => Some((String::from_utf8(id).ok()?, fields)),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect(),
    )
}
