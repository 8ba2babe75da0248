//! Three-way counts: what the stratified model comparison and the value-pair response mix need.
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

use super::ingest::Resolved;
use super::plan::{AI, HUMAN, MODEL};
use super::state::{pack, unpack, EMPTY};
use crate::schema::RESPONSE_TYPES;

/// Conversations per response type, in schema order.
pub type RtCounts = [u64; RESPONSE_TYPES.len()];

/// The stratum of a conversation that has none (no cluster, or no task): pooled.
pub const NO_STRATUM: u32 = EMPTY;

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
    fn add(&mut self, model: u32, stratum: u32, rt: u8, ai: &[u32]) {
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
    /// pack(human value, AI value) -> conversations per response type.
    pub pairs: HashMap<u64, RtCounts>,
}

/// Where a plan's stratum columns are, if it tracks them.
#[derive(Clone, Copy, Debug, Default)]
pub struct StratumColumns {
    pub cluster: Option<usize>,
    pub task: Option<usize>,
}

impl StratumColumns {
    pub fn any(&self) -> bool {
        self.cluster.is_some() || self.task.is_some()
    }
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
        self.pairs.reserve(other.pairs.len());
        for (&k, c) in &other.pairs {
            let (h, a) = unpack(k);
            let mine = self.pairs.entry(pack(re(h), re(a))).or_insert([0; 7]);
            mine.iter_mut().zip(c).for_each(|(x, y)| *x += y);
        }
    }

    /// Whether every string id is one of `n` (strata may also be `NO_STRATUM`).
    pub fn ids_in_range(&self, n: usize) -> bool {
        let ok = |id: u32| id == NO_STRATUM || (id as usize) < n;
        let pair_ids = self.pairs.keys().flat_map(|&k| {
            let (a, b) = unpack(k);
            [a, b]
        });
        self.by_cluster
            .ids()
            .chain(self.by_task.ids())
            .chain(pair_ids)
            .all(ok)
    }
}

/// Counts the model strata of a batch. Conversations without a model are in no comparison.
pub(crate) fn count_model_strata(
    by_cluster: &mut ModelStrata,
    by_task: &mut ModelStrata,
    all: &[Resolved],
    cols: StratumColumns,
) {
    for res in all {
        for r in 0..res.len() {
            let Some(&model) = res.row(MODEL, r).first() else {
                continue;
            };
            let rt = res.rts[r];
            let ai = res.row(AI, r);
            let cluster = cols.cluster.and_then(|c| res.row(c, r).first().copied());
            by_cluster.add(model, cluster.unwrap_or(NO_STRATUM), rt, ai);
            if cluster.is_none() {
                if let Some(c) = cols.task {
                    let task = res.row(c, r).first().copied().unwrap_or(NO_STRATUM);
                    by_task.add(model, task, rt, ai);
                }
            }
        }
    }
}

/// Counts the human value x AI value x response type cells of a batch.
pub(crate) fn count_pairs(pairs: &mut HashMap<u64, RtCounts>, all: &[Resolved]) {
    for res in all {
        for r in 0..res.len() {
            let human = res.row(HUMAN, r);
            if human.is_empty() {
                continue;
            }
            let (ai, rt) = (res.row(AI, r), res.rts[r] as usize);
            for &h in human {
                for &a in ai {
                    pairs.entry(pack(h, a)).or_insert([0; 7])[rt] += 1;
                }
            }
        }
    }
}
