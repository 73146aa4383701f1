//! Cluster mode: several nodes share presence and carry call messages and
//! relay frames between them through Redis 7.
//!
//! ```text
//!  alice ── node A ──PUBLISH cc:c:B──> Redis ──> node B ── bob
//!           hub A: alice (local), bob (proxy to B)
//!           hub B: bob (local), alice (proxy to A)
//! ```
//!
//! Each node's hub keeps its own view of the calls of its users: a user on
//! another node is a *proxy* peer whose queue is published to that node's
//! channel; the receiving node routes the message through its own hub as
//! if the proxy had sent it, so every check (participants, phases, relay
//! caps) runs on both sides.
//!
//! Redis keys (one Redis 7 instance):
//!
//! | key | value | life |
//! |---|---|---|
//! | `cc:u:<user>` | `<node> <conn_id>`: where the user's newest login is | until that connection ends (compare-and-delete) |
//! | `cc:n:<node>` | `1`: the node is alive | 3 s, renewed every second |
//! | channel `cc:c:<node>` | envelopes for that node | |
//!
//! A login claims `cc:u:<user>` (`SET ... GET`); if the previous value names
//! another node, that node is told to end the older connection, so a user
//! keeps only the newest connection cluster-wide. A user whose connection
//! dropped during an answered call keeps its `cc:u` key for the hub's
//! reconnection grace: a login on another node meanwhile tells this node,
//! which then forgets the user's calls without a word (they go on peer to
//! peer, and on the new node when the peer is there: a proxy's answered
//! calls pass to the local login); the sweep removes the key when the
//! grace ends. When a node's `cc:n` key
//! expires (the node died), the others end its users' ringing and relayed
//! calls with `peer_disconnected` within about four seconds; answered
//! calls with no relay frame in the last 3 s (every call starts on the
//! relay and leaves it for its ICE pair) flow peer to peer and go on.
//!
//! Envelopes between nodes: [`crate::envelope`] (fuzzed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands as _;

use super::hub::{self, Out};
use super::{deliver, Shared};
use crate::envelope::encode;
use crate::wire::{ErrorCode, Message, UserId};
use crate::{Cause, Error};

/// How long a node's liveness key lives without renewal.
const NODE_TTL: Duration = Duration::from_secs(3);
/// How often a node renews its key and checks the nodes it has proxies to.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Most envelopes queued for one remote user before the oldest are dropped.
const PROXY_QUEUE: usize = 1024;
/// Most bytes waiting to be published to one node; envelopes beyond are
/// dropped (Redis is not keeping up: they would be late anyway).
const OUTBOX_BYTES: usize = 4 * 1024 * 1024;

/// Cluster settings (`Debug` leaves out the URL's password).
#[derive(Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// `redis://HOST:PORT`.
    pub redis_url: String,
    /// This node's name, unique in the cluster (letters, digits, `-`, `_`, `.`).
    pub node_id: String,
    /// For `rediss://`: the CA (PEM) that Redis' certificate chains to;
    /// `None`: the system's trusted roots.
    pub redis_ca_pem: Option<String>,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // redis://user:password@host:port: keep what follows the last '@'.
        let (scheme, rest) = self
            .redis_url
            .split_once("://")
            .unwrap_or(("", &self.redis_url));
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        f.debug_struct("ClusterConfig")
            .field("redis", &format_args!("{scheme}://{host}"))
            .field("node_id", &self.node_id)
            .field("redis_ca_pem", &self.redis_ca_pem.as_ref().map(|_| "…"))
            .finish()
    }
}

impl ClusterConfig {
    /// A node named `node_id` on the Redis at `redis_url`.
    pub fn new(redis_url: impl Into<String>, node_id: impl Into<String>) -> Result<Self, Error> {
        let node_id = node_id.into();
        let ok = !node_id.is_empty()
            && node_id.len() <= 64
            && node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(Error::Config(Cause::new(
                "a node id is 1 to 64 letters, digits, '-', '_' or '.'",
            )));
        }
        Ok(Self {
            redis_url: redis_url.into(),
            node_id,
            redis_ca_pem: None,
        })
    }

    /// Redis' TLS certificate (`rediss://`) chains to the CA `pem`.
    pub fn with_redis_ca(mut self, pem: String) -> Self {
        self.redis_ca_pem = Some(pem);
        self
    }
}

