//! The routing table and the active-call registry (no I/O: the connection
//! tasks hand it parsed messages and send what it returns).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::Limits;
use crate::wire::{
    CallHangup, CallId, CallReject, ErrorCode, HangupReason, Message, RejectReason, RelayFrame,
    UserId,
};

/// What a connection task writes to its socket.
#[derive(Debug)]
pub(crate) enum Out {
    Text(String),
    Binary(Bytes),
    Close(ErrorCode, String),
}

impl Out {
    /// Bytes this item holds while queued.
    fn weight(&self) -> usize {
        match self {
            Out::Text(t) => t.len(),
            Out::Binary(b) => b.len(),
            Out::Close(_, why) => why.len(),
        }
    }
}

/// The sending side of a connection's outgoing queue, plus its kill switch.
///
/// The queue is bounded twice: at most `len` items and at most `max_bytes`
/// bytes of text and frames (one item is always let in when the queue is
/// empty, so an item bigger than `max_bytes` still passes alone). What does
/// not fit is dropped: routing never waits for a slow reader.
#[derive(Clone, Debug)]
pub(crate) struct Tx {
    queue: mpsc::Sender<Out>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
    kill: Arc<watch::Sender<Option<ErrorCode>>>,
}

/// The connection task's side of [`Tx`].
#[derive(Debug)]
pub(crate) struct Rx {
    queue: mpsc::Receiver<Out>,
    queued: Arc<AtomicUsize>,
}

/// The kill switch as the connection task sees it: becomes `Some(why)`
/// when the connection must end at once (replaced by a newer login, or its
/// certificate revoked), even if it is stuck writing.
pub(crate) type Kill = watch::Receiver<Option<ErrorCode>>;

/// A connection's outgoing queue of at most `len` items and about
/// `max_bytes` bytes, and its kill switch.
pub(crate) fn channel(len: usize, max_bytes: usize) -> (Tx, Rx, Kill) {
    let (qtx, qrx) = mpsc::channel(len.max(1));
    let queued = Arc::new(AtomicUsize::new(0));
    let (ktx, krx) = watch::channel(None);
    (
        Tx {
            queue: qtx,
            queued: queued.clone(),
            max_bytes,
            kill: Arc::new(ktx),
        },
        Rx { queue: qrx, queued },
        krx,
    )
}

impl Tx {
    /// Queues `out` unless the queue is full (by count or bytes) or closed.
    pub(crate) fn try_send(&self, out: Out) -> bool {
        let w = out.weight();
        let before = self.queued.fetch_add(w, Ordering::Relaxed);
        let fits = before == 0 || before + w <= self.max_bytes || matches!(out, Out::Close(..));
        if fits && self.queue.try_send(out).is_ok() {
            true
        } else {
            self.queued.fetch_sub(w, Ordering::Relaxed);
            false
        }
    }

    /// Ends the connection for certain: its task stops waiting on any write
    /// and closes (after a goodbye saying `why`, bounded by a short deadline).
    pub(crate) fn kill(&self, why: ErrorCode) {
        self.kill.send_replace(Some(why));
    }
}

impl Rx {
    fn took(&self, o: &Out) {
        self.queued.fetch_sub(o.weight(), Ordering::Relaxed);
    }

    /// The next queued item (`None` once every [`Tx`] is gone).
    pub(crate) async fn recv(&mut self) -> Option<Out> {
        let o = self.queue.recv().await?;
        self.took(&o);
        Some(o)
    }

    /// The next queued item if one is ready.
    pub(crate) fn try_recv(&mut self) -> Option<Out> {
        let o = self.queue.try_recv().ok()?;
        self.took(&o);
        Some(o)
    }
}

struct Peer {
    /// The connection's id; [`REMOTE`] for a user on another cluster node.
    conn_id: u64,
    tx: Tx,
    calls: Vec<CallId>,
    last_unanswered_invite: Option<Instant>,
    /// Whom this user shares presence with (`presence_share`).
    contacts: Vec<UserId>,
    /// The connection dropped during an answered call: the user is kept
    /// (with its answered calls) until it logs in again or the grace ends.
    away: Option<Away>,
}

/// A user whose connection dropped while it had an answered call.
///
/// Its `tx` then feeds a small queue of its own: call messages for it
/// (a hang-up, an ICE restart) wait there, at most [`AWAY_QUEUE`] of them,
/// and reach the user's next connection; relay frames are dropped.
struct Away {
    /// When the grace ends and the calls end as on a disconnect.
    until: Instant,
    /// What was routed to the user meanwhile.
    held: Rx,
}

/// Messages held for a user in its reconnection grace.
const AWAY_QUEUE: usize = 32;
/// Bytes held for a user in its reconnection grace.
const AWAY_BYTES: usize = 64 * 1024;
/// Relay frames at most this far apart count as one stretch of relaying
/// (media is 50 frames a second; a call that left the relay sends none).
const RELAY_SPAN: Duration = Duration::from_secs(1);
/// A call with no relay frame for this long is on its ICE pair: it goes on
/// peer to peer when the other user's node dies.
const RELAY_QUIET: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CallPhase {
    Ringing,
    Active,
}

struct Bucket {
    frames: f64,
    bytes: f64,
    at: Instant,
}

struct CallEntry {
    caller: UserId,
    callee: UserId,
    phase: CallPhase,
    created: Instant,
    relay: Bucket,
    /// When the callee answered (the call-duration cap counts from here).
    answered: Option<Instant>,
    /// When the last relay frame passed.
    relay_last: Option<Instant>,
    /// How long the call has used the relay (the relay-session cap counts
    /// this): the time between relay frames less than [`RELAY_SPAN`] apart.
    /// Calls start on the relay while ICE checks run, so a call's first
    /// relay frame says nothing about its later use.
    relay_used: Duration,
    /// Candidates forwarded while ringing, from the caller and from the callee.
    ringing_candidates: [u32; 2],
}

impl CallEntry {
    fn other(&self, u: &UserId) -> Option<&UserId> {
        if u == &self.caller {
            Some(&self.callee)
        } else if u == &self.callee {
            Some(&self.caller)
        } else {
            None
        }
    }
}

fn presence_out(tx: Tx, user: &UserId, online: bool) -> (Tx, Out) {
    let m = Message::Presence(crate::wire::Presence {
        user: user.clone(),
        online,
    });
    (tx, Out::Text(m.to_json()))
}

