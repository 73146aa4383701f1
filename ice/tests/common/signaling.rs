//! In-process signaling between two [`Driver`]s: gather fully, then hand
//! each side the other's credentials, candidates and end-of-candidates at
//! once, and wait for both to select a pair.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use cryptic_ice::{Driver, Event, SelectedPair};

/// Candidates (as `candidate:` strings) until gathering is done.
pub async fn gather(d: &mut Driver, limit: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, d.next_event()).await {
            Ok(Some(Event::CandidateGathered(c))) => out.push(c.to_sdp_string()),
            Ok(Some(Event::GatheringDone)) => return out,
            Ok(Some(_)) => {}
            _ => panic!("gathering did not finish"),
        }
    }
}

/// Exchanges everything at once; returns both selected pairs and the time
/// from both holding each other's candidates to both having selected.
pub async fn connect(
    a: &mut Driver,
    b: &mut Driver,
    cands_a: &[String],
    cands_b: &[String],
    creds: (cryptic_ice::Credentials, cryptic_ice::Credentials),
    limit: Duration,
) -> Option<(SelectedPair, SelectedPair, Duration)> {
    // The clock starts as the hand-over starts: checks begin while it runs.
    let start = Instant::now();
    b.set_remote_credentials(creds.0).await.unwrap();
    a.set_remote_credentials(creds.1).await.unwrap();
    for c in cands_a {
        b.add_remote_candidate(c).await.unwrap();
    }
    for c in cands_b {
        a.add_remote_candidate(c).await.unwrap();
    }
    a.end_of_remote_candidates();
    b.end_of_remote_candidates();
    let (mut sa, mut sb) = (None, None);
    let end = tokio::time::Instant::now() + limit;
    while sa.is_none() || sb.is_none() {
        tokio::select! {
            e = a.next_event() => if let Some(Event::Selected(p)) = e { sa = Some(p) },
            e = b.next_event() => if let Some(Event::Selected(p)) = e { sb = Some(p) },
            _ = tokio::time::sleep_until(end) => return None,
        }
    }
    Some((sa?, sb?, start.elapsed()))
}
