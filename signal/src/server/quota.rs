//! Key-directory quotas (no I/O, time comes in as `now`): how often a user
//! may fetch bundles, fetch one target's bundle, have one-time keys claimed
//! from them, and publish. Counted by user name, so reconnecting does not
//! reset them.
//!
//! All counters share one fixed window of [`Limits::key_window`]: they all
//! reset together when it ends. A client can thus reach twice a quota
//! across a window boundary, never more.

use std::collections::HashMap;
use std::time::Instant;

use super::Limits;
use crate::wire::UserId;

/// What a `keys_fetch` may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Over the requester's quota (overall, or for this target): refuse.
    Refuse,
    /// A one-time key may be claimed.
    OneTimeKey,
    /// The target's one-time keys are rationed this window: hand out the
    /// fallback key, which is not used up.
    FallbackOnly,
}

#[derive(Default, Debug)]
pub(crate) struct KeyQuota {
    window_start: Option<Instant>,
    by_requester: HashMap<UserId, u32>,
    by_pair: HashMap<(UserId, UserId), u32>,
    claims_of_target: HashMap<UserId, u32>,
    publishes: HashMap<UserId, u32>,
}

fn bump(count: &mut u32, cap: u32) -> bool {
    if *count >= cap {
        false
    } else {
        *count += 1;
        true
    }
}

impl KeyQuota {
    fn roll(&mut self, now: Instant, limits: &Limits) {
        let expired = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= limits.key_window);
        if expired {
            self.window_start = Some(now);
            self.by_requester.clear();
            self.by_pair.clear();
            self.claims_of_target.clear();
            self.publishes.clear();
        }
    }

    /// Decides a `keys_fetch` of `target`'s bundle by `requester` at `now`,
    /// and counts it.
    pub(crate) fn fetch(
        &mut self,
        requester: &UserId,
        target: &UserId,
        now: Instant,
        limits: &Limits,
    ) -> Fetch {
        self.roll(now, limits);
        let overall = self.by_requester.get(requester).copied().unwrap_or(0);
        if overall >= limits.key_fetches_per_requester {
            return Fetch::Refuse;
        }
        let pair = (requester.clone(), target.clone());
        if !bump(
            self.by_pair.entry(pair).or_default(),
            limits.key_fetches_per_target,
        ) {
            return Fetch::Refuse;
        }
        *self.by_requester.entry(requester.clone()).or_default() += 1;
        if bump(
            self.claims_of_target.entry(target.clone()).or_default(),
            limits.one_time_keys_per_target,
        ) {
            Fetch::OneTimeKey
        } else {
            Fetch::FallbackOnly
        }
    }

    /// Gives back what [`KeyQuota::fetch`] counted when the fetch handed
    /// out nothing (the target has no keys): it used up nothing to protect.
    pub(crate) fn refund(&mut self, requester: &UserId, target: &UserId, decided: Fetch) {
        let dec = |c: Option<&mut u32>| {
            if let Some(c) = c {
                *c = c.saturating_sub(1);
            }
        };
        dec(self.by_requester.get_mut(requester));
        dec(self.by_pair.get_mut(&(requester.clone(), target.clone())));
        if decided == Fetch::OneTimeKey {
            dec(self.claims_of_target.get_mut(target));
        }
    }

    /// Counts a `keys_publish` by `user`; `false` when over quota.
    pub(crate) fn publish(&mut self, user: &UserId, now: Instant, limits: &Limits) -> bool {
        self.roll(now, limits);
        bump(
            self.publishes.entry(user.clone()).or_default(),
            limits.key_publishes_per_user,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn quotas_per_pair_per_requester_and_per_target_then_a_new_window() {
        let mut l = Limits::default();
        (l.key_fetches_per_target, l.key_fetches_per_requester) = (2, 3);
        l.one_time_keys_per_target = 3;
        let mut q = KeyQuota::default();
        let t0 = Instant::now();
        let (a, b, c, d) = (u("a"), u("b"), u("c"), u("d"));
        assert_eq!(q.fetch(&a, &b, t0, &l), Fetch::OneTimeKey);
        assert_eq!(q.fetch(&a, &b, t0, &l), Fetch::OneTimeKey);
        assert_eq!(q.fetch(&a, &b, t0, &l), Fetch::Refuse, "pair quota");
        assert_eq!(q.fetch(&a, &c, t0, &l), Fetch::OneTimeKey);
        assert_eq!(q.fetch(&a, &d, t0, &l), Fetch::Refuse, "requester quota");
        assert_eq!(q.fetch(&c, &b, t0, &l), Fetch::OneTimeKey);
        assert_eq!(
            q.fetch(&d, &b, t0, &l),
            Fetch::FallbackOnly,
            "target rationed"
        );
        q.refund(&d, &b, Fetch::FallbackOnly);
        q.refund(&c, &b, Fetch::OneTimeKey);
        assert_eq!(q.fetch(&d, &b, t0, &l), Fetch::OneTimeKey, "refunded");
        let t1 = t0 + l.key_window + Duration::from_millis(1);
        assert_eq!(q.fetch(&a, &b, t1, &l), Fetch::OneTimeKey, "new window");
    }
}