fn redis_err(what: &str, e: redis::RedisError) -> Error {
    Error::Database(Cause::because(format!("redis: {what}"), e))
}

/// A node's link to Redis.
pub(crate) struct Cluster {
    node: String,
    client: redis::Client,
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
    reconnecting: tokio::sync::Mutex<()>,
    /// Remote users with a proxy in the hub, and their node.
    proxies: Mutex<HashMap<UserId, String>>,
    /// What waits to be published to each other node.
    outboxes: Mutex<HashMap<String, Arc<Outbox>>>,
}

/// Envelopes waiting to be published to one node, as one batch
/// ([`crate::envelope::batch`]): every proxy of a user on that node
/// appends here, and the node's publisher task sends what accumulated in
/// one `PUBLISH` while the previous one was on its way.
struct Outbox {
    batch: Mutex<Vec<u8>>,
    ready: tokio::sync::Notify,
    /// The node is gone: the publisher task ends.
    closed: std::sync::atomic::AtomicBool,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Appends are single steps: a poisoned lock is consistent.
        self.batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn user_key(u: &UserId) -> String {
    format!("cc:u:{u}")
}
fn node_key(n: &str) -> String {
    format!("cc:n:{n}")
}
fn channel(n: &str) -> String {
    format!("cc:c:{n}")
}

/// Deletes `cc:u:<user>` only if it still names this connection.
const RELEASE: &str =
    r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl Cluster {
    /// Connects to Redis (the first connection must succeed: a node that
    /// cannot reach Redis at start does not start).
    pub(crate) async fn connect(config: &ClusterConfig) -> Result<Arc<Cluster>, Error> {
        // TLS to Redis (`rediss://`) runs on the rustls and ring the server
        // already uses (a no-op when a provider is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match &config.redis_ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                config.redis_url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone().into_bytes()),
                },
            ),
            None => redis::Client::open(config.redis_url.as_str()),
        }
        .map_err(|e| redis_err("bad --cluster URL", e))?;
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| Error::Database(Cause::new("redis: no answer within 5 s")))?
        .map_err(|e| redis_err("cannot connect", e))?;
        Ok(Arc::new(Cluster {
            node: config.node_id.clone(),
            client,
            conn: Mutex::new(Some(conn)),
            reconnecting: tokio::sync::Mutex::new(()),
            proxies: Mutex::new(HashMap::new()),
            outboxes: Mutex::new(HashMap::new()),
        }))
    }

    /// A connection, made again after a failure (Redis restarted).
    async fn conn(&self) -> Result<redis::aio::MultiplexedConnection, Error> {
        if let Some(c) = self.lock_conn().clone() {
            return Ok(c);
        }
        // One task reconnects; the others wait for its connection.
        let _one = self.reconnecting.lock().await;
        if let Some(c) = self.lock_conn().clone() {
            return Ok(c);
        }
        let c = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| Error::Database(Cause::new("redis: no answer within 2 s")))?
        .map_err(|e| redis_err("cannot reconnect", e))?;
        *self.lock_conn() = Some(c.clone());
        Ok(c)
    }

    fn lock_conn(&self) -> std::sync::MutexGuard<'_, Option<redis::aio::MultiplexedConnection>> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn proxies(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, String>> {
        self.proxies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs one Redis command; a failure drops the connection so that the
    /// next command reconnects.
    async fn run<T, F, Fut>(&self, what: &str, f: F) -> Result<T, Error>
    where
        F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let c = self.conn().await?;
        match tokio::time::timeout(Duration::from_secs(2), f(c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    *self.lock_conn() = None;
                }
                Err(redis_err(what, e))
            }
            // Slow is not broken: the connection stays (dropping it would
            // make every waiting task reconnect at once).
            Err(_) => Err(Error::Database(Cause::new(format!(
                "redis: {what} timed out"
            )))),
        }
    }

    /// Records `user`'s newest login here; tells the node of an older one
    /// (if another node) to end it.
    pub(crate) async fn claim(&self, user: &UserId, conn_id: u64) -> Result<(), Error> {
        let key = user_key(user);
        let me = format!("{} {conn_id}", self.node);
        let old: Option<String> = self
            .run("presence", |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&me)
                    .arg("GET")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if let Some((node, conn)) = old.as_deref().and_then(|o| o.split_once(' ')) {
            if node != self.node {
                self.publish(node, b'K', user, conn.as_bytes()).await?;
            }
        }
        Ok(())
    }

    /// Forgets `user`'s login if it is still this connection; `true` if it was.
    pub(crate) async fn release(&self, user: &UserId, conn_id: u64) -> Result<bool, Error> {
        let key = user_key(user);
        let me = format!("{} {conn_id}", self.node);
        self.run("presence", |mut c| async move {
            redis::Script::new(RELEASE)
                .key(&key)
                .arg(&me)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|n| n == 1)
    }

    /// The live node (other than this one) where `user` is logged in.
    async fn locate(&self, user: &UserId) -> Result<Option<String>, Error> {
        let key = user_key(user);
        let v: Option<String> = self
            .run("presence", |mut c| async move { c.get(&key).await })
            .await?;
        let Some(node) = v.and_then(|v| v.split_once(' ').map(|(n, _)| n.to_owned())) else {
            return Ok(None);
        };
        if node == self.node {
            return Ok(None);
        }
        let alive_key = node_key(&node);
        let alive: bool = self
            .run(
                "liveness",
                |mut c| async move { c.exists(&alive_key).await },
            )
            .await?;
        Ok(alive.then_some(node))
    }

    /// The outbox of `node`, made (with its publisher task) on first use.
    fn outbox(self: &Arc<Self>, node: &str) -> Arc<Outbox> {
        let mut boxes = self
            .outboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = boxes.get(node) {
            return b.clone();
        }
        let b = Arc::new(Outbox {
            batch: Mutex::new(Vec::new()),
            ready: tokio::sync::Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        boxes.insert(node.to_owned(), b.clone());
        let (cluster, outbox, ch) = (self.clone(), b.clone(), channel(node));
        tokio::spawn(async move {
            loop {
                outbox.ready.notified().await;
                if outbox.closed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let batch = std::mem::take(&mut *outbox.lock());
                if batch.is_empty() {
                    continue;
                }
                let ch = ch.clone();
                let r = cluster
                    .run("publish", |mut c| async move {
                        redis::cmd("PUBLISH")
                            .arg(ch)
                            .arg(batch)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "messages for another node were lost");
                }
            }
        });
        b
    }

    /// Forgets the outbox of a node that died (its publisher task ends).
    fn drop_outbox(&self, node: &str) {
        let b = self
            .outboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(node);
        if let Some(b) = b {
            b.closed.store(true, std::sync::atomic::Ordering::Relaxed);
            b.ready.notify_one();
        }
    }

    async fn publish(
        &self,
        node: &str,
        kind: u8,
        to: &UserId,
        payload: &[u8],
    ) -> Result<(), Error> {
        let env = encode(kind, to, &self.node, payload);
        let ch = channel(node);
        let _receivers: i64 = self
            .run("publish", |mut c| async move { c.publish(&ch, env).await })
            .await?;
        Ok(())
    }
}

/// Stores a publish (see `keydir`); keeps the newest
/// [`super::keydir::MAX_ONE_TIME_KEYS`]; a new identity key drops the old
/// one-time keys. Returns the number of unclaimed one-time keys.
const PUBLISH_KEYS: &str = r"
local old = redis.call('HGET', KEYS[1], 'ik')
if old and old ~= ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'ik', ARGV[1], 'sk', ARGV[2], 'isig', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'fk', ARGV[4]) end
for i = 6, #ARGV do
  redis.call('LREM', KEYS[2], 0, ARGV[i])
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
local n = redis.call('LLEN', KEYS[2])
local max = tonumber(ARGV[5])
if n > max then redis.call('LTRIM', KEYS[2], n - max, -1) n = max end
return n";

/// Claims a bundle in one step: the oldest one-time key (`LPOP`: handed out
/// once, whichever node asks) or, when none is left or `ARGV[1]` is `0`,
/// the fallback key.
const CLAIM_KEYS: &str = r"
local id = redis.call('HMGET', KEYS[1], 'ik', 'sk', 'isig', 'fk')
if not id[1] then return false end
if ARGV[1] == '1' then
  local otk = redis.call('LPOP', KEYS[2])
  if otk then return {id[1], id[2], id[3], otk, '0'} end
end
if id[4] then return {id[1], id[2], id[3], id[4], '1'} end
return false";

/// The key directory's keys of `user` (one hash slot: the user is the tag).
fn key_keys(user: &UserId) -> (String, String) {
    (format!("cc:k:{{{user}}}"), format!("cc:o:{{{user}}}"))
}

impl Cluster {
    /// Stores a user's keys in Redis (the cluster's key directory).
    /// `Ok(None)` when a signature does not verify.
    pub(crate) async fn publish_keys(
        &self,
        user: &UserId,
        p: &crate::wire::KeysPublish,
    ) -> Result<Option<u32>, Error> {
        if !super::keydir::publish_verifies(p) {
            return Ok(None);
        }
        let (id, otk) = key_keys(user);
        let signed = |k: &crate::wire::SignedKey| {
            format!("{} {}", k.key.to_base64(), k.signature.to_base64())
        };
        let publish = redis::Script::new(PUBLISH_KEYS);
        let mut script = publish.prepare_invoke();
        script
            .key(id)
            .key(otk)
            .arg(p.identity_key.to_base64())
            .arg(p.signing_key.to_base64())
            .arg(p.identity_signature.to_base64())
            .arg(p.fallback_key.as_ref().map(signed).unwrap_or_default())
            .arg(super::keydir::MAX_ONE_TIME_KEYS);
        for k in &p.one_time_keys {
            script.arg(signed(k));
        }
        let n: u32 = self
            .run("keys_publish", |mut c| async move {
                script.invoke_async(&mut c).await
            })
            .await?;
        Ok(Some(n))
    }

    /// Claims a bundle of `user` (see `keydir::KeyDirectory::claim`).
    pub(crate) async fn claim_keys(
        &self,
        user: &UserId,
        one_time: bool,
    ) -> Result<Option<crate::wire::KeysBundle>, Error> {
        use crate::wire::{B64Bytes, KeysBundle, SignedKey};
        let (id, otk) = key_keys(user);
        let r: Option<Vec<String>> = self
            .run("keys_fetch", |mut c| async move {
                redis::Script::new(CLAIM_KEYS)
                    .key(id)
                    .key(otk)
                    .arg(if one_time { "1" } else { "0" })
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let Some(r) = r else {
            return Ok(None);
        };
        let bad = || Error::Database(Cause::new("redis: a stored key is malformed"));
        let [ik, sk, isig, signed, fallback] = <[String; 5]>::try_from(r).map_err(|_| bad())?;
        let (key, sig) = signed.split_once(' ').ok_or_else(bad)?;
        fn b64<const N: usize>(s: &str) -> Result<B64Bytes<N>, Error> {
            B64Bytes::from_base64(s)
                .map_err(|_| Error::Database(Cause::new("redis: a stored key is malformed")))
        }
        Ok(Some(KeysBundle {
            user: user.clone(),
            identity_key: b64(&ik)?,
            signing_key: b64(&sk)?,
            identity_signature: b64(&isig)?,
            one_time_key: SignedKey {
                key: b64(key)?,
                signature: b64(sig)?,
            },
            fallback: fallback == "1",
        }))
    }
}

/// The key-directory quotas, counted in Redis so that they hold across
/// nodes (a requester gets the same quota whichever node it reaches).
/// Each counter is a key that lives one `key_window` from its first use.
///
/// | key | counts |
/// |---|---|
/// | `cc:q:{<requester>}:f` | fetches by the requester |
/// | `cc:q:{<requester>}:t:<target>` | fetches of one target by the requester |
/// | `cc:q:{<target>}:c` | one-time keys claimed from the target |
/// | `cc:q:{<user>}:p` | key publishes by the user |
///
/// Each script touches the keys of one user only (one hash slot).
const QUOTA_FETCH: &str = r"
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i + 1]) then return 0 end
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1";

/// Counts one use of `KEYS[1]` unless it reached `ARGV[2]`; 1 if counted.
const QUOTA_BUMP: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[2]) then return 0 end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1";

