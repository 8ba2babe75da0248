//! Exact distinct-user counting that saturates at the privacy threshold.
//!
//! The privacy rule needs "at least k distinct users", never the exact count above k, so a set
//! per key stops growing once it holds k ids. Unlike a sketch it can never overcount. User ids
//! are stored as 64-bit hashes; a collision can only merge two users, which errs towards
//! suppression.

use std::hash::Hash;

use hashbrown::hash_map::{Entry, HashMap};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::mix::Mix;

const USER_SEED: u64 = 0x7661_6c75_6573_6370;
const CONVERSATION_SEED: u64 = 0x636f_6e76_6572_7361;

/// Applies `f` to the value of `key`, created as the default if absent. Nearly every update
/// finds its key: a plain lookup, which inlines into the counting loops where `entry` +
/// `or_default` was left a call; creating is out of line.
#[inline(always)]
pub(crate) fn update<K: Hash + Eq, V: Default>(
    map: &mut HashMap<K, V>,
    key: K,
    f: impl FnOnce(&mut V),
) {
    match map.get_mut(&key) {
        Some(v) => f(v),
        None => f(insert_default(map, key)),
    }
}

/// The value of a key not yet in `map`, created as the default.
#[cold]
#[inline(never)]
pub(crate) fn insert_default<K: Hash + Eq, V: Default>(map: &mut HashMap<K, V>, key: K) -> &mut V {
    map.entry(key).or_default()
}

/// A user as the privacy rule sees it: 32 bits of a stable 64-bit hash. Stable across processes,
/// platforms and versions, so that states built anywhere merge. A collision can only merge two
/// users, erring towards suppression; in a set of at most `min_users` ids it is vanishingly rare
/// (about 1e-8 per cell at 10 users), and the halved size keeps four ids inline in every cell.
pub type UserId = u32;

#[inline]
fn fold(h: u64) -> UserId {
    (h ^ (h >> 32)) as u32
}

#[inline]
pub fn user_hash(user_id: &[u8]) -> UserId {
    fold(xxh3_64_with_seed(user_id, USER_SEED))
}

/// A conversation without a user id counts as its own user.
#[inline]
pub fn conversation_user_hash(conversation_id: &[u8]) -> UserId {
    fold(xxh3_64_with_seed(conversation_id, CONVERSATION_SEED))
}

/// Conversations and distinct users behind one key (a value, a table cell, a category).
///
/// `users` holds the distinct ids seen while there are fewer than `cap`; once `cap` is reached
/// it is emptied for good (a counter with conversations but no ids is saturated), so a frequent
/// key costs no more than a rare one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub n: u64,
    users: SmallVec<[UserId; 4]>,
    /// The conversations by response type, where the table keeps them (`add_rt`); else empty.
    mix: Mix,
}

impl Counter {
    #[inline]
    fn saturated(&self) -> bool {
        self.n > 0 && self.users.is_empty()
    }

    /// Adds an id to an unsaturated set; true when that saturates it (the set is emptied, and
    /// must not be inserted into again).
    #[inline]
    fn insert(&mut self, user: UserId, cap: u32) -> bool {
        if !self.users.contains(&user) {
            self.users.push(user);
            if self.users.len() >= cap as usize {
                self.users = SmallVec::new();
                return true;
            }
        }
        false
    }

    #[inline]
    pub fn add(&mut self, user: UserId, cap: u32) {
        let was_saturated = self.saturated();
        self.n += 1;
        if !was_saturated {
            self.insert(user, cap);
        }
    }

    /// `add`, and the conversation's response type (its index in the schema) in the mix.
    #[inline]
    pub fn add_rt(&mut self, user: UserId, cap: u32, rt: u8) {
        self.add(user, cap);
        self.mix.add(rt);
    }

    /// The conversations by response type counted with `add_rt`.
    pub fn mix(&self) -> &Mix {
        &self.mix
    }

    pub fn merge(&mut self, other: &Counter, cap: u32) {
        let saturated = self.saturated() || other.saturated();
        self.n += other.n;
        self.mix.merge(&other.mix);
        if saturated {
            self.users = SmallVec::new();
        } else {
            for &u in &other.users {
                if self.insert(u, cap) {
                    break;
                }
            }
        }
    }