/// The operator's line for a call that ended: who, how, how long it rang
/// and how long it lasted.
fn log_end(id: CallId, c: &CallEntry, outcome: &str, now: Instant) {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let ring_ms = ms(c
        .answered
        .unwrap_or(now)
        .saturating_duration_since(c.created));
    let duration_ms = c
        .answered
        .map_or(0, |a| ms(now.saturating_duration_since(a)));
    tracing::info!(
        call_id = %id,
        caller = %c.caller,
        callee = %c.callee,
        outcome,
        answered = c.answered.is_some(),
        ring_ms,
        duration_ms,
        relay_ms = ms(c.relay_used),
        "call ended"
    );
}

/// A routing decision: messages to deliver, and an error for the sender.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) deliver: Vec<(Tx, Out)>,
    pub(crate) error: Option<(ErrorCode, &'static str, Option<CallId>)>,
    /// The error counts towards the connection's bad-message budget.
    pub(crate) strike: bool,
}

impl Outcome {
    fn err(code: ErrorCode, msg: &'static str, call: Option<CallId>, strike: bool) -> Self {
        Self {
            deliver: Vec::new(),
            error: Some((code, msg, call)),
            strike,
        }
    }
}

/// The `conn_id` of a user connected to another cluster node, whose
/// messages go through a proxy [`Tx`] (local connection ids start at 1).
pub(crate) const REMOTE: u64 = 0;

#[derive(Default)]
pub(crate) struct Hub {
    users: HashMap<UserId, Peer>,
    calls: HashMap<CallId, CallEntry>,
    /// Users (and their old connection) whose grace ended: the cluster
    /// forgets their presence (see [`Self::take_gone`]).
    gone: Vec<(UserId, u64)>,
}

impl Hub {
    /// Registers a connection; returns the replaced connection's sender
    /// (`None` when there was none, or when the user was away).
    ///
    /// A user logging in again takes its answered calls along: after a
    /// lost connection (within its grace, see [`Self::disconnect`]) and
    /// also from a connection still up ("signed in elsewhere", most often
    /// the same client that found its connection dead before the server
    /// did). What was held for it while away comes first on the new
    /// connection. Its ringing calls end as before (`peer_disconnected`).
    pub(crate) fn connect(
        &mut self,
        user: &UserId,
        conn_id: u64,
        tx: Tx,
    ) -> (Option<Tx>, Vec<(Tx, Out)>) {
        let old = self.users.remove(user);
        let mut deliver = Vec::new();
        let mut carried = Vec::new();
        let mut replaced = None;
        if let Some(mut old) = old {
            // A local login carries the answered calls, also from a proxy:
            // the user came here from another node (whose death leaves
            // its peer-to-peer calls going on); a proxy carries nothing.
            let carry = conn_id != REMOTE;
            let (keep, end): (Vec<CallId>, Vec<CallId>) = old.calls.iter().partition(|id| {
                carry
                    && self
                        .calls
                        .get(id)
                        .is_some_and(|c| c.phase == CallPhase::Active)
            });
            self.end_calls_of(user, &end, &mut deliver);
            if !keep.is_empty() {
                tracing::info!(user = %user, calls = keep.len(), "answered calls carried to the new connection");
            }
            carried = keep;
            match old.away.as_mut() {
                Some(away) => {
                    while let Some(out) = away.held.try_recv() {
                        if matches!(out, Out::Text(_)) {
                            deliver.push((tx.clone(), out));
                        }
                    }
                    tracing::info!(user = %user, "logged in again within the grace");
                }
                None => replaced = Some(old.tx),
            }
        }
        self.users.insert(
            user.clone(),
            Peer {
                conn_id,
                tx,
                calls: carried,
                last_unanswered_invite: None,
                contacts: Vec::new(),
                away: None,
            },
        );
        (replaced, deliver)
    }

    /// Unregisters a connection (if still current). Its ringing calls end
    /// at once (`peer_disconnected` to the other side); its answered calls
    /// are kept for `grace` from `now` ([`Limits::reconnect_grace`] for a
    /// lost connection, zero for one the server ended), in case the user
    /// logs in again (see [`Self::connect`]); [`Self::expire`] ends them
    /// after that.
    pub(crate) fn disconnect(
        &mut self,
        user: &UserId,
        conn_id: u64,
        now: Instant,
        grace: std::time::Duration,
    ) -> Vec<(Tx, Out)> {
        let mut deliver = Vec::new();
        let current = self
            .users
            .get(user)
            .is_some_and(|p| p.conn_id == conn_id && p.away.is_none());
        if !current {
            return deliver;
        }
        let Some(mut p) = self.users.remove(user) else {
            return deliver;
        };
        for c in &p.contacts {
            if let Some(m) = self.mutual(c, user) {
                deliver.push(presence_out(m, user, false));
            }
        }
        let (keep, end): (Vec<CallId>, Vec<CallId>) = p.calls.iter().partition(|id| {
            !grace.is_zero()
                && conn_id != REMOTE
                && self
                    .calls
                    .get(id)
                    .is_some_and(|c| c.phase == CallPhase::Active)
        });
        self.end_calls_of(user, &end, &mut deliver);
        if keep.is_empty() {
            return deliver;
        }
        tracing::info!(
            user = %user,
            calls = keep.len(),
            grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "connection lost during a call: the call waits for the user to come back"
        );
        let (tx, held, _kill) = channel(AWAY_QUEUE, AWAY_BYTES);
        p.tx = tx;
        p.calls = keep;
        p.contacts.clear();
        p.last_unanswered_invite = None;
        p.away = Some(Away {
            until: now + grace,
            held,
        });
        self.users.insert(user.clone(), p);
        deliver
    }

    /// Whether `user` lost its connection and is in its reconnection grace.
    pub(crate) fn is_away(&self, user: &UserId) -> bool {
        self.users.get(user).is_some_and(|p| p.away.is_some())
    }

    /// `user` (its connection `conn_id` here still current, or lost and in
    /// its grace) signed in on another node: it leaves this one, and its
    /// answered calls are forgotten here without a word (they go on, peer
    /// to peer, and on the new node if it knows them); its ringing calls
    /// end as on a disconnect. `false` when `conn_id` is not the user's
    /// connection here.
    pub(crate) fn moved_elsewhere(
        &mut self,
        user: &UserId,
        conn_id: u64,
    ) -> (bool, Vec<(Tx, Out)>) {
        let mut deliver = Vec::new();
        if !self
            .users
            .get(user)
            .is_some_and(|p| p.conn_id == conn_id && conn_id != REMOTE)
        {
            return (false, deliver);
        }
        let Some(p) = self.users.remove(user) else {
            return (false, deliver);
        };
        for c in &p.contacts {
            if let Some(m) = self.mutual(c, user) {
                deliver.push(presence_out(m, user, false));
            }
        }
        let (answered, ringing): (Vec<CallId>, Vec<CallId>) = p.calls.iter().partition(|id| {
            self.calls
                .get(id)
                .is_some_and(|c| c.phase == CallPhase::Active)
        });
        for id in &answered {
            self.remove_call(id);
            tracing::info!(call_id = %id, user = %user, "the user signed in on another node; the call goes on without this node");
        }
        self.end_calls_of(user, &ringing, &mut deliver);
        (true, deliver)
    }