/// Gives back one use of each key (never below zero, never making a key
/// without a life).
const QUOTA_REFUND: &str = r"
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 0";

impl Cluster {
    async fn quota_script(
        &self,
        script: &'static str,
        keys: Vec<String>,
        window: Duration,
        caps: &[u32],
    ) -> Result<bool, Error> {
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let caps = caps.to_vec();
        let n: i64 = self
            .run("quota", |mut c| async move {
                let s = redis::Script::new(script);
                let mut inv = s.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(ms);
                for cap in caps {
                    inv.arg(cap);
                }
                inv.invoke_async(&mut c).await
            })
            .await?;
        Ok(n == 1)
    }

    /// Decides a `keys_fetch` cluster-wide (see `quota::KeyQuota::fetch`).
    pub(crate) async fn quota_fetch(
        &self,
        requester: &UserId,
        target: &UserId,
        limits: &super::Limits,
    ) -> Result<super::quota::Fetch, Error> {
        use super::quota::Fetch;
        let keys = vec![
            format!("cc:q:{{{requester}}}:f"),
            format!("cc:q:{{{requester}}}:t:{target}"),
        ];
        let caps = [
            limits.key_fetches_per_requester,
            limits.key_fetches_per_target,
        ];
        if !self
            .quota_script(QUOTA_FETCH, keys, limits.key_window, &caps)
            .await?
        {
            return Ok(Fetch::Refuse);
        }
        let claim = vec![format!("cc:q:{{{target}}}:c")];
        let cap = [limits.one_time_keys_per_target];
        Ok(
            match self
                .quota_script(QUOTA_BUMP, claim, limits.key_window, &cap)
                .await
            {
                Ok(true) => Fetch::OneTimeKey,
                // Rationed, or unknown: the fallback key uses nothing up.
                _ => Fetch::FallbackOnly,
            },
        )
    }

