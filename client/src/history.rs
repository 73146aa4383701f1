//! The call history: one SQLite file in the user's profile directory.
//!
//! Every call that reached the ringing stage leaves one row: who, which
//! direction, when it started, how long it lasted, how it ended, which path
//! the media took, and the mean loss and round-trip time. Nothing about the
//! content of a call is stored.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

/// Who started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// We called.
    Outgoing,
    /// They called.
    Incoming,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Outgoing => "outgoing",
            Direction::Incoming => "incoming",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "outgoing" => Some(Direction::Outgoing),
            "incoming" => Some(Direction::Incoming),
            _ => None,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It was answered and ended normally by a hang-up.
    Completed,
    /// The callee declined.
    Rejected,
    /// The callee was in another call.
    Busy,
    /// Nobody answered before the ring timeout.
    Missed,
    /// The caller hung up before an answer.
    Cancelled,
    /// The call was aborted because the peer's DTLS certificate did not
    /// match the fingerprint received end to end.
    SecurityAbort,
    /// The media path died (consent lost) or could not be established.
    Failed,
    /// The callee was not connected to the server.
    Offline,
}

impl Outcome {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Rejected => "rejected",
            Outcome::Busy => "busy",
            Outcome::Missed => "missed",
            Outcome::Cancelled => "cancelled",
            Outcome::SecurityAbort => "security-abort",
            Outcome::Failed => "failed",
            Outcome::Offline => "offline",
        }
    }

    /// The exit code of `cryptic-call call`/`listen` for this outcome (see
    /// `cryptic-call --help`): 0 completed, 1 failed, 3 rejected, 4 busy,
    /// 5 missed, 6 cancelled, 7 security abort, 8 offline. (2 is a local
    /// error before any call: bad arguments, no profile, no server.)
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Completed => 0,
            Outcome::Failed => 1,
            Outcome::Rejected => 3,
            Outcome::Busy => 4,
            Outcome::Missed => 5,
            Outcome::Cancelled => 6,
            Outcome::SecurityAbort => 7,
            Outcome::Offline => 8,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "completed" => Outcome::Completed,
            "rejected" => Outcome::Rejected,
            "busy" => Outcome::Busy,
            "missed" => Outcome::Missed,
            "cancelled" => Outcome::Cancelled,
            "security-abort" => Outcome::SecurityAbort,
            "failed" => Outcome::Failed,
            "offline" => Outcome::Offline,
            _ => return None,
        })
    }
}

/// One call in the history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CallRecord {
    /// The signaling call id.
    pub call_id: String,
    /// The other user.
    pub peer: String,
    /// Who called.
    pub direction: Direction,
    /// Start (invite sent or received), seconds since the Unix epoch.
    pub started_unix: i64,
    /// Time from answer to hang-up (zero when never answered).
    pub duration: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The media path (`direct`, `turn-relay`, `server-relay`), if any.
    pub path: Option<String>,
    /// Mean fraction of packets lost (0 to 1), if media flowed.
    pub mean_loss: Option<f64>,
    /// Mean round-trip time, if measured.
    pub mean_rtt: Option<Duration>,
    /// Why it ended, in words ("bob hung up", "bob is offline").
    pub reason: String,
    /// Whether the peer's key was verified (safety number compared), for
    /// calls that were secured.
    pub verified: Option<bool>,
}

impl CallRecord {
    /// A record with no media figures.
    pub fn new(
        call_id: impl Into<String>,
        peer: impl Into<String>,
        direction: Direction,
        started_unix: i64,
        outcome: Outcome,
    ) -> Self {
        CallRecord {
            call_id: call_id.into(),
            peer: peer.into(),
            direction,
            started_unix,
            duration: Duration::ZERO,
            outcome,
            path: None,
            mean_loss: None,
            mean_rtt: None,
            reason: String::new(),
            verified: None,
        }
    }
}

/// Errors of the history store.
#[derive(Debug)]
#[non_exhaustive]
pub enum HistoryError {
    /// SQLite failed (file unreadable, disk full, corrupt database).
    Sqlite(rusqlite::Error),
    /// A stored row holds a value this version does not understand.
    BadRow(String),
}

