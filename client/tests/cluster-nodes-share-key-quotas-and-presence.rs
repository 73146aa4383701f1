//! Cluster mode between real processes (a private `redis-server` and two
//! signaling nodes on loopback): the key-fetch quotas hold across nodes (a
//! requester who used up its quota on one node is refused on the other),
//! and mutual presence works between users on different nodes (online when
//! both listed each other, offline when one leaves or drops the other).

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::cluster::*;
use cryptic_signal::client::{connect, Incoming, Receiver, Sender};
use cryptic_signal::profile::Profile;
use cryptic_signal::wire::{ErrorCode, Message, Presence, PresenceShare};
use cryptic_signal::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_over_its_fetch_quota_on_one_node_is_refused_on_the_other() {
    let Some(cluster) = Cluster::start("cluster-quota", 2) else {
        return;
    };
    let bob = Profile::load(&cluster.profile("bob", 0)).unwrap();
    let mut cb = connect(&bob.client_config().unwrap()).await.unwrap();
    let mut eb = bob.e2e().unwrap();
    cb.publish_keys(eb.keys_to_publish(20).unwrap())
        .await
        .unwrap();

    // The default quota: five fetches of one target per requester and window.
    let r0 = Profile::load(&cluster.profile("mallory", 0)).unwrap();
    let mut c0 = connect(&r0.client_config().unwrap()).await.unwrap();
    for i in 0..5 {
        c0.fetch_keys(&user("bob"))
            .await
            .unwrap_or_else(|e| panic!("fetch {i}: {e}"));
    }
    let refused = |r: Result<_, Error>| match r {
        Err(Error::Server { code, .. }) => code == ErrorCode::RateLimited,
        _ => false,
    };
    assert!(
        refused(c0.fetch_keys(&user("bob")).await),
        "sixth fetch on node 0"
    );
    drop(c0);

    // The same requester on the other node: still over its quota.
    let r1 = Profile::load(&cluster.profile("mallory", 1)).unwrap();
    let mut c1 = connect(&r1.client_config().unwrap()).await.unwrap();
    assert!(
        refused(c1.fetch_keys(&user("bob")).await),
        "a fetch on node 1 after five on node 0"
    );
    // Another requester on node 1 is not affected.
    let o = Profile::load(&cluster.profile("olivia", 1)).unwrap();
    let mut co = connect(&o.client_config().unwrap()).await.unwrap();
    co.fetch_keys(&user("bob")).await.unwrap();
}

async fn share(s: &Sender, contacts: &[&str]) {
    let contacts = contacts.iter().map(|c| user(c)).collect();
    s.send(&Message::PresenceShare(PresenceShare { contacts }))
        .await
        .unwrap();
}

/// The next presence news (pongs skipped), or `None` within `within`.
async fn presence(rx: &mut Receiver, within: Duration) -> Option<(String, bool)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return None,
            Ok(Ok(Incoming::Message(Message::Presence(Presence { user, online })))) => {
                return Some((user.as_str().to_owned(), online))
            }
            Ok(Ok(Incoming::Message(Message::Pong(_)))) => {}
            Ok(other) => panic!("{other:?}"),
        }
    }
}

const NEWS: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_presence_works_between_users_on_different_nodes() {
    let Some(cluster) = Cluster::start("cluster-presence", 2) else {
        return;
    };
    let mut a = cluster.login("alice", 0).await;
    let mut b = cluster.login("bob", 1).await;
    let mut c = cluster.login("carol", 1).await;

    // alice lists bob; bob has not listed alice yet: nobody hears anything.
    share(&a.0, &["bob"]).await;
    // carol lists alice, who does not list her: nothing either.
    share(&c.0, &["alice"]).await;
    assert_eq!(presence(&mut a.1, QUIET).await, None);
    assert_eq!(presence(&mut c.1, QUIET).await, None);

    // bob lists alice: both hear of the other.
    share(&b.0, &["alice"]).await;
    assert_eq!(presence(&mut b.1, NEWS).await, Some(("alice".into(), true)));
    assert_eq!(presence(&mut a.1, NEWS).await, Some(("bob".into(), true)));
    assert_eq!(presence(&mut c.1, QUIET).await, None, "carol is not mutual");

    // bob leaves: alice hears he is offline; carol hears nothing.
    b.0.close().await;
    drop(b);
    assert_eq!(presence(&mut a.1, NEWS).await, Some(("bob".into(), false)));

    // bob back (on node 0 this time, alice's node) and listing her again.
    let mut b = cluster.login("bob", 0).await;
    share(&b.0, &["alice"]).await;
    assert_eq!(presence(&mut b.1, NEWS).await, Some(("alice".into(), true)));
    assert_eq!(presence(&mut a.1, NEWS).await, Some(("bob".into(), true)));

    // alice moves to node 1 and lists bob again: both hear it across nodes.
    drop(a);
    assert_eq!(
        presence(&mut b.1, NEWS).await,
        Some(("alice".into(), false))
    );
    let mut a = cluster.login("alice", 1).await;
    share(&a.0, &["bob"]).await;
    assert_eq!(presence(&mut a.1, NEWS).await, Some(("bob".into(), true)));
    assert_eq!(presence(&mut b.1, NEWS).await, Some(("alice".into(), true)));

    // alice drops bob from her list: bob stops seeing her.
    share(&a.0, &[]).await;
    assert_eq!(
        presence(&mut b.1, NEWS).await,
        Some(("alice".into(), false))
    );
    drop(a);
    assert_eq!(
        presence(&mut b.1, QUIET).await,
        None,
        "alice no longer shares"
    );
}
