//! Three-way counts: what the stratified model comparison needs. (The value pairs' response mix
//! lives in the `human_values x ai_values` table's own cells: see `mix`.)
//!
//! These cells are never published one by one: only statistics over whole strata (the
//! Cochran-Mantel-Haenszel test) and shares of cells that pass the conversation threshold leave
//! the engine. So a cell is a plain conversation count with no user set, and a stratum's
//! privacy is decided by the stratum's own counter in `State::keys`.
//!
//! A conversation's stratum is its task cluster; one without a cluster falls in `NO_STRATUM`
//! (the pooled stratum). The same conversations are also counted by raw task in `by_task`,
//! which stands in when no conversation has a cluster (the fallback the `ai_values x task`
//! table uses); conversations with a cluster need not be counted there.

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::cells::{pack, unpack};
pub use super::mix::RtCounts;

/// The stratum of a conversation that has none (no cluster, or no task): pooled. Never a
/// string id (interned ids stay below `state::EMPTY`, which is this same value).
pub const NO_STRATUM: u32 = u32::MAX;

/// Counts of one way of stratifying: per (model, stratum), response types and AI values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStrata {
    /// pack(model, stratum) -> conversations per response type (their sum: the conversations).
    pub rt: HashMap<u64, RtCounts>,
    /// model -> pack(AI value, stratum) -> conversations.
    pub ai: HashMap<u32, HashMap<u64, u64>>,
}

impl ModelStrata {
    pub fn is_empty(&self) -> bool {
        self.rt.is_empty()
    }

    /// Whether any conversation has a stratum of its own (not the pooled one).
    pub fn has_strata(&self) -> bool {
        self.rt.keys().any(|&k| unpack(k).1 != NO_STRATUM)
    }

    #[inline]
    pub(crate) fn add(&mut self, model: u32, stratum: u32, rt: u8, ai: &[u32]) {
        self.rt.entry(pack(model, stratum)).or_insert([0; 7])[rt as usize] += 1;
        if !ai.is_empty() {
            let m = self.ai.entry(model).or_default();
            for &v in ai {
                *m.entry(pack(v, stratum)).or_insert(0) += 1;
            }
        }
    }

    fn merge(&mut self, other: &ModelStrata, re: &impl Fn(u32) -> u32) {
        for (&k, c) in &other.rt {
            let (m, s) = unpack(k);
            let mine = self.rt.entry(pack(re(m), re(s))).or_insert([0; 7]);
            mine.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
        for (&m, cells) in &other.ai {
            let mine = self.ai.entry(re(m)).or_default();
            for (&k, &n) in cells {
                let (v, s) = unpack(k);
                *mine.entry(pack(re(v), re(s))).or_insert(0) += n;
            }
        }
    }

    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        let rt = self.rt.keys().flat_map(|&k| {
            let (a, b) = unpack(k);
            [a, b]
        });
        let ai = self.ai.iter().flat_map(|(&m, cells)| {
            std::iter::once(m).chain(cells.keys().flat_map(|&k| {
                let (a, b) = unpack(k);
                [a, b]
            }))
        });
        rt.chain(ai)
    }
}

/// Every three-way count of a state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strata {
    /// (response type | AI value) x model x task cluster.
    pub by_cluster: ModelStrata,
    /// The same by raw task, for conversations without a cluster.
    pub by_task: ModelStrata,
}

impl Strata {
    /// Folds `other`, whose string ids `remap` maps to this state's, into this one.
    pub fn merge(&mut self, other: &Strata, remap: &[u32]) {
        let re = |id: u32| {
            if id == NO_STRATUM {
                id
            } else {
                remap[id as usize]
            }
        };
        self.by_cluster.merge(&other.by_cluster, &re);
        self.by_task.merge(&other.by_task, &re);
    }

    /// Whether every string id is one of `n` (strata may also be `NO_STRATUM`).
    pub fn ids_in_range(&self, n: usize) -> bool {
        let ok = |id: u32| id == NO_STRATUM || (id as usize) < n;
        self.by_cluster.ids().chain(self.by_task.ids()).all(ok)
    }
}