    /// Users whose grace ended since the last call, with the connection
    /// they had.
    pub(crate) fn take_gone(&mut self) -> Vec<(UserId, u64)> {
        std::mem::take(&mut self.gone)
    }

    /// `user`'s presence list is now `contacts`: each contact who lists
    /// `user` too and is online learns that `user` is, and `user` learns
    /// the same of them; a contact dropped from the list is told `user`
    /// went offline (it stops seeing `user`).
    pub(crate) fn share_presence(
        &mut self,
        user: &UserId,
        mut contacts: Vec<UserId>,
    ) -> Vec<(Tx, Out)> {
        contacts.sort();
        contacts.dedup();
        contacts.retain(|c| c != user);
        let Some(me) = self.users.get_mut(user) else {
            return Vec::new();
        };
        let old = std::mem::replace(&mut me.contacts, contacts.clone());
        let my_tx = me.tx.clone();
        let mut deliver = Vec::new();
        for c in old.iter().filter(|c| !contacts.contains(c)) {
            if let Some(tx) = self.listing(c, user) {
                deliver.push(presence_out(tx, user, false));
            }
        }
        for c in contacts.iter().filter(|c| !old.contains(c)) {
            if let Some(tx) = self.mutual(c, user) {
                deliver.push(presence_out(tx, user, true));
                deliver.push(presence_out(my_tx.clone(), c, true));
            }
        }
        deliver
    }

    /// The presence list of `user`'s connection `conn_id` (empty if that
    /// connection is not the current one).
    pub(crate) fn contacts_of(&self, user: &UserId, conn_id: u64) -> Vec<UserId> {
        self.users
            .get(user)
            .filter(|p| p.conn_id == conn_id)
            .map(|p| p.contacts.clone())
            .unwrap_or_default()
    }

    /// News from another cluster node that `about` (a user there) is
    /// online or not: for `to`, if it is connected here and lists `about`.
    pub(crate) fn remote_presence(
        &self,
        to: &UserId,
        about: &UserId,
        online: bool,
    ) -> Option<(Tx, Out)> {
        self.listing(to, about)
            .map(|tx| presence_out(tx, about, online))
    }

    /// The sender of `contact` when it is connected here and lists `user`
    /// (whether or not `user` lists it back).
    fn listing(&self, contact: &UserId, user: &UserId) -> Option<Tx> {
        self.users
            .get(contact)
            .filter(|p| p.conn_id != REMOTE && p.contacts.contains(user))
            .map(|p| p.tx.clone())
    }

    /// [`Self::listing`], when `user` (connected) lists `contact` too.
    fn mutual(&self, contact: &UserId, user: &UserId) -> Option<Tx> {
        let mine = self
            .users
            .get(user)
            .is_none_or(|p| p.contacts.contains(contact));
        if mine {
            self.listing(contact, user)
        } else {
            None
        }
    }

    /// All local connections (for shutdown).
    pub(crate) fn senders(&self) -> Vec<Tx> {
        self.users
            .values()
            .filter(|p| p.conn_id != REMOTE && p.away.is_none())
            .map(|p| p.tx.clone())
            .collect()
    }

    /// The local connection of `user`, if it is connected to this node.
    pub(crate) fn local(&self, user: &UserId) -> Option<(u64, Tx)> {
        self.users
            .get(user)
            .filter(|p| p.conn_id != REMOTE)
            .map(|p| (p.conn_id, p.tx.clone()))
    }

    /// Whether `user` is known here as a user of another node.
    pub(crate) fn is_remote(&self, user: &UserId) -> bool {
        self.users.get(user).is_some_and(|p| p.conn_id == REMOTE)
    }

    /// Registers `user`, connected to another node, behind the proxy `tx`,
    /// unless the user is local or already registered with calls going on.
    /// Returns whether `tx` was registered.
    pub(crate) fn connect_remote(&mut self, user: &UserId, tx: Tx) -> bool {
        match self.users.get(user) {
            Some(p) if p.conn_id != REMOTE || !p.calls.is_empty() => false,
            _ => {
                self.connect(user, REMOTE, tx);
                true
            }
        }
    }

    /// Remote users without calls here: their proxies are dropped.
    pub(crate) fn drop_idle_remotes(&mut self) -> Vec<UserId> {
        let idle: Vec<UserId> = self
            .users
            .iter()
            .filter(|(_, p)| p.conn_id == REMOTE && p.calls.is_empty())
            .map(|(u, _)| u.clone())
            .collect();
        for u in &idle {
            self.users.remove(u);
        }
        idle
    }

    /// The other participant of call `id` of the local user `to`: the
    /// sender of a relay frame that arrived from another node for `to`.
    pub(crate) fn relay_sender(&self, to: &UserId, id: &CallId) -> Option<UserId> {
        self.calls.get(id).and_then(|c| c.other(to)).cloned()
    }

    /// Number of registered calls.
    pub(crate) fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The node of the remote `user` died. Its answered calls with no
    /// relay frame for [`RELAY_QUIET`] are dropped without a word (their
    /// media flows peer to peer and goes on without us: every call starts
    /// on the relay and leaves it for its ICE pair); its other calls end
    /// as on a disconnect (`peer_disconnected`).
    pub(crate) fn remote_lost(&mut self, user: &UserId, now: Instant) -> Vec<(Tx, Out)> {
        if !self.is_remote(user) {
            return Vec::new();
        }
        let Some(p) = self.users.remove(user) else {
            return Vec::new();
        };
        let (p2p, others): (Vec<CallId>, Vec<CallId>) = p.calls.iter().partition(|id| {
            self.calls.get(id).is_some_and(|c| {
                c.phase == CallPhase::Active
                    && c.relay_last
                        .is_none_or(|t| now.saturating_duration_since(t) >= RELAY_QUIET)
            })
        });
        for id in &p2p {
            self.remove_call(id);
            tracing::info!(call_id = %id, "peer's node lost; the peer-to-peer call goes on");
        }
        let mut deliver = Vec::new();
        self.end_calls_of(user, &others, &mut deliver);
        deliver
    }