    /// Gives back what [`Cluster::quota_fetch`] counted.
    pub(crate) async fn quota_refund(
        &self,
        requester: &UserId,
        target: &UserId,
        decided: super::quota::Fetch,
    ) -> Result<(), Error> {
        let keys = vec![
            format!("cc:q:{{{requester}}}:f"),
            format!("cc:q:{{{requester}}}:t:{target}"),
        ];
        self.quota_script(QUOTA_REFUND, keys, Duration::ZERO, &[])
            .await?;
        if decided == super::quota::Fetch::OneTimeKey {
            let keys = vec![format!("cc:q:{{{target}}}:c")];
            self.quota_script(QUOTA_REFUND, keys, Duration::ZERO, &[])
                .await?;
        }
        Ok(())
    }

    /// Counts a `keys_publish` by `user` cluster-wide; `false` when over quota.
    pub(crate) async fn quota_publish(
        &self,
        user: &UserId,
        limits: &super::Limits,
    ) -> Result<bool, Error> {
        let keys = vec![format!("cc:q:{{{user}}}:p")];
        let cap = [limits.key_publishes_per_user];
        self.quota_script(QUOTA_BUMP, keys, limits.key_window, &cap)
            .await
    }
}

/// `cc:p:{<user>}`: the presence list of a logged-in user who set one,
/// `<node>` on the first line, then one contact a line.
fn presence_key(u: &UserId) -> String {
    format!("cc:p:{{{u}}}")
}