    /// Merges `other` into the counter of `key`; a key not there yet takes `other` as it is
    /// (what merging into an empty counter gives, without re-inserting its ids one by one).
    #[inline]
    pub fn merge_into<K: Hash + Eq>(
        map: &mut HashMap<K, Counter>,
        key: K,
        other: Counter,
        cap: u32,
    ) {
        match map.entry(key) {
            Entry::Occupied(mut o) => o.get_mut().merge(&other, cap),
            Entry::Vacant(v) => {
                v.insert(other);
            }
        }
    }

    /// min(distinct users, cap)
    pub fn users(&self, cap: u32) -> u32 {
        if self.saturated() {
            cap
        } else {
            self.users.len() as u32
        }
    }

    /// The privacy rule: may a figure describing these conversations be published?
    #[inline]
    pub fn passes(&self, min_conversations: u64, min_users: u32) -> bool {
        self.n >= min_conversations && self.users(min_users) >= min_users
    }

    /// The distinct ids kept: empty when saturated (or when nothing was counted).
    pub fn ids(&self) -> &[UserId] {
        &self.users
    }

    /// Rebuilds a counter from `n`, `ids()` and `mix()`; None if they cannot belong together.
    pub fn from_parts(n: u64, ids: &[UserId], mix: Mix, cap: u32) -> Option<Counter> {
        // n > 0 with no ids is a saturated counter
        let ok = ids.is_empty() || (ids.len() < cap as usize && ids.len() as u64 <= n);
        let c = Counter {
            n,
            users: SmallVec::from_slice(ids),
            mix,
        };
        (ok && c.is_consistent()).then_some(c)
    }

    /// Decoded states must not claim more ids, or more conversations by response type, than
    /// conversations.
    pub(crate) fn is_consistent(&self) -> bool {
        self.users.len() as u64 <= self.n && self.mix.total().is_some_and(|t| t <= self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_exactly_at_cap() {
        let mut c = Counter::default();
        for u in 0..9 {
            c.add(u, 10);
            c.add(u, 10);
        }
        assert_eq!((c.n, c.users(10)), (18, 9));
        c.add(9, 10);
        assert!(c.saturated());
        assert_eq!(c.users(10), 10);
        c.add(3, 10);
        assert_eq!((c.n, c.users(10)), (20, 10));
    }

    #[test]
    fn merge_counts_the_union() {
        let (mut a, mut b) = (Counter::default(), Counter::default());
        for u in 0..5 {
            a.add(u, 10);
            b.add(u + 3, 10);
        }
        a.merge(&b, 10);
        assert_eq!((a.n, a.users(10)), (10, 8));
        let mut full = Counter::default();
        (0..10).for_each(|u| full.add(u, 10));
        b.merge(&full, 10);
        assert_eq!(b.users(10), 10);
        let mut empty = Counter::default();
        empty.merge(&Counter::default(), 10);
        assert_eq!((empty.n, empty.users(10)), (0, 0));
    }

    #[test]
    fn merge_that_saturates_midway_stays_saturated() {
        // the bug this guards against: ids inserted after the set had been emptied at the cap
        let (mut a, mut b) = (Counter::default(), Counter::default());
        (0..2).for_each(|u| a.add(u, 3));
        (10..14).take(2).for_each(|u| b.add(u, 3));
        a.merge(&b, 3);
        assert_eq!((a.n, a.users(3)), (4, 3));
        assert!(a.saturated());
    }

    #[test]
    fn counter_threshold_needs_both() {
        let mut c = Counter::default();
        for _ in 0..20 {
            c.add(1, 10);
        }
        assert!(!c.passes(15, 10), "one user, many conversations");
        for u in 2..11 {
            c.add(u, 10);
        }
        assert!(c.passes(15, 10));
        assert!(!c.passes(30, 10));
    }

    #[test]
    fn hashes_are_stable() {
        // Pinned: merged states from different builds rely on these never changing.
        assert_eq!(user_hash(b"u1"), fold(xxh3_64_with_seed(b"u1", USER_SEED)));
        assert_ne!(user_hash(b"x"), conversation_user_hash(b"x"));
    }

    #[test]
    fn stays_small() {
        assert!(std::mem::size_of::<Counter>() <= 40);
    }
}