    fn end_calls_of(&mut self, user: &UserId, calls: &[CallId], deliver: &mut Vec<(Tx, Out)>) {
        for id in calls {
            let Some(c) = self.calls.remove(id) else {
                continue;
            };
            let Some(other) = c.other(user).cloned() else {
                continue;
            };
            if let Some(p) = self.users.get_mut(&other) {
                p.calls.retain(|x| x != id);
                let m = Message::CallHangup(CallHangup {
                    call_id: *id,
                    from_user: user.clone(),
                    to_user: other.clone(),
                    reason: Some(HangupReason::PeerDisconnected),
                });
                deliver.push((p.tx.clone(), Out::Text(m.to_json())));
            }
            log_end(*id, &c, "participant disconnected", Instant::now());
        }
    }

    fn remove_call(&mut self, id: &CallId) -> Option<CallEntry> {
        let c = self.calls.remove(id)?;
        for u in [&c.caller, &c.callee] {
            if let Some(p) = self.users.get_mut(u) {
                p.calls.retain(|x| x != id);
            }
        }
        Some(c)
    }

    fn prune_stale(&mut self, user: &UserId, now: Instant, limits: &Limits) {
        let Some(p) = self.users.get(user) else {
            return;
        };
        let stale: Vec<CallId> = p
            .calls
            .iter()
            .filter(|id| {
                self.calls.get(id).is_none_or(|c| {
                    c.phase == CallPhase::Ringing
                        && now.duration_since(c.created) > limits.ring_timeout
                })
            })
            .copied()
            .collect();
        for id in stale {
            if self.remove_call(&id).is_none() {
                if let Some(p) = self.users.get_mut(user) {
                    p.calls.retain(|x| x != &id);
                }
            }
        }
    }

    fn forward(&self, to: &UserId, m: &Message) -> Option<(Tx, Out)> {
        self.users
            .get(to)
            .map(|p| (p.tx.clone(), Out::Text(m.to_json())))
    }

    /// Ends calls past their time caps at `now`: answered calls older than
    /// `max_call_duration` (both participants get `call_hangup` with reason
    /// `timeout`), and ringing calls older than `ring_timeout` (dropped
    /// silently, as on the next invite). Returns what to deliver.
    ///
    /// Users whose reconnection grace ended without a new login are
    /// dropped: their calls end as on a disconnect (`peer_disconnected`
    /// to the other side).
    ///
    /// The server calls this about once a second.
    pub(crate) fn expire(&mut self, now: Instant, limits: &Limits) -> Vec<(Tx, Out)> {
        let mut deliver = self.expire_away(now);
        deliver.extend(self.expire_calls(now, limits));
        deliver
    }

    /// Ends the grace of users who did not come back by `now`.
    fn expire_away(&mut self, now: Instant) -> Vec<(Tx, Out)> {
        let gone: Vec<UserId> = self
            .users
            .iter()
            .filter(|(_, p)| p.away.as_ref().is_some_and(|a| now >= a.until))
            .map(|(u, _)| u.clone())
            .collect();
        let mut deliver = Vec::new();
        for u in gone {
            if let Some(p) = self.users.remove(&u) {
                tracing::info!(user = %u, calls = p.calls.len(), "reconnection grace over: the user's calls end");
                self.end_calls_of(&u, &p.calls, &mut deliver);
                self.gone.push((u, p.conn_id));
            }
        }
        deliver
    }