impl Cluster {
    /// Records `user`'s presence list (on this node) for the other nodes.
    async fn store_presence(&self, user: &UserId, contacts: &[UserId]) -> Result<(), Error> {
        let mut v = self.node.clone();
        for c in contacts {
            v.push('\n');
            v.push_str(c.as_str());
        }
        let key = presence_key(user);
        self.run("presence list", |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(v)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// For each of `users`: the live node (not this one) where it is logged
    /// in with a presence list, and whether that list names `about`.
    async fn remote_listings(
        &self,
        users: &[UserId],
        about: &UserId,
    ) -> Result<Vec<(UserId, String, bool)>, Error> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = redis::pipe();
        for u in users {
            p.cmd("GET").arg(presence_key(u));
        }
        let lists: Vec<Option<String>> = self
            .run("presence list", |mut c| async move {
                p.query_async(&mut c).await
            })
            .await?;
        let mut found = Vec::new();
        for (u, list) in users.iter().zip(lists) {
            let Some(list) = list else { continue };
            let mut lines = list.lines();
            let Some(node) = lines.next().filter(|n| *n != self.node) else {
                continue;
            };
            let lists_about = lines.any(|l| l == about.as_str());
            found.push((u.clone(), node.to_owned(), lists_about));
        }
        let mut nodes: Vec<String> = found.iter().map(|f| f.1.clone()).collect();
        nodes.sort();
        nodes.dedup();
        let mut p = redis::pipe();
        for n in &nodes {
            p.cmd("EXISTS").arg(node_key(n));
        }
        let alive: Vec<bool> = self
            .run(
                "liveness",
                |mut c| async move { p.query_async(&mut c).await },
            )
            .await?;
        let dead: Vec<&String> = nodes
            .iter()
            .zip(alive)
            .filter(|(_, a)| !a)
            .map(|(n, _)| n)
            .collect();
        found.retain(|f| !dead.contains(&&f.1));
        Ok(found)
    }

    /// Tells `node` that `about` is online or not, for its user `to` (who
    /// hears it only if it lists `about`).
    fn presence_news(self: &Arc<Self>, node: &str, to: &UserId, about: &UserId, online: bool) {
        let payload = format!("{} {about}", u8::from(online));
        let outbox = self.outbox(node);
        crate::envelope::push(&mut outbox.lock(), b'P', to, &self.node, payload.as_bytes());
        outbox.ready.notify_one();
    }
}

/// `user` (on this node) set its presence list from `old` to `new` (the
/// hub told the users of this node already): records it in Redis, tells
/// the nodes of contacts dropped from it, and, between `user` and each new
/// contact on another node who lists `user`, tells both.
pub(super) async fn share_presence(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    user: &UserId,
    old: &[UserId],
    new: &[UserId],
) {
    if let Err(e) = cluster.store_presence(user, new).await {
        tracing::warn!(error = %e, "cluster: presence list not shared with other nodes");
        return;
    }
    let not_local = |c: &&UserId| shared.hub().local(c).is_none();
    let changed: Vec<UserId> = old
        .iter()
        .filter(|c| !new.contains(c))
        .chain(new.iter().filter(|c| !old.contains(c)))
        .filter(not_local)
        .cloned()
        .collect();
    let found = match cluster.remote_listings(&changed, user).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: presence of other nodes' users unknown");
            return;
        }
    };
    let Some((_, me)) = shared.hub().local(user) else {
        return;
    };
    for (c, node, lists_me) in found {
        let online = new.contains(&c);
        if online && lists_me {
            let m = Message::Presence(crate::wire::Presence {
                user: c.clone(),
                online: true,
            });
            me.try_send(Out::Text(m.to_json()));
        }
        if !online || lists_me {
            cluster.presence_news(&node, &c, user, online);
        }
    }
}

