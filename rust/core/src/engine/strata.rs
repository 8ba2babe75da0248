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
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::cells::{pack, unpack};
use crate::schema::RESPONSE_TYPES;

/// Conversations per response type, in schema order.
pub type RtCounts = [u64; RESPONSE_TYPES.len()];

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
    /// (human value, AI value, response type) -> conversations.
    pub pairs: PairCells,
}

/// Bits of a string id in a packed pair key; ids past them go to `PairCells::wide`.
const ID_BITS: u32 = 30;
const ID_MAX: u32 = (1 << ID_BITS) - 1;
/// Parts of the pair map, each applied on its own rayon task (like `Cells`).
pub(crate) const PAIR_PARTS: usize = 64;

/// The human value x AI value x response type cells: a plain count per (pair, response type)
/// under one u64 key, so that a cell is 16 bytes and a pair costs only the response types it
/// has. Split by key into parts that are counted in parallel, a batch's keys sorted into its
/// parts first (the table is as large as `human_values x ai_values`, past the CPU caches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairCells {
    parts: Vec<HashMap<u64, u64>>,
    /// Cells whose ids do not fit the packed key (a state with over 2^30 distinct strings).
    wide: HashMap<(u32, u32, u8), u64>,
}

impl Default for PairCells {
    fn default() -> Self {
        PairCells {
            parts: vec![HashMap::new(); PAIR_PARTS],
            wide: HashMap::new(),
        }
    }
}

#[inline]
pub(crate) fn pair_key(h: u32, a: u32, rt: u8) -> Option<u64> {
    (h <= ID_MAX && a <= ID_MAX)
        .then_some(((h as u64) << (ID_BITS + 3)) | ((a as u64) << 3) | rt as u64)
}

#[inline]
fn pair_unkey(k: u64) -> (u32, u32, u8) {
    (
        (k >> (ID_BITS + 3)) as u32,
        ((k >> 3) as u32) & ID_MAX,
        (k & 7) as u8,
    )
}

#[inline]
pub(crate) fn pair_part(k: u64) -> usize {
    (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

impl PairCells {
    pub fn len(&self) -> usize {
        self.parts.iter().map(HashMap::len).sum::<usize>() + self.wide.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn add(&mut self, h: u32, a: u32, rt: u8, n: u64) {
        match pair_key(h, a, rt) {
            Some(k) => *self.parts[pair_part(k)].entry(k).or_insert(0) += n,
            None => *self.wide.entry((h, a, rt)).or_insert(0) += n,
        }
    }

    /// Counts one conversation for each packed key in `scatter`, whose part p holds only keys
    /// of part p; each part on its own rayon task.
    pub(crate) fn apply(&mut self, scatter: &[Vec<u64>]) {
        self.parts
            .par_iter_mut()
            .zip(scatter.par_iter())
            .with_min_len(PAIR_PARTS / 8)
            .for_each(|(m, keys)| {
                for &k in keys {
                    *m.entry(k).or_insert(0) += 1;
                }
            });
    }

    /// Every cell: (human value, AI value, response type, conversations).
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, u8, u64)> + '_ {
        let packed = self.parts.iter().flat_map(|m| {
            m.iter().map(|(&k, &n)| {
                let (h, a, rt) = pair_unkey(k);
                (h, a, rt, n)
            })
        });
        packed.chain(self.wide.iter().map(|(&(h, a, rt), &n)| (h, a, rt, n)))
    }

    /// The pair's conversations per response type.
    pub fn mix(&self, h: u32, a: u32) -> RtCounts {
        let mut out = [0; 7];
        for (rt, o) in out.iter_mut().enumerate() {
            *o = match pair_key(h, a, rt as u8) {
                Some(k) => self.parts[pair_part(k)].get(&k).copied().unwrap_or(0),
                None => self.wide.get(&(h, a, rt as u8)).copied().unwrap_or(0),
            };
        }
        out
    }
}

// Serialised as one flat list of cells, whatever the split.
impl Serialize for PairCells {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // with its length up front: compact formats (postcard) need it
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for cell in self.iter() {
            seq.serialize_element(&cell)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for PairCells {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let flat: Vec<(u32, u32, u8, u64)> = Vec::deserialize(d)?;
        let mut cells = PairCells::default();
        for (h, a, rt, n) in flat {
            if rt as usize >= RESPONSE_TYPES.len() {
                return Err(serde::de::Error::custom("response type out of range"));
            }
            cells.add(h, a, rt, n);
        }
        Ok(cells)
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
        for (h, a, rt, n) in other.pairs.iter() {
            self.pairs.add(re(h), re(a), rt, n);
        }
    }

    /// Whether every string id is one of `n` (strata may also be `NO_STRATUM`).
    pub fn ids_in_range(&self, n: usize) -> bool {
        let ok = |id: u32| id == NO_STRATUM || (id as usize) < n;
        let pair_ids = self.pairs.iter().flat_map(|(h, a, _, _)| [h, a]);
        self.by_cluster
            .ids()
            .chain(self.by_task.ids())
            .chain(pair_ids)
            .all(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_round_trip_and_wide_ids_take_the_other_map() {
        let mut cells = PairCells::default();
        cells.add(ID_MAX, 7, 6, 2);
        cells.add(ID_MAX + 1, 7, 6, 3);
        cells.add(5, u32::MAX - 1, 0, 1);
        cells.add(ID_MAX, 7, 6, 1);
        assert_eq!(cells.mix(ID_MAX, 7), [0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(cells.mix(ID_MAX + 1, 7)[6], 3);
        assert_eq!(cells.mix(5, u32::MAX - 1)[0], 1);
        assert_eq!(cells.len(), 3);
        let back: PairCells = postcard::from_bytes(&postcard::to_stdvec(&cells).unwrap()).unwrap();
        assert_eq!(back, cells);
    }
}