    /// The duration and ringing caps.
    fn expire_calls(&mut self, now: Instant, limits: &Limits) -> Vec<(Tx, Out)> {
        let due: Vec<(CallId, bool)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| match (c.phase, c.answered) {
                (CallPhase::Active, Some(t))
                    if now.saturating_duration_since(t) > limits.max_call_duration =>
                {
                    Some((*id, true))
                }
                (CallPhase::Ringing, _)
                    if now.saturating_duration_since(c.created) > limits.ring_timeout =>
                {
                    Some((*id, false))
                }
                _ => None,
            })
            .collect();
        let mut deliver = Vec::new();
        for (id, answered) in due {
            let Some(c) = self.remove_call(&id) else {
                continue;
            };
            if !answered {
                continue;
            }
            log_end(id, &c, "duration cap reached", Instant::now());
            for (to, from) in [(&c.caller, &c.callee), (&c.callee, &c.caller)] {
                let m = Message::CallHangup(CallHangup {
                    call_id: id,
                    from_user: from.clone(),
                    to_user: to.clone(),
                    reason: Some(HangupReason::Timeout),
                });
                deliver.extend(self.forward(to, &m));
            }
        }
        deliver
    }

    /// Routes a call message from the authenticated `user`.
    pub(crate) fn route(
        &mut self,
        user: &UserId,
        msg: Message,
        now: Instant,
        limits: &Limits,
    ) -> Outcome {
        let Some((from, to)) = msg.route() else {
            return Outcome::err(ErrorCode::NotAllowed, "not a call message", None, true);
        };
        let call_id = msg.call_id();
        if from != user {
            tracing::warn!(user = %user, "forged from_user rejected");
            return Outcome::err(
                ErrorCode::ForgedSender,
                "from_user differs from your certificate",
                call_id,
                true,
            );
        }
        if to == user {
            return Outcome::err(
                ErrorCode::InvalidValue,
                "to_user is yourself",
                call_id,
                true,
            );
        }
        let to = to.clone();
        let Some(id) = call_id else {
            return Outcome::default();
        };
        match &msg {
            Message::CallInvite(_) => self.invite(user, &to, id, &msg, now, limits),
            Message::CallAnswer(_) => self.answer(user, &to, id, &msg, now, limits),
            Message::CallIceCandidate(_) | Message::CallHangup(_) | Message::CallReject(_) => {
                self.in_call(user, &to, id, &msg, now, limits)
            }
            Message::CallRelayFrame(_) => self.relay(user, &to, id, &msg, now, limits),
            _ => Outcome::default(),
        }
    }

    /// The callee answers a ringing call: it becomes active.
    fn answer(
        &mut self,
        user: &UserId,
        to: &UserId,
        id: CallId,
        msg: &Message,
        now: Instant,
        limits: &Limits,
    ) -> Outcome {
        let Some(c) = self.calls.get_mut(&id) else {
            return Outcome::err(ErrorCode::UnknownCall, "no such call", Some(id), false);
        };
        if &c.callee != user || c.caller != *to {
            return Outcome::err(
                ErrorCode::NotParticipant,
                "not the callee of this call",
                Some(id),
                true,
            );
        }
        if c.phase != CallPhase::Ringing {
            return Outcome::err(
                ErrorCode::CallNotActive,
                "call already answered",
                Some(id),
                false,
            );
        }
        c.phase = CallPhase::Active;
        c.answered = Some(now);
        // The relay buckets start full: one second's worth.
        c.relay = Bucket {
            frames: f64::from(limits.relay_frames_per_second),
            bytes: limits.relay_bytes_per_second as f64,
            at: now,
        };
        if let Some(p) = self.users.get_mut(to) {
            p.last_unanswered_invite = None;
        }
        tracing::info!(
            call_id = %id,
            caller = %c.caller,
            callee = %c.callee,
            ring_ms = u64::try_from(now.duration_since(c.created).as_millis()).unwrap_or(u64::MAX),
            "call answered"
        );
        Outcome {
            deliver: self.forward(to, msg).into_iter().collect(),
            ..Default::default()
        }
    }

    /// Candidates, hang-ups and rejections between the two users of a call.
    fn in_call(
        &mut self,
        user: &UserId,
        to: &UserId,
        id: CallId,
        msg: &Message,
        now: Instant,
        limits: &Limits,
    ) -> Outcome {
        // A busy callee's own answer to an invite the server
        // already refused busy (see `invite`): nothing to route.
        if let Message::CallReject(r) = &msg {
            if r.reason == RejectReason::Busy && !self.calls.contains_key(&id) {
                return Outcome::default();
            }
        }
        let Some(c) = self.calls.get_mut(&id) else {
            return Outcome::err(ErrorCode::UnknownCall, "no such call", Some(id), false);
        };
        if c.other(user) != Some(to) {
            return Outcome::err(
                ErrorCode::NotParticipant,
                "not a participant of this call",
                Some(id),
                true,
            );
        }
        match msg {
            Message::CallIceCandidate(_) if c.phase == CallPhase::Ringing => {
                let n = &mut c.ringing_candidates[usize::from(user == &c.callee)];
                if *n >= limits.max_ringing_candidates {
                    return Outcome::err(
                        ErrorCode::RateLimited,
                        "too many candidates while the call rings",
                        Some(id),
                        false,
                    );
                }
                *n += 1;
            }
            Message::CallReject(_) => {
                if &c.callee != user || c.phase != CallPhase::Ringing {
                    return Outcome::err(
                        ErrorCode::CallNotActive,
                        "only a ringing callee rejects",
                        Some(id),
                        false,
                    );
                }
                let reason = match msg {
                    Message::CallReject(r) => format!("rejected ({:?})", r.reason),
                    _ => "rejected".into(),
                };
                if let Some(c) = self.remove_call(&id) {
                    log_end(id, &c, &reason, now);
                }
                if let Some(p) = self.users.get_mut(to) {
                    p.last_unanswered_invite = None;
                }
            }
            Message::CallHangup(h) => {
                let outcome = match h.reason {
                    Some(r) => format!("hung up ({r:?})"),
                    None => "hung up".into(),
                };
                if let Some(c) = self.remove_call(&id) {
                    log_end(id, &c, &outcome, now);
                }
            }
            _ => {}
        }
        Outcome {
            deliver: self.forward(to, msg).into_iter().collect(),
            ..Default::default()
        }
    }

    /// A relayed media frame, within the call's budgets.
    fn relay(
        &mut self,
        user: &UserId,
        to: &UserId,
        id: CallId,
        msg: &Message,
        now: Instant,
        limits: &Limits,
    ) -> Outcome {
        let len = match msg {
            Message::CallRelayFrame(f) => f.encrypted_frame.as_str().len() * 3 / 4,
            _ => 0,
        };
        match self.relay_check(user, id, len, now, limits) {
            Ok(other) => {
                if other != *to {
                    return Outcome::err(
                        ErrorCode::NotParticipant,
                        "wrong to_user for this call",
                        Some(id),
                        true,
                    );
                }
                // A user in its reconnection grace gets no frames (none
                // are kept for later: media is only good now).
                if self.is_away(to) {
                    return Outcome::default();
                }
                Outcome {
                    deliver: self.forward(to, msg).into_iter().collect(),
                    ..Default::default()
                }
            }
            Err(o) => o,
        }
    }

    fn invite(
        &mut self,
        user: &UserId,
        to: &UserId,
        id: CallId,
        msg: &Message,
        now: Instant,
        limits: &Limits,
    ) -> Outcome {
        if self.calls.contains_key(&id) {
            return Outcome::err(
                ErrorCode::InvalidValue,
                "call_id already in use",
                Some(id),
                true,
            );
        }
        self.prune_stale(user, now, limits);
        self.prune_stale(to, now, limits);
        let Some(me) = self.users.get(user) else {
            return Outcome::default();
        };
        if let Some(t) = me
            .last_unanswered_invite
            .filter(|t| now.duration_since(*t) < limits.invite_interval)
        {
            // Said with the wait, so the caller can be told how long.
            let wait = limits.invite_interval.saturating_sub(now.duration_since(t));
            let wait_s = u32::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u32::MAX);
            tracing::info!(call_id = %id, from = %user, to = %to, wait_s, "invite refused: too soon after the last one");
            let m = Message::rate_limited(
                "one unanswered invite per interval",
                Some(id),
                wait_s.max(1),
            );
            return Outcome {
                deliver: self.forward(user, &m).into_iter().collect(),
                ..Default::default()
            };
        }
        // Only glare (a ringing call between the same two users) may coexist.
        let glare_ok = |calls: &HashMap<CallId, CallEntry>, ids: &[CallId]| {
            ids.iter().all(|x| {
                calls.get(x).is_some_and(|c| {
                    c.phase == CallPhase::Ringing
                        && c.other(user) == Some(to)
                        && c.other(to) == Some(user)
                })
            })
        };
        if !glare_ok(&self.calls, &me.calls) || me.calls.len() > 1 {
            return Outcome::err(
                ErrorCode::AlreadyInCall,
                "you are already in a call",
                Some(id),
                false,
            );
        }
        // A user in its grace with no call left is as good as offline.
        let callee = self
            .users
            .get(to)
            .filter(|p| p.away.is_none() || !p.calls.is_empty());
        let Some(callee) = callee else {
            tracing::info!(call_id = %id, from = %user, to = %to, "call refused: callee offline");
            return Outcome::err(
                ErrorCode::UserOffline,
                "user is not connected",
                Some(id),
                false,
            );
        };
        if !glare_ok(&self.calls, &callee.calls) || callee.calls.len() > 1 {
            let m = Message::CallReject(CallReject {
                call_id: id,
                from_user: to.clone(),
                to_user: user.clone(),
                reason: RejectReason::Busy,
            });
            // The busy callee's client hears of it too (it answers busy
            // itself and tells its user who tried).
            let deliver = self
                .forward(user, &m)
                .into_iter()
                .chain(self.forward(to, msg))
                .collect();
            tracing::info!(call_id = %id, from = %user, to = %to, "call refused: callee busy");
            return Outcome {
                deliver,
                ..Default::default()
            };
        }
        let fwd = self.forward(to, msg);
        self.calls.insert(
            id,
            CallEntry {
                caller: user.clone(),
                callee: to.clone(),
                phase: CallPhase::Ringing,
                created: now,
                relay: Bucket {
                    frames: 0.0,
                    bytes: 0.0,
                    at: now,
                },
                answered: None,
                relay_last: None,
                relay_used: Duration::ZERO,
                ringing_candidates: [0; 2],
            },
        );
        for u in [user, to] {
            if let Some(p) = self.users.get_mut(u) {
                p.calls.push(id);
            }
        }
        if let Some(p) = self.users.get_mut(user) {
            p.last_unanswered_invite = Some(now);
        }
        tracing::info!(call_id = %id, from = %user, to = %to, "call ringing: invite routed");
        Outcome {
            deliver: fwd.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Checks a relay frame of `len` bytes; returns the other participant.
    fn relay_check(
        &mut self,
        user: &UserId,
        id: CallId,
        len: usize,
        now: Instant,
        limits: &Limits,
    ) -> Result<UserId, Outcome> {
        let Some(c) = self.calls.get_mut(&id) else {
            return Err(Outcome::err(
                ErrorCode::UnknownCall,
                "relay frame for no call",
                Some(id),
                true,
            ));
        };
        let Some(other) = c.other(user).cloned() else {
            return Err(Outcome::err(
                ErrorCode::NotParticipant,
                "relay frame for someone else's call",
                Some(id),
                true,
            ));
        };
        if c.phase != CallPhase::Active {
            return Err(Outcome::err(
                ErrorCode::CallNotActive,
                "relay frame before answer",
                Some(id),
                true,
            ));
        }
        if let Some(last) = c.relay_last {
            let gap = now.saturating_duration_since(last);
            if gap <= RELAY_SPAN {
                c.relay_used += gap;
            }
        }
        c.relay_last = Some(now);
        if c.relay_used > limits.max_relay_duration {
            return Err(Outcome::err(
                ErrorCode::RelayLimit,
                "relay session time cap reached",
                Some(id),
                false,
            ));
        }
        let b = &mut c.relay;
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        let fps = f64::from(limits.relay_frames_per_second);
        let bps = limits.relay_bytes_per_second as f64;
        // Buckets refill at the cap rate and hold one second's worth.
        b.frames = (b.frames + dt * fps).min(fps);
        b.bytes = (b.bytes + dt * bps).min(bps);
        if b.frames < 1.0 || b.bytes < len as f64 {
            return Err(Outcome::err(
                ErrorCode::RelayLimit,
                "relay cap exceeded",
                Some(id),
                false,
            ));
        }
        b.frames -= 1.0;
        b.bytes -= len as f64;
        Ok(other)
    }

    /// Routes a binary relay frame, forwarding the same bytes.
    pub(crate) fn route_binary(
        &mut self,
        user: &UserId,
        frame: Bytes,
        now: Instant,
        limits: &Limits,
    ) -> Outcome {
        let (id, len) = match RelayFrame::parse(&frame) {
            Ok(f) => (f.call_id, f.frame.len()),
            Err(e) => return Outcome::err(e.code, "bad binary frame", None, true),
        };
        match self.relay_check(user, id, len, now, limits) {
            Ok(other) => {
                let deliver = self
                    .users
                    .get(&other)
                    .filter(|p| p.away.is_none())
                    .map(|p| (p.tx.clone(), Out::Binary(frame)))
                    .into_iter()
                    .collect();
                Outcome {
                    deliver,
                    ..Default::default()
                }
            }
            Err(o) => o,
        }
    }
}

