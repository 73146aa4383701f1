//! Who is around: a user sees a contact online only when both listed each
//! other in `share_presence` (config.toml); someone who lists you but
//! whom you did not list learns nothing, and neither do you. Going away
//! is shown too.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::time::Duration;

use common::*;

#[test]
fn presence_flows_between_mutual_contacts_only() {
    let world = World::start("presence", &["alice", "bob", "carol"]);
    let config = |user: &str, share: &str| {
        std::fs::write(
            world.profile(user).join("config.toml"),
            format!("input = \"silence\"\noutput = \"null\"\nshare_presence = [{share}]\n[contacts]\nb = \"bob\"\n"),
        )
        .unwrap();
    };
    config("alice", "\"b\"");
    config("bob", "\"alice\"");
    // carol lists alice, alice does not list carol.
    config("carol", "\"alice\", \"bob\"");
    let shell = |user: &str| {
        let profile = world.profile(user);
        let mut p = Proc::spawn_cmd(
            user,
            BIN,
            &["shell", "--profile", profile.to_str().unwrap()],
        );
        p.wait_for(&format!("signed in as {user}"), Duration::from_secs(20));
        p
    };
    let mut alice = shell("alice");
    let mut carol = shell("carol");
    let mut bob = shell("bob");
    alice.wait_for("bob is online", Duration::from_secs(10));
    bob.wait_for("alice is online", Duration::from_secs(10));
    alice.type_line("contacts");
    alice.wait_for(
        "online (of those you share presence with): bob",
        Duration::from_secs(10),
    );
    bob.type_line("quit");
    assert!(bob.wait_exit(Duration::from_secs(10)), "{}", bob.output());
    alice.wait_for("bob went offline", Duration::from_secs(10));
    // carol listed both, but neither listed her: she learns nothing.
    carol.type_line("contacts");
    carol.wait_for(
        "online (of those you share presence with): nobody",
        Duration::from_secs(10),
    );
    alice.type_line("quit");
    carol.type_line("quit");
    assert!(
        alice.wait_exit(Duration::from_secs(10)),
        "{}",
        alice.output()
    );
    assert!(
        carol.wait_exit(Duration::from_secs(10)),
        "{}",
        carol.output()
    );
    assert!(!alice.output().contains("carol"), "{}", alice.output());
    assert!(!carol.output().contains("is online"), "{}", carol.output());
    assert!(!bob.output().contains("carol"), "{}", bob.output());
}
