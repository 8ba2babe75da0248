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

/// Parts of the pair map, each applied on its own rayon task (like `Cells`).
pub(crate) const PAIR_PARTS: usize = 64;
/// Bits of one response type's count in a pair's packed counts (seven of them fill 63 bits).
const FIELD_BITS: u32 = 9;
const FIELD_MAX: u64 = (1 << FIELD_BITS) - 1;

/// One part of the pair cells: each pair's seven counts packed into one u64, 9 bits each;
/// a count that passes 511 moves 512 at a time to `carry`, so a count is its field plus its
/// carry. The common case is one hash update per conversation and pair, in a 16-byte cell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PairPart {
    packed: HashMap<u64, u64>,
    carry: HashMap<u64, RtCounts>,
}

impl PairPart {
    #[inline]
    fn add(&mut self, key: u64, rt: u8, n: u64) {
        let shift = FIELD_BITS * rt as u32;
        let v = self.packed.entry(key).or_insert(0);
        let total = ((*v >> shift) & FIELD_MAX) + n;
        let low = total & FIELD_MAX;
        *v = (*v & !(FIELD_MAX << shift)) | (low << shift);
        if total > FIELD_MAX {
            self.carry.entry(key).or_insert([0; 7])[rt as usize] += total - low;
        }
    }

    fn mix(&self, key: u64) -> RtCounts {
        let v = self.packed.get(&key).copied().unwrap_or(0);
        let carry = self.carry.get(&key).copied().unwrap_or([0; 7]);
        std::array::from_fn(|rt| ((v >> (FIELD_BITS * rt as u32)) & FIELD_MAX) + carry[rt])
    }
}

/// The human value x AI value x response type cells: per (human value, AI value) pair, its
/// conversations per response type, as plain counts. Split by pair into parts that are counted
/// in parallel, a batch's updates sorted into their parts first (the table is as large as
/// `human_values x ai_values`, past the CPU caches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairCells {
    parts: Vec<PairPart>,
}

impl Default for PairCells {
    fn default() -> Self {
        PairCells {
            parts: vec![PairPart::default(); PAIR_PARTS],
        }
    }
}

#[inline]
pub(crate) fn pair_part(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

impl PairCells {
    /// Number of (pair, response type) cells with conversations.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| p.packed.is_empty())
    }

    pub(crate) fn add(&mut self, h: u32, a: u32, rt: u8, n: u64) {
        let key = pack(h, a);
        self.parts[pair_part(key)].add(key, rt, n);
    }

    /// Counts one conversation for each (pair key, response type) in `scatter`, whose part p
    /// holds only keys of part p; each part on its own rayon task.
    pub(crate) fn apply(&mut self, scatter: &[Vec<(u64, u8)>]) {
        self.parts
            .par_iter_mut()
            .zip(scatter.par_iter())
            .with_min_len(PAIR_PARTS / 8)
            .for_each(|(part, ups)| {
                for &(k, rt) in ups {
                    part.add(k, rt, 1);
                }
            });
    }

    /// Every cell with conversations: (human value, AI value, response type, conversations).
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32, u8, u64)> + '_ {
        self.parts.iter().flat_map(|p| {
            p.packed.keys().flat_map(move |&k| {
                let (h, a) = unpack(k);
                let mix = p.mix(k);
                (0..mix.len() as u8)
                    .filter(move |&rt| mix[rt as usize] > 0)
                    .map(move |rt| (h, a, rt, mix[rt as usize]))
            })
        })
    }

    /// The pair's conversations per response type.
    pub fn mix(&self, h: u32, a: u32) -> RtCounts {
        let key = pack(h, a);
        self.parts[pair_part(key)].mix(key)
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
    fn pair_counts_carry_past_their_packed_bits() {
        let mut cells = PairCells::default();
        let mut want = [0u64; 7];
        for i in 0..3000u64 {
            let rt = (i % 11).min(6) as u8;
            cells.add(5, u32::MAX - 1, rt, 1);
            want[rt as usize] += 1;
        }
        cells.add(5, u32::MAX - 1, 2, 1000);
        want[2] += 1000;
        cells.add(7, 7, 0, 1);
        assert_eq!(cells.mix(5, u32::MAX - 1), want);
        assert_eq!(cells.mix(7, 7), [1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(cells.mix(7, 8), [0; 7]);
        assert_eq!(cells.len(), 8);
        let back: PairCells = postcard::from_bytes(&postcard::to_stdvec(&cells).unwrap()).unwrap();
        assert_eq!(back.mix(5, u32::MAX - 1), want);
        assert_eq!(back.len(), cells.len());
    }
}