/// Counts refusals within fixed one-second windows.
pub(crate) struct RefusalWindow {
    start: Instant,
    count: u64,
}

impl RefusalWindow {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
        }
    }

    /// Counts one refusal at `now`; returns the refusals in its window so far.
    pub(crate) fn refuse(&mut self, now: Instant) -> u64 {
        if now.saturating_duration_since(self.start) >= std::time::Duration::from_secs(1) {
            self.start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count
    }
}

/// A token bucket for a connection's message rate. It also counts the
/// messages it refused since the bucket was last full: a client that keeps
/// sending far over its budget earns strikes (see [`Limits::rate_strike_multiple`]).
pub(crate) struct RateLimiter {
    tokens: f64,
    at: Instant,
    rate: f64,
    burst: f64,
    refused: u64,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            at: now,
            rate: f64::from(rate),
            burst: f64::from(burst),
            refused: 0,
        }
    }

    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= self.burst {
            // The sender paused long enough to refill: forgive past excess.
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Messages refused since the bucket was last full.
    pub(crate) fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user(n: &str) -> UserId {
        UserId::new(n).unwrap()
    }

    fn send(d: Vec<(Tx, Out)>) {
        for (tx, out) in d {
            assert!(tx.try_send(out));
        }
    }

    fn received(rx: &mut Rx) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(Out::Text(t)) = rx.queue.try_recv() {
            v.push(t);
        }
        v
    }

    fn presence(u: &str, online: bool) -> String {
        Message::Presence(crate::wire::Presence {
            user: user(u),
            online,
        })
        .to_json()
    }

    #[test]
    fn presence_is_told_only_between_users_who_listed_each_other() {
        let mut hub = Hub::default();
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let mut rx = Vec::new();
        for (i, u) in [&alice, &bob, &carol].into_iter().enumerate() {
            let (tx, r, _kill) = channel(64, 1 << 20);
            send(hub.connect(u, i as u64 + 1, tx).1);
            rx.push(r);
        }
        send(hub.share_presence(&alice, vec![bob.clone()]));
        assert!(received(&mut rx[0]).is_empty(), "bob has not listed alice");
        // carol lists alice and bob; neither lists her.
        send(hub.share_presence(&carol, vec![alice.clone(), bob.clone()]));
        send(hub.share_presence(&bob, vec![alice.clone(), alice.clone()]));
        assert_eq!(received(&mut rx[0]), [presence("bob", true)]);
        assert_eq!(received(&mut rx[1]), [presence("alice", true)]);
        assert!(received(&mut rx[2]).is_empty());
        // The same list again says nothing new.
        send(hub.share_presence(&bob, vec![alice.clone()]));
        assert!(received(&mut rx[0]).is_empty());
        // bob leaves: alice is told, carol is not.
        send(hub.disconnect(&bob, 2, Instant::now(), Limits::default().reconnect_grace));
        assert_eq!(received(&mut rx[0]), [presence("bob", false)]);
        assert!(received(&mut rx[2]).is_empty());
        // bob back; then alice drops bob: bob stops seeing her.
        let (tx, r, _kill) = channel(64, 1 << 20);
        send(hub.connect(&bob, 4, tx).1);
        rx[1] = r;
        send(hub.share_presence(&bob, vec![alice.clone()]));
        assert_eq!(received(&mut rx[0]), [presence("bob", true)]);
        assert_eq!(received(&mut rx[1]), [presence("alice", true)]);
        send(hub.share_presence(&alice, Vec::new()));
        assert_eq!(received(&mut rx[1]), [presence("alice", false)]);
        send(hub.disconnect(&alice, 1, Instant::now(), Limits::default().reconnect_grace));
        assert!(received(&mut rx[1]).is_empty(), "alice no longer shares");
    }

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn msg(kind: &str, from: &str, to: &str, extra: &str) -> Message {
        Message::parse(&format!(
            r#"{{"type":"{kind}","call_id":"{ID}","from_user":"{from}","to_user":"{to}"{extra}}}"#
        ))
        .unwrap()
    }

    fn relay_frame() -> Bytes {
        RelayFrame {
            call_id: ID.parse().unwrap(),
            seq: 1,
            frame: &[1, 2, 3],
        }
        .to_vec()
        .into()
    }

    /// Everything queued for a connection, text and frames.
    fn queued(rx: &mut Rx) -> Vec<Out> {
        let mut v = Vec::new();
        while let Some(o) = rx.try_recv() {
            v.push(o);
        }
        v
    }

    fn kinds(rx: &mut Rx) -> Vec<String> {
        queued(rx)
            .into_iter()
            .map(|o| match o {
                Out::Text(t) => {
                    let kind = serde_json::from_str::<serde_json::Value>(&t).unwrap()["type"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    match Message::parse(&t).unwrap() {
                        Message::CallHangup(h) => format!("call_hangup {:?}", h.reason),
                        _ => kind,
                    }
                }
                Out::Binary(_) => "binary".into(),
                Out::Close(..) => "close".into(),
            })
            .collect()
    }

    /// alice (conn 1) called bob (conn 2) and bob answered at `t0`.
    fn answered_call(hub: &mut Hub, limits: &Limits, t0: Instant) -> (Rx, Rx) {
        let (alice, bob) = (user("alice"), user("bob"));
        let (ta, mut ra, _) = channel(64, 1 << 20);
        let (tb, mut rb, _) = channel(64, 1 << 20);
        send(hub.connect(&alice, 1, ta).1);
        send(hub.connect(&bob, 2, tb).1);
        invite_and_answer(hub, limits, t0);
        assert_eq!(kinds(&mut rb), ["call_invite"]);
        assert_eq!(kinds(&mut ra), ["call_answer"]);
        (ra, rb)
    }

    /// alice invites bob (both known to the hub) and he answers at `t0`.
    fn invite_and_answer(hub: &mut Hub, limits: &Limits, t0: Instant) {
        let (alice, bob) = (user("alice"), user("bob"));
        let invite = msg(
            "call_invite",
            "alice",
            "bob",
            r#","encrypted_payload":"0:AAEC""#,
        );
        send(hub.route(&alice, invite, t0, limits).deliver);
        let answer = msg(
            "call_answer",
            "bob",
            "alice",
            r#","encrypted_payload":"1:AAEC""#,
        );
        send(hub.route(&bob, answer, t0, limits).deliver);
    }

    /// alice, on another node, called bob (here) and he answered at `t0`;
    /// bob's relay frames pass at `relayed` (from `t0`); alice's node dies
    /// at `lost`. Returns what bob was told.
    fn node_lost_after_relay(relayed: &[Duration], lost: Duration) -> Vec<String> {
        let (mut hub, limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        let (alice, bob) = (user("alice"), user("bob"));
        let (ta, _ra, _) = channel(64, 1 << 20);
        let (tb, mut rb, _) = channel(64, 1 << 20);
        assert!(hub.connect_remote(&alice, ta));
        send(hub.connect(&bob, 2, tb).1);
        invite_and_answer(&mut hub, &limits, t0);
        for d in relayed {
            let o = hub.route_binary(&bob, relay_frame(), t0 + *d, &limits);
            assert!(o.error.is_none());
        }
        kinds(&mut rb);
        send(hub.remote_lost(&alice, t0 + lost));
        assert_eq!(hub.call_count(), 0);
        kinds(&mut rb)
    }

    #[test]
    fn a_call_that_left_the_relay_for_its_pair_survives_the_peers_node() {
        // Every call starts on the relay while ICE checks run.
        let start: Vec<Duration> = (0..10).map(|i| Duration::from_millis(20 * i)).collect();
        let told = node_lost_after_relay(&start, Duration::from_secs(60));
        assert!(told.is_empty(), "{told:?}");
        // Still relaying when the node went: it ends.
        let late = [Duration::from_secs(58), Duration::from_secs(59)];
        let told = node_lost_after_relay(&late, Duration::from_secs(60));
        assert_eq!(told, ["call_hangup Some(PeerDisconnected)"]);
    }

    #[test]
    fn the_relay_cap_counts_relaying_time_not_time_since_the_first_frame() {
        let (mut hub, mut limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        limits.max_relay_duration = Duration::from_secs(1);
        let (alice, bob) = (user("alice"), user("bob"));
        let (_ra, _rb) = answered_call(&mut hub, &limits, t0);
        let frames =
            |from: Instant, n: u32| (0..n).map(move |i| from + Duration::from_millis(20) * i);
        // 0.6 s on the relay at the start, then an hour on the pair.
        for t in frames(t0, 30) {
            assert!(hub
                .route_binary(&alice, relay_frame(), t, &limits)
                .error
                .is_none());
        }
        // Back on the relay for a blackout: 0.4 s more is within the cap.
        let back = t0 + Duration::from_secs(3600);
        for t in frames(back, 20) {
            assert!(hub
                .route_binary(&bob, relay_frame(), t, &limits)
                .error
                .is_none());
        }
        // Past it now.
        let refused = frames(back + Duration::from_millis(400), 10)
            .map(|t| hub.route_binary(&bob, relay_frame(), t, &limits).error)
            .find(Option::is_some)
            .flatten();
        assert_eq!(refused.map(|e| e.0), Some(ErrorCode::RelayLimit));
    }

    #[test]
    fn a_user_back_within_the_grace_gets_its_call_and_what_came_meanwhile() {
        let (mut hub, limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        let (alice, bob) = (user("alice"), user("bob"));
        let (_ra, mut rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        assert!(kinds(&mut rb).is_empty(), "bob is told nothing yet");
        assert_eq!(hub.call_count(), 1);
        // bob's ICE restart waits for alice; his relay frames do not.
        let restart = msg(
            "call_ice_candidate",
            "bob",
            "alice",
            r#","encrypted_candidate":"1:AAEC""#,
        );
        let o = hub.route(&bob, restart, t0 + Duration::from_secs(1), &limits);
        assert!(o.error.is_none());
        send(o.deliver);
        let o = hub.route_binary(&bob, relay_frame(), t0 + Duration::from_secs(1), &limits);
        assert!(o.error.is_none() && o.deliver.is_empty());
        // alice logs in again 19 s later: the call is hers again.
        let back = t0 + Duration::from_secs(19);
        let (ta, mut ra, _) = channel(64, 1 << 20);
        let (replaced, deliver) = hub.connect(&alice, 3, ta);
        assert!(replaced.is_none(), "nothing to close: alice was away");
        send(deliver);
        assert_eq!(kinds(&mut ra), ["call_ice_candidate"]);
        assert!(kinds(&mut rb).is_empty());
        send(hub.expire(back + Duration::from_secs(30), &limits));
        assert!(kinds(&mut rb).is_empty(), "no grace left to expire");
        assert_eq!(hub.call_count(), 1);
        // Frames flow to the new connection again.
        let o = hub.route_binary(&bob, relay_frame(), back, &limits);
        send(o.deliver);
        assert_eq!(kinds(&mut ra), ["binary"]);
    }

    #[test]
    fn the_call_ends_with_peer_disconnected_when_the_grace_runs_out() {
        let (mut hub, limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        let (alice, bob) = (user("alice"), user("bob"));
        let (_ra, mut rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        send(hub.expire(t0 + Duration::from_secs(19), &limits));
        assert!(kinds(&mut rb).is_empty());
        send(hub.expire(t0 + Duration::from_secs(20), &limits));
        assert_eq!(kinds(&mut rb), ["call_hangup Some(PeerDisconnected)"]);
        assert_eq!(hub.call_count(), 0);
        // alice is gone for good: a new call to her finds her offline.
        let invite = msg(
            "call_invite",
            "bob",
            "alice",
            r#","encrypted_payload":"0:AAEC""#,
        );
        let o = hub.route(&bob, invite, t0 + Duration::from_secs(21), &limits);
        assert_eq!(o.error.map(|e| e.0), Some(ErrorCode::UserOffline));
    }

    #[test]
    fn a_hangup_goes_to_the_new_connection_held_or_not() {
        let (mut hub, limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        let (alice, bob) = (user("alice"), user("bob"));
        // After the new login: straight to it, not to the old one.
        let (mut ra, _rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        let (ta, mut ra2, _) = channel(64, 1 << 20);
        send(hub.connect(&alice, 3, ta).1);
        let hangup = msg("call_hangup", "bob", "alice", "");
        send(hub.route(&bob, hangup.clone(), t0, &limits).deliver);
        assert_eq!(kinds(&mut ra2), ["call_hangup None"]);
        assert!(kinds(&mut ra).is_empty());
        assert_eq!(hub.call_count(), 0);

        // Before the new login: held, and given to it first.
        let mut hub = Hub::default();
        let (_ra, _rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        send(hub.route(&bob, hangup, t0, &limits).deliver);
        assert_eq!(hub.call_count(), 0);
        let (ta, mut ra2, _) = channel(64, 1 << 20);
        send(hub.connect(&alice, 3, ta).1);
        assert_eq!(kinds(&mut ra2), ["call_hangup None"]);
    }

    #[test]
    fn a_login_replacing_a_live_connection_takes_the_answered_call_along() {
        let (mut hub, limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        let (alice, bob) = (user("alice"), user("bob"));
        let (_ra, mut rb) = answered_call(&mut hub, &limits, t0);
        let (ta, mut ra2, _) = channel(64, 1 << 20);
        let (replaced, deliver) = hub.connect(&alice, 3, ta);
        assert!(replaced.is_some(), "the old connection is closed");
        assert!(deliver.is_empty(), "bob's call goes on");
        // The old connection's end changes nothing.
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        assert!(kinds(&mut rb).is_empty());
        send(
            hub.route(&bob, msg("call_hangup", "bob", "alice", ""), t0, &limits)
                .deliver,
        );
        assert_eq!(kinds(&mut ra2), ["call_hangup None"]);
    }

    #[test]
    fn a_ringing_call_ends_at_once_and_a_zero_grace_ends_answered_ones_too() {
        let (mut hub, t0) = (Hub::default(), Instant::now());
        let limits = Limits::default();
        let (alice, bob) = (user("alice"), user("bob"));
        let (ta, _ra, _) = channel(64, 1 << 20);
        let (tb, mut rb, _) = channel(64, 1 << 20);
        send(hub.connect(&alice, 1, ta).1);
        send(hub.connect(&bob, 2, tb).1);
        let invite = msg(
            "call_invite",
            "alice",
            "bob",
            r#","encrypted_payload":"0:AAEC""#,
        );
        send(hub.route(&alice, invite, t0, &limits).deliver);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        assert_eq!(
            kinds(&mut rb),
            ["call_invite", "call_hangup Some(PeerDisconnected)"]
        );
        assert_eq!(hub.call_count(), 0);

        let mut hub = Hub::default();
        let limits = Limits {
            reconnect_grace: Duration::ZERO,
            ..Limits::default()
        };
        let (_ra, mut rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        assert_eq!(kinds(&mut rb), ["call_hangup Some(PeerDisconnected)"]);
    }

    #[test]
    fn a_user_who_moved_to_another_node_leaves_its_calls_going_without_a_word() {
        let (mut hub, limits, t0) = (Hub::default(), Limits::default(), Instant::now());
        let (alice, bob) = (user("alice"), user("bob"));
        let (_ra, mut rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        assert!(!hub.moved_elsewhere(&alice, 7).0, "not her connection");
        let (moved, deliver) = hub.moved_elsewhere(&alice, 1);
        assert!(moved);
        send(deliver);
        assert!(kinds(&mut rb).is_empty());
        assert_eq!(hub.call_count(), 0);
        send(hub.expire(t0 + Duration::from_secs(30), &limits));
        assert!(kinds(&mut rb).is_empty(), "no grace left to end");
        assert!(hub.take_gone().is_empty());
        // A connection still up moves the same way.
        let mut hub = Hub::default();
        let (_ra, mut rb) = answered_call(&mut hub, &limits, t0);
        send(hub.moved_elsewhere(&alice, 1).1);
        assert!(kinds(&mut rb).is_empty());
        assert_eq!(hub.call_count(), 0);
        // The grace running out is noted for the cluster.
        let mut hub = Hub::default();
        let (_ra, _rb) = answered_call(&mut hub, &limits, t0);
        send(hub.disconnect(&alice, 1, t0, limits.reconnect_grace));
        send(hub.expire(t0 + Duration::from_secs(21), &limits));
        assert_eq!(hub.take_gone(), [(alice.clone(), 1)]);
        let _ = bob;
    }
}