impl std::fmt::Display for HistoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HistoryError::Sqlite(e) => write!(f, "call history database: {e}"),
            HistoryError::BadRow(what) => write!(f, "call history row not understood: {what}"),
        }
    }
}

impl std::error::Error for HistoryError {}

impl From<rusqlite::Error> for HistoryError {
    fn from(e: rusqlite::Error) -> Self {
        HistoryError::Sqlite(e)
    }
}

/// The call history of one profile.
#[derive(Debug)]
pub struct History {
    db: Connection,
}

impl History {
    /// Opens (creating if needed) the history database at `path`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS calls (
                 call_id     TEXT PRIMARY KEY,
                 peer        TEXT NOT NULL,
                 direction   TEXT NOT NULL,
                 started     INTEGER NOT NULL,
                 duration_ms INTEGER NOT NULL,
                 outcome     TEXT NOT NULL,
                 path        TEXT,
                 mean_loss   REAL,
                 mean_rtt_ms REAL
             );
             CREATE INDEX IF NOT EXISTS calls_started ON calls(started);",
        )?;
        // Columns added after the first version: older files get them.
        let mut have = Vec::new();
        {
            let mut stmt = db.prepare("PRAGMA table_info(calls)")?;
            let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
            for n in names {
                have.push(n?);
            }
        }
        for (column, ty) in [("reason", "TEXT"), ("verified", "INTEGER")] {
            if !have.iter().any(|h| h == column) {
                db.execute_batch(&format!("ALTER TABLE calls ADD COLUMN {column} {ty}"))?;
            }
        }
        Ok(History { db })
    }

    /// Records a call, replacing an earlier record of the same call id.
    pub fn record(&self, call: &CallRecord) -> Result<(), HistoryError> {
        self.db.execute(
            "INSERT OR REPLACE INTO calls
             (call_id, peer, direction, started, duration_ms, outcome, path, mean_loss, mean_rtt_ms,
              reason, verified)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                call.call_id,
                call.peer,
                call.direction.as_str(),
                call.started_unix,
                i64::try_from(call.duration.as_millis()).unwrap_or(i64::MAX),
                call.outcome.as_str(),
                call.path,
                call.mean_loss,
                call.mean_rtt.map(|d| d.as_secs_f64() * 1000.0),
                call.reason,
                call.verified,
            ],
        )?;
        Ok(())
    }

    /// The most recent calls, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<CallRecord>, HistoryError> {
        let mut stmt = self.db.prepare(
            "SELECT call_id, peer, direction, started, duration_ms, outcome, path, mean_loss, mean_rtt_ms,
                    reason, verified
             FROM calls ORDER BY started DESC, rowid DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<f64>>(7)?,
                r.get::<_, Option<f64>>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<bool>>(10)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                call_id,
                peer,
                direction,
                started,
                duration_ms,
                outcome,
                path,
                loss,
                rtt,
                reason,
                verified,
            ) = row?;
            out.push(CallRecord {
                direction: Direction::parse(&direction)
                    .ok_or_else(|| HistoryError::BadRow(format!("direction {direction:?}")))?,
                outcome: Outcome::parse(&outcome)
                    .ok_or_else(|| HistoryError::BadRow(format!("outcome {outcome:?}")))?,
                call_id,
                peer,
                started_unix: started,
                duration: Duration::from_millis(u64::try_from(duration_ms).unwrap_or(0)),
                path,
                mean_loss: loss,
                mean_rtt: rtt
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
                reason: reason.unwrap_or_default(),
                verified,
            });
        }
        Ok(out)
    }

    /// The record of one call.
    pub fn get(&self, call_id: &str) -> Result<Option<CallRecord>, HistoryError> {
        let started: Option<i64> = self
            .db
            .query_row(
                "SELECT started FROM calls WHERE call_id = ?1",
                params![call_id],
                |r| r.get(0),
            )
            .optional()?;
        if started.is_none() {
            return Ok(None);
        }
        Ok(self
            .recent(usize::MAX)?
            .into_iter()
            .find(|c| c.call_id == call_id))
    }
}