/// `user`'s connection here ended (the hub told this node's users):
/// forgets its login and presence list, and tells the nodes of its
/// contacts, unless a newer login of `user` took over meanwhile.
pub(super) async fn logout(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    user: &UserId,
    conn_id: u64,
    contacts: &[UserId],
) {
    match cluster.release(user, conn_id).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: presence not removed");
            return;
        }
    }
    let key = presence_key(user);
    let r = cluster
        .run("presence list", |mut c| async move {
            redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "cluster: presence list not removed");
    }
    let remote: Vec<UserId> = contacts
        .iter()
        .filter(|c| shared.hub().local(c).is_none())
        .cloned()
        .collect();
    match cluster.remote_listings(&remote, user).await {
        Ok(found) => {
            for (c, node, lists_me) in found {
                if lists_me {
                    cluster.presence_news(&node, &c, user, false);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cluster: contacts on other nodes not told"),
    }
}

/// Makes sure `user` (on `node`) has a proxy in the hub.
fn ensure_proxy(shared: &Arc<Shared>, cluster: &Arc<Cluster>, user: &UserId, node: &str) {
    let same = cluster.proxies().get(user).is_some_and(|n| n == node);
    if same && shared.hub().is_remote(user) {
        return;
    }
    let (tx, mut rx, _kill) = hub::channel(PROXY_QUEUE, shared.limits.queue_bytes);
    if !shared.hub().connect_remote(user, tx) {
        return;
    }
    cluster.proxies().insert(user.clone(), node.to_owned());
    let outbox = cluster.outbox(node);
    let (node_id, user) = (cluster.node.clone(), user.clone());
    tokio::spawn(async move {
        // What queued up meanwhile joins the node's next batch in one step.
        while let Some(first) = rx.recv().await {
            let mut batch = outbox.lock();
            let mut next = Some(first);
            let mut n = 0;
            while let Some(out) = next.take() {
                let (kind, payload) = match &out {
                    Out::Text(t) => (b'T', t.as_bytes()),
                    Out::Binary(b) => (b'B', &b[..]),
                    Out::Close(..) => (0, &[][..]),
                };
                if kind != 0 && batch.len() + payload.len() < OUTBOX_BYTES {
                    crate::envelope::push(&mut batch, kind, &user, &node_id, payload);
                } else if kind != 0 {
                    tracing::debug!("a message for another node was dropped: Redis lags");
                }
                n += 1;
                if n < 64 {
                    next = rx.try_recv();
                }
            }
            drop(batch);
            outbox.ready.notify_one();
        }
    });
}

/// Before routing `msg` from a local user: a peer on another node gets a
/// proxy in the hub (looked up again for each invite).
pub(super) async fn prepare_route(shared: &Arc<Shared>, cluster: &Arc<Cluster>, msg: &Message) {
    let Some((_, to)) = msg.route() else {
        return;
    };
    let known = {
        let hub = shared.hub();
        hub.local(to).is_some() || (hub.is_remote(to) && !matches!(msg, Message::CallInvite(_)))
    };
    if known {
        return;
    }
    match cluster.locate(to).await {
        Ok(Some(node)) => ensure_proxy(shared, cluster, to, &node),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cluster: cannot look up a user"),
    }
}

/// How long a starting node waits for its first subscription before it
/// takes users in anyway.
pub(super) const FIRST_SUBSCRIBE: Duration = Duration::from_secs(10);

/// Receives this node's envelopes until the server stops, reconnecting
/// (with backoff) when Redis goes away; says on `subscribed` when the
/// first subscription is in place.
pub(super) async fn inbound(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    use futures_util::StreamExt as _;
    let mut backoff = Duration::from_millis(100);
    let mut subscribed = Some(subscribed);
    loop {
        let sub = async {
            let mut ps = cluster.client.get_async_pubsub().await?;
            ps.subscribe(channel(&cluster.node)).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = match tokio::time::timeout(Duration::from_secs(2), sub).await {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster: cannot subscribe; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        tracing::info!(node = %cluster.node, "cluster: subscribed");
        if let Some(tx) = subscribed.take() {
            let _ = tx.send(());
        }
        backoff = Duration::from_millis(100);
        let mut stream = ps.into_on_message();
        while let Some(m) = stream.next().await {
            let bytes = m.get_payload_bytes();
            if bytes.first() == Some(&crate::envelope::BATCH) {
                // One copy for the whole batch; relay frames are slices of it.
                let bytes = Bytes::copy_from_slice(bytes);
                for (_, env) in crate::envelope::batch(&bytes) {
                    handle_envelope(&shared, &cluster, env, &bytes);
                }
            } else if let Some(env) = crate::envelope::parse(bytes) {
                handle_envelope(&shared, &cluster, env, &Bytes::new());
            } else {
                tracing::debug!("cluster: malformed envelope dropped");
            }
        }
        tracing::warn!("cluster: the subscription to Redis ended; reconnecting");
    }
}

/// Handles one envelope; `whole` holds it when it came in a batch (a relay
/// frame is then forwarded as a slice of it, without a copy).
fn handle_envelope(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    env: crate::envelope::Envelope<'_>,
    whole: &Bytes,
) {
    let now = Instant::now();
    match env.kind {
        b'K' => {
            let Some((conn_id, tx)) = shared.hub().local(&env.to) else {
                return; // the user left this node meanwhile
            };
            if env.payload == conn_id.to_string().as_bytes() {
                let away = shared.hub().is_away(&env.to);
                if away {
                    // In its grace: the user came back on another node.
                    let (_, hangups) = shared.hub().moved_elsewhere(&env.to, conn_id);
                    deliver(hangups);
                    tracing::info!(user = %env.to, "the user, away, signed in on another node: its calls go on without this node");
                } else {
                    tracing::info!(user = %env.to, "a newer login on another node replaces this one");
                    tx.kill(ErrorCode::SessionReplaced);
                }
            }
        }
        b'T' => {
            if shared.hub().local(&env.to).is_none() {
                return;
            }
            let Ok(msg) = Message::parse_bytes(env.payload) else {
                return;
            };
            let Some((from, to)) = msg.route().map(|(f, t)| (f.clone(), t.clone())) else {
                return;
            };
            if to != env.to {
                return;
            }
            ensure_proxy(shared, cluster, &from, env.node);
            let o = shared.hub().route(&from, msg, now, &shared.limits);
            deliver(o.deliver);
        }
        b'P' => {
            let Some((online, about)) = std::str::from_utf8(env.payload)
                .ok()
                .and_then(|p| p.split_once(' '))
                .and_then(|(o, u)| Some((o == "1", UserId::new(u).ok()?)))
            else {
                return;
            };
            let news = shared.hub().remote_presence(&env.to, &about, online);
            deliver(news.into_iter().collect());
        }
        b'B' => {
            let Ok(f) = crate::wire::RelayFrame::parse(env.payload) else {
                return;
            };
            let frame = if whole.is_empty() {
                Bytes::copy_from_slice(env.payload)
            } else {
                whole.slice_ref(env.payload)
            };
            let o = {
                let mut hub = shared.hub();
                if hub.local(&env.to).is_none() {
                    return;
                }
                let Some(from) = hub.relay_sender(&env.to, &f.call_id) else {
                    return;
                };
                hub.route_binary(&from, frame, now, &shared.limits)
            };
            deliver(o.deliver);
        }
        _ => {}
    }
}

/// Forgets the presence of users whose reconnection grace ended here
/// (each only if it still names their old connection).
pub(super) async fn release_all(cluster: Arc<Cluster>, gone: Vec<(UserId, u64)>) {
    for (user, conn_id) in gone {
        if let Err(e) = cluster.release(&user, conn_id).await {
            tracing::warn!(error = %e, "cluster: presence not removed");
        }
    }
}

/// Every second: renews this node's liveness, ends the calls of users on
/// nodes that died, and drops proxies without calls.
pub(super) async fn heartbeat(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tick.tick().await;
        let key = node_key(&cluster.node);
        let ttl = NODE_TTL.as_millis() as u64;
        let renewed: Result<Option<String>, _> = cluster
            .run("liveness", |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .arg("GET")
                    .query_async(&mut c)
                    .await
            })
            .await;
        match renewed {
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot renew this node's liveness");
                continue;
            }
            // Our key was gone: Redis restarted (or we were stalled past
            // its life). Record our users' presence again.
            Ok(None) if !first => reclaim(&shared, &cluster).await,
            Ok(_) => {}
        }
        first = false;
        let nodes: Vec<String> = {
            let mut v: Vec<String> = cluster.proxies().values().cloned().collect();
            v.sort();
            v.dedup();
            v
        };
        for node in nodes {
            let k = node_key(&node);
            let alive: Result<bool, _> = cluster
                .run("liveness", |mut c| async move { c.exists(&k).await })
                .await;
            if alive.is_ok_and(|a| !a) {
                node_lost(&shared, &cluster, &node);
            }
        }
        let idle = shared.hub().drop_idle_remotes();
        let mut proxies = cluster.proxies();
        for u in idle {
            proxies.remove(&u);
        }
    }
}

/// Records the presence of every local user again, where no newer login
/// (on another node) took its place meanwhile.
async fn reclaim(shared: &Arc<Shared>, cluster: &Arc<Cluster>) {
    let users: Vec<(UserId, u64)> = shared
        .live()
        .iter()
        .map(|(conn, (u, _, _))| (u.clone(), *conn))
        .collect();
    tracing::warn!(
        users = users.len(),
        "cluster: Redis lost our state; recording presence again"
    );
    for (user, conn_id) in users {
        let key = user_key(&user);
        let me = format!("{} {conn_id}", cluster.node);
        let r: Result<Option<String>, _> = cluster
            .run("presence", |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&me)
                    .arg("NX")
                    .query_async(&mut c)
                    .await
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "cluster: presence not recorded again");
            return;
        }
    }
}

/// Ends the calls of every user of a node that died.
fn node_lost(shared: &Arc<Shared>, cluster: &Arc<Cluster>, node: &str) {
    let users: Vec<UserId> = cluster
        .proxies()
        .iter()
        .filter(|(_, n)| n.as_str() == node)
        .map(|(u, _)| u.clone())
        .collect();
    tracing::warn!(
        node,
        users = users.len(),
        "cluster: a node is gone; ending its users' calls"
    );
    for u in users {
        let hangups = shared.hub().remote_lost(&u, Instant::now());
        deliver(hangups);
        cluster.proxies().remove(&u);
    }
    cluster.drop_outbox(node);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn node_ids_are_checked() {
        assert!(ClusterConfig::new("redis://x", "n 1").is_err());
        assert!(ClusterConfig::new("redis://x", "").is_err());
        assert!(ClusterConfig::new("redis://x", "node-1").is_ok());
    }

    #[test]
    fn debug_leaves_out_the_redis_password() {
        let c = ClusterConfig::new("rediss://app:s3cret@redis.example:6380", "n1").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("rediss://redis.example:6380"), "{shown}");
    }
}
