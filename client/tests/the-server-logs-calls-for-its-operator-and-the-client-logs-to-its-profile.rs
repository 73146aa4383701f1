//! What an operator reads: the server logs connections and every call
//! (id, users, outcome, how long it rang and lasted) at info, as plain
//! lines or, with `--log-format json`, one JSON object a line that a log
//! shipper parses. The client prints its log lines with `-v`.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

const QUIET: &[&str] = &["--input", "silence", "--output", "null"];

/// Alice calls bob for a second; both exit 0.
fn one_call(world: &World, alice_extra: &[&str]) -> Proc {
    let mut bob = world.listen("bob", &[&["--auto-accept"][..], QUIET].concat());
    let mut alice = world.call(
        "alice",
        "bob",
        &[&["--duration", "1"][..], QUIET, alice_extra].concat(),
    );
    assert!(
        alice.wait_exit(Duration::from_secs(30)),
        "{}",
        alice.output()
    );
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    assert_eq!(
        (alice.code, bob.code),
        (Some(0), Some(0)),
        "{}",
        alice.output()
    );
    alice
}

#[test]
fn the_server_logs_each_call_as_json_lines() {
    let mut world =
        World::start_with_server_flags("jsonlogs", &["alice", "bob"], &["--log-format", "json"]);
    one_call(&world, &[]);
    let ended = world
        .server
        .wait_for("\"call ended\"", Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&ended).unwrap();
    assert_eq!(v["level"], "INFO", "{ended}");
    assert_eq!(v["caller"], "alice", "{ended}");
    assert_eq!(v["callee"], "bob", "{ended}");
    assert_eq!(v["answered"], true, "{ended}");
    assert!(v["duration_ms"].as_u64().unwrap() >= 500, "{ended}");
    assert!(v["call_id"].as_str().unwrap().len() >= 32, "{ended}");
    assert!(
        v["outcome"].as_str().unwrap().starts_with("hung up"),
        "{ended}"
    );
    // Every log line is JSON; connections are there too.
    world.server.kill();
    let out = world.server.output();
    let json: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        json.iter()
            .any(|v| v["message"] == "connected" && v["user"] == "alice"),
        "{out}"
    );
    assert!(
        json.iter()
            .any(|v| v["message"] == "call ringing: invite routed"),
        "{out}"
    );
}

#[test]
fn the_server_logs_plain_lines_and_the_client_logs_with_v() {
    let mut world = World::start("plainlogs", &["alice", "bob"]);
    let alice = one_call(&world, &["-v"]);
    let ended = world.server.wait_for("call ended", Duration::from_secs(10));
    for field in [
        "INFO",
        "caller=alice",
        "callee=bob",
        "duration_ms=",
        "call_id=",
    ] {
        assert!(ended.contains(field), "{field}: {ended}");
    }
    // -v: the client's own info lines on standard error.
    let out = alice.output();
    assert!(
        out.lines()
            .any(|l| l.contains("INFO") && l.contains("call ended")),
        "{out}"
    );
    assert!(!out.contains("BEGIN"), "no key material: {out}");
}