/// The local date and time of a Unix time, to the minute.
pub fn local_time(unix: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(unix, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M").to_string()
        }
        chrono::LocalResult::None => format!("@{unix}"),
    }
}

/// The local time of day of a Unix time ("14:02").
pub fn local_clock(unix: i64) -> String {
    local_time(unix)
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The header line above [`format_record`]'s lines.
pub fn header() -> String {
    format!(
        "{:<16}  {:<10} {:<3} {:<14} {:>6}  {:<12} {:>6} {:>6}  {:<8} {}",
        "when", "who", "dir", "outcome", "length", "path", "loss", "rtt", "verified", "why"
    )
}

/// Formats a record as one line of `cryptic-call history`: local start
/// time, peer, direction, outcome, duration, path, loss, round-trip time,
/// whether the peer was verified, and why the call ended.
pub fn format_record(call: &CallRecord) -> String {
    let secs = call.duration.as_secs();
    let dash = || "-".to_string();
    format!(
        "{:<16}  {:<10} {:<3} {:<14} {:>3}:{:02}  {:<12} {:>6} {:>6}  {:<8} {}",
        local_time(call.started_unix),
        call.peer,
        match call.direction {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
        },
        call.outcome.as_str(),
        secs / 60,
        secs % 60,
        call.path.as_deref().unwrap_or("-"),
        call.mean_loss
            .map_or_else(dash, |l| format!("{:.1}%", l * 100.0)),
        call.mean_rtt
            .map_or_else(dash, |r| format!("{}ms", r.as_millis())),
        match call.verified {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        },
        call.reason,
    )
}

/// The records as a JSON array, for scripts (`history --json`): times in
/// Unix seconds and in local ISO 8601, durations in seconds.
pub fn to_json(calls: &[CallRecord]) -> String {
    use chrono::TimeZone;
    let rows: Vec<serde_json::Value> = calls
        .iter()
        .map(|c| {
            let local = match chrono::Local.timestamp_opt(c.started_unix, 0) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                    Some(t.to_rfc3339())
                }
                chrono::LocalResult::None => None,
            };
            serde_json::json!({
                "call_id": c.call_id,
                "peer": c.peer,
                "direction": c.direction.as_str(),
                "started_unix": c.started_unix,
                "started": local,
                "duration_s": c.duration.as_secs_f64(),
                "outcome": c.outcome.as_str(),
                "reason": c.reason,
                "path": c.path,
                "mean_loss": c.mean_loss,
                "mean_rtt_ms": c.mean_rtt.map(|r| r.as_secs_f64() * 1000.0),
                "verified": c.verified,
            })
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
}

/// Records a finished call in the profile's history (errors are printed:
/// a call is not undone by a full disk). `verified` says whether the
/// peer's key was verified, for a secured call.
pub fn record_report(profile_dir: &Path, report: &crate::call::CallReport, verified: Option<bool>) {
    let (Some(call_id), Some(peer)) = (report.call_id, report.peer.as_ref()) else {
        return;
    };
    let direction = match report.role {
        cryptic_signal::call::Role::Caller => Direction::Outgoing,
        _ => Direction::Incoming,
    };
    let mut rec = CallRecord::new(
        call_id.to_string(),
        peer.to_string(),
        direction,
        report.started_unix,
        report.outcome,
    );
    rec.duration = report.active_time;
    rec.path = report.path.clone();
    if report.stats.packets_received > 0 {
        rec.mean_loss = Some(report.stats.loss_received);
    }
    rec.mean_rtt = report.stats.rtt;
    rec.reason = report.reason.clone();
    rec.verified = verified;
    tracing::info!(
        call_id = %rec.call_id,
        peer = %rec.peer,
        direction = rec.direction.as_str(),
        outcome = rec.outcome.as_str(),
        reason = %rec.reason,
        duration_ms = u64::try_from(rec.duration.as_millis()).unwrap_or(u64::MAX),
        path = rec.path.as_deref().unwrap_or("-"),
        "call ended"
    );
    match History::open(&profile_dir.join(crate::config::HISTORY_FILE)) {
        Ok(h) => {
            if let Err(e) = h.record(&rec) {
                eprintln!("cryptic-call: could not record the call: {e}");
            }
        }
        Err(e) => eprintln!("cryptic-call: could not open the history: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cryptic-history-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("history.sqlite")
    }

    #[test]
    fn records_survive_reopening_and_come_back_newest_first() {
        let path = temp_db("reopen");
        {
            let h = History::open(&path).unwrap();
            let mut done =
                CallRecord::new("c1", "bob", Direction::Outgoing, 100, Outcome::Completed);
            done.duration = Duration::from_secs(75);
            done.path = Some("direct".into());
            done.mean_loss = Some(0.02);
            done.mean_rtt = Some(Duration::from_millis(40));
            h.record(&done).unwrap();
            h.record(&CallRecord::new(
                "c2",
                "carol",
                Direction::Incoming,
                200,
                Outcome::Missed,
            ))
            .unwrap();
        }
        let h = History::open(&path).unwrap();
        let calls = h.recent(10).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].peer, "carol");
        assert_eq!(calls[1].outcome, Outcome::Completed);
        assert_eq!(calls[1].mean_rtt, Some(Duration::from_millis(40)));
        assert!(format_record(&calls[1]).contains("1:15"));
        // Local time, not a Unix number; the reason and verification.
        assert!(
            format_record(&calls[1]).starts_with("1970-01-01 ")
                || format_record(&calls[1]).starts_with("1969-12-31 ")
        );
        assert!(!format_record(&calls[1]).contains(" 100 "));
        assert!(header().starts_with("when"));
        assert!(h.get("c1").unwrap().is_some());
        assert!(h.get("nope").unwrap().is_none());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn history_rows_carry_reason_and_verification_and_read_as_json() {
        let path = temp_db("json");
        let h = History::open(&path).unwrap();
        let mut c = CallRecord::new(
            "c9",
            "bob",
            Direction::Outgoing,
            1_700_000_000,
            Outcome::Completed,
        );
        c.reason = "bob hung up".into();
        c.verified = Some(true);
        c.duration = Duration::from_secs(61);
        h.record(&c).unwrap();
        let calls = h.recent(5).unwrap();
        assert_eq!(calls[0].reason, "bob hung up");
        assert_eq!(calls[0].verified, Some(true));
        let line = format_record(&calls[0]);
        assert!(
            line.contains("bob hung up") && line.contains("yes") && line.contains("1:01"),
            "{line}"
        );
        assert!(line.starts_with(&local_time(1_700_000_000)), "{line}");
        let v: serde_json::Value = serde_json::from_str(&to_json(&calls)).unwrap();
        assert_eq!(v[0]["outcome"], "completed");
        assert_eq!(v[0]["reason"], "bob hung up");
        assert_eq!(v[0]["verified"], true);
        assert_eq!(v[0]["started_unix"], 1_700_000_000);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_history_file_of_the_first_version_gets_the_new_columns() {
        let path = temp_db("old");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE calls (call_id TEXT PRIMARY KEY, peer TEXT NOT NULL, direction TEXT NOT NULL,
                 started INTEGER NOT NULL, duration_ms INTEGER NOT NULL, outcome TEXT NOT NULL, path TEXT,
                 mean_loss REAL, mean_rtt_ms REAL);
                 INSERT INTO calls VALUES ('old', 'bob', 'incoming', 5, 0, 'missed', NULL, NULL, NULL);",
            )
            .unwrap();
        let h = History::open(&path).unwrap();
        let calls = h.recent(5).unwrap();
        assert_eq!(calls[0].reason, "");
        assert_eq!(calls[0].verified, None);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_call_recorded_twice_keeps_its_last_outcome() {
        let path = temp_db("replace");
        let h = History::open(&path).unwrap();
        h.record(&CallRecord::new(
            "c",
            "bob",
            Direction::Outgoing,
            1,
            Outcome::Failed,
        ))
        .unwrap();
        h.record(&CallRecord::new(
            "c",
            "bob",
            Direction::Outgoing,
            1,
            Outcome::Completed,
        ))
        .unwrap();
        let calls = h.recent(10).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].outcome, Outcome::Completed);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
