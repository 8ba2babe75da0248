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

/// Memory a dense `ModelStrata` may hold, in AI value counts (8 MiB, its slots included);
/// past it, it turns sparse. Strata by raw task reach hundreds of thousands at paper scale:
/// too many for every (stratum, model) to hold a count per AI value.
const DENSE_BUDGET: usize = 1 << 21;

/// A slot's own memory, in AI value counts.
const SLOT_SIZE: usize = std::mem::size_of::<Slot>() / std::mem::size_of::<u32>();

/// No local index yet.
const UNSEEN: u32 = u32::MAX;

/// Counts of one way of stratifying: per (model, stratum), response types and AI values.
///
/// Dense while that stays within a budget, sparse past it. Equal counts are equal (and
/// serialise to equal bytes) whatever the layout: only the cells with conversations count.
#[derive(Clone, Debug)]
pub struct ModelStrata {
    layout: Layout,
    budget: usize,
}

#[derive(Clone, Debug)]
enum Layout {
    Dense(Dense),
    Sparse(Sparse),
}

/// Interned ids -> local indices, in order of first sight.
#[derive(Clone, Debug, Default)]
struct Local {
    /// id + 1 -> local index or UNSEEN (the + 1 wraps `NO_STRATUM` round to 0)
    of: Vec<u32>,
    ids: Vec<u32>,
}

impl Local {
    #[inline]
    fn index(&mut self, id: u32) -> usize {
        let k = id.wrapping_add(1) as usize;
        match self.of.get(k) {
            Some(&i) if i != UNSEEN => i as usize,
            _ => self.first_sight(k, id),
        }
    }

    // out of line, so that the lookup above inlines into the counting loop
    #[cold]
    #[inline(never)]
    fn first_sight(&mut self, k: usize, id: u32) -> usize {
        if k >= self.of.len() {
            self.of.resize(k + 1, UNSEEN);
        }
        self.of[k] = self.ids.len() as u32;
        self.ids.push(id);
        self.ids.len() - 1
    }
}

/// One (model, stratum): its conversations per response type, and per AI value.
#[derive(Clone, Debug)]
struct Slot {
    model: u32,
    stratum: u32,
    rt: RtCounts,
    /// by local AI value index, grown on demand: a count's low 32 bits (half the cache
    /// lines of full counts)...
    ai: Vec<u32>,
    /// ...and, where it has passed them, the rest: local AI value index -> count >> 32
    high: HashMap<u32, u64>,
}

impl Slot {
    fn count(&self, j: usize) -> u64 {
        let high = if self.high.is_empty() {
            0
        } else {
            self.high.get(&(j as u32)).copied().unwrap_or(0)
        };
        self.ai[j] as u64 + (high << 32)
    }
}

/// A conversation's AI values all land in its (model, stratum)'s one vector: a few cache
/// lines, where a map keyed by (value, stratum) would scatter them across megabytes.
#[derive(Clone, Debug, Default)]
struct Dense {
    models: Local,
    strata: Local,
    values: Local,
    /// local stratum -> local model -> index into `slots`, or UNSEEN
    slot_of: Vec<Vec<u32>>,
    slots: Vec<Slot>,
    /// Memory held, in AI value counts: the counts allocated, over all slots, and the slots
    size: usize,
}

impl Dense {
    #[inline]
    fn slot(&mut self, model: u32, stratum: u32) -> usize {
        let s = self.strata.index(stratum);
        let m = self.models.index(model);
        match self.slot_of.get(s).and_then(|row| row.get(m)) {
            Some(&i) if i != UNSEEN => i as usize,
            _ => self.new_slot(s, m, model, stratum),
        }
    }

    // out of line, so that the lookup above inlines into the counting loop
    #[cold]
    #[inline(never)]
    fn new_slot(&mut self, s: usize, m: usize, model: u32, stratum: u32) -> usize {
        if s == self.slot_of.len() {
            self.slot_of.push(Vec::new());
        }
        let row = &mut self.slot_of[s];
        if m >= row.len() {
            row.resize(m + 1, UNSEEN);
        }
        if row[m] == UNSEEN {
            row[m] = self.slots.len() as u32;
            self.size += SLOT_SIZE;
            self.slots.push(Slot {
                model,
                stratum,
                rt: [0; 7],
                ai: Vec::new(),
                high: HashMap::new(),
            });
        }
        row[m] as usize
    }

    /// One conversation in `slot`: its response type, and each of its (distinct) AI values.
    /// `add_ai` with every count 1, without the 64-bit sums on the way.
    #[inline]
    fn count(&mut self, slot: usize, rt: u8, ai: &[u32]) {
        let Dense {
            values,
            slots,
            size,
            ..
        } = self;
        let slot = &mut slots[slot];
        slot.rt[rt as usize] += 1;
        for &v in ai {
            let j = values.index(v);
            if j >= slot.ai.len() {
                let before = slot.ai.capacity();
                slot.ai.resize(j + 1, 0);
                *size += slot.ai.capacity() - before;
            }
            let (low, carry) = slot.ai[j].overflowing_add(1);
            slot.ai[j] = low;
            if carry {
                *slot.high.entry(j as u32).or_insert(0) += 1;
            }
        }
    }

    #[inline]
    fn add_ai(&mut self, slot: usize, values: impl Iterator<Item = (u32, u64)>) {
        let slot = &mut self.slots[slot];
        for (v, n) in values {
            let j = self.values.index(v);
            if j >= slot.ai.len() {
                let before = slot.ai.capacity();
                slot.ai.resize(j + 1, 0);
                self.size += slot.ai.capacity() - before;
            }
            let total = slot.ai[j] as u64 + n;
            slot.ai[j] = total as u32;
            if total >> 32 > 0 {
                *slot.high.entry(j as u32).or_insert(0) += total >> 32;
            }
        }
    }

    fn rt_cells(&self) -> impl Iterator<Item = (u32, u32, RtCounts)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.rt.iter().any(|&n| n > 0))
            .map(|s| (s.model, s.stratum, s.rt))
    }

    fn ai_cells(&self) -> impl Iterator<Item = (u32, u32, u32, u64)> + '_ {
        self.slots.iter().flat_map(move |s| {
            (0..s.ai.len())
                .map(move |j| (s.model, s.stratum, self.values.ids[j], s.count(j)))
                .filter(|c| c.3 > 0)
        })
    }
}

#[derive(Clone, Debug, Default)]
struct Sparse {
    /// pack(model, stratum) -> conversations per response type
    rt: HashMap<u64, RtCounts>,
    /// model -> pack(AI value, stratum) -> conversations
    ai: HashMap<u32, HashMap<u64, u64>>,
}

impl Sparse {
    fn add_rt(&mut self, model: u32, stratum: u32, counts: &RtCounts) {
        let mine = self.rt.entry(pack(model, stratum)).or_insert([0; 7]);
        mine.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
    }

    #[inline]
    fn add_ai(&mut self, model: u32, stratum: u32, values: impl Iterator<Item = (u32, u64)>) {
        let m = self.ai.entry(model).or_default();
        for (v, n) in values {
            *m.entry(pack(v, stratum)).or_insert(0) += n;
        }
    }

    fn rt_cells(&self) -> impl Iterator<Item = (u32, u32, RtCounts)> + '_ {
        self.rt.iter().map(|(&k, &c)| {
            let (m, s) = unpack(k);
            (m, s, c)
        })
    }

    fn ai_cells(&self) -> impl Iterator<Item = (u32, u32, u32, u64)> + '_ {
        self.ai.iter().flat_map(|(&m, cells)| {
            cells.iter().map(move |(&k, &n)| {
                let (v, s) = unpack(k);
                (m, s, v, n)
            })
        })
    }
}

/// The canonical form: cells with conversations, sorted.
#[derive(Serialize, Deserialize)]
struct Flat {
    /// (model, stratum, conversations per response type)
    rt: Vec<(u32, u32, RtCounts)>,
    /// (model, stratum, AI value, conversations)
    ai: Vec<(u32, u32, u32, u64)>,
}

impl Default for ModelStrata {
    fn default() -> Self {
        ModelStrata::with_budget(DENSE_BUDGET)
    }
}

impl ModelStrata {
    fn with_budget(budget: usize) -> Self {
        ModelStrata {
            layout: Layout::Dense(Dense::default()),
            budget,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rt_cells().next().is_none()
    }

    /// Whether any conversation has a stratum of its own (not the pooled one).
    pub fn has_strata(&self) -> bool {
        self.rt_cells().any(|(_, s, _)| s != NO_STRATUM)
    }

    /// Every (model, stratum) with conversations: its conversations per response type (their
    /// sum: the conversations). In no particular order.
    pub fn rt_cells(&self) -> Box<dyn Iterator<Item = (u32, u32, RtCounts)> + '_> {
        match &self.layout {
            Layout::Dense(d) => Box::new(d.rt_cells()),
            Layout::Sparse(s) => Box::new(s.rt_cells()),
        }
    }

    /// Every (model, stratum, AI value) with conversations, and their number. In no
    /// particular order.
    pub fn ai_cells(&self) -> Box<dyn Iterator<Item = (u32, u32, u32, u64)> + '_> {
        match &self.layout {
            Layout::Dense(d) => Box::new(d.ai_cells()),
            Layout::Sparse(s) => Box::new(s.ai_cells()),
        }
    }

    /// Counts one conversation: its model, stratum, response type and (distinct) AI values.
    #[inline]
    pub(crate) fn add(&mut self, model: u32, stratum: u32, rt: u8, ai: &[u32]) {
        match &mut self.layout {
            Layout::Dense(d) => {
                let slot = d.slot(model, stratum);
                d.count(slot, rt, ai);
                self.check_budget();
            }
            Layout::Sparse(s) => {
                s.rt.entry(pack(model, stratum)).or_insert([0; 7])[rt as usize] += 1;
                if !ai.is_empty() {
                    s.add_ai(model, stratum, ai.iter().map(|&v| (v, 1)));
                }
            }
        }
    }

    fn add_rt(&mut self, model: u32, stratum: u32, counts: &RtCounts) {
        match &mut self.layout {
            Layout::Dense(d) => {
                let slot = d.slot(model, stratum);
                let mine = &mut d.slots[slot].rt;
                mine.iter_mut().zip(counts).for_each(|(a, b)| *a += b);
                self.check_budget();
            }
            Layout::Sparse(s) => s.add_rt(model, stratum, counts),
        }
    }

    fn add_ai(&mut self, model: u32, stratum: u32, value: u32, n: u64) {
        let values = std::iter::once((value, n));
        match &mut self.layout {
            Layout::Dense(d) => {
                let slot = d.slot(model, stratum);
                d.add_ai(slot, values);
                self.check_budget();
            }
            Layout::Sparse(s) => s.add_ai(model, stratum, values),
        }
    }

    #[inline]
    fn check_budget(&mut self) {
        if let Layout::Dense(d) = &self.layout {
            if d.size > self.budget {
                self.make_sparse();
            }
        }
    }

    fn make_sparse(&mut self) {
        let Layout::Dense(dense) =
            std::mem::replace(&mut self.layout, Layout::Sparse(Sparse::default()))
        else {
            return;
        };
        let Layout::Sparse(sparse) = &mut self.layout else {
            unreachable!()
        };
        let ids = &dense.values.ids;
        // slot by slot, each freed once moved: the two layouts are never both whole in memory
        for slot in dense.slots {
            if slot.rt.iter().any(|&n| n > 0) {
                sparse.add_rt(slot.model, slot.stratum, &slot.rt);
            }
            let cells = (0..slot.ai.len()).map(|j| (ids[j], slot.count(j)));
            sparse.add_ai(slot.model, slot.stratum, cells.filter(|c| c.1 > 0));
        }
    }

    /// Rebuilt dense where it fits the budget (a state read back from bytes starts sparse, as
    /// its ids are only checked after reading).
    pub(crate) fn densify(&mut self) {
        let Layout::Sparse(s) = &self.layout else {
            return;
        };
        if s.ai.values().map(HashMap::len).sum::<usize>() > self.budget {
            return;
        }
        let mut dense = ModelStrata::with_budget(self.budget);
        dense.merge(self, &|id| id);
        *self = dense;
    }

    pub(crate) fn merge(&mut self, other: &ModelStrata, re: &impl Fn(u32) -> u32) {
        for (m, s, c) in other.rt_cells() {
            self.add_rt(re(m), re(s), &c);
        }
        for (m, s, v, n) in other.ai_cells() {
            self.add_ai(re(m), re(s), re(v), n);
        }
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        let rt = self.rt_cells().flat_map(|(m, s, _)| [m, s]);
        rt.chain(self.ai_cells().flat_map(|(m, s, v, _)| [m, s, v]))
    }

    fn flat(&self) -> Flat {
        let mut rt: Vec<_> = self.rt_cells().collect();
        let mut ai: Vec<_> = self.ai_cells().collect();
        rt.sort_unstable_by_key(|c| (c.0, c.1));
        ai.sort_unstable_by_key(|c| (c.0, c.1, c.2));
        Flat { rt, ai }
    }
}

impl PartialEq for ModelStrata {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.flat(), other.flat());
        a.rt == b.rt && a.ai == b.ai
    }
}

impl Eq for ModelStrata {}

impl Serialize for ModelStrata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.flat().serialize(s)
    }
}

// Read back sparse: the ids are not yet known to be in range, and a dense layout is indexed
// by them.
impl<'de> Deserialize<'de> for ModelStrata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let flat = Flat::deserialize(d)?;
        let mut sparse = Sparse::default();
        // only cells with conversations, as every layout holds
        for (m, s, c) in flat.rt.into_iter().filter(|c| c.2.iter().any(|&n| n > 0)) {
            sparse.add_rt(m, s, &c);
        }
        for (m, s, v, n) in flat.ai.into_iter().filter(|c| c.3 > 0) {
            sparse.add_ai(m, s, std::iter::once((v, n)));
        }
        Ok(ModelStrata {
            layout: Layout::Sparse(sparse),
            budget: DENSE_BUDGET,
        })
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

    /// Turns the model strata dense where they fit (after reading a state back, its ids
    /// checked).
    pub(crate) fn densify(&mut self) {
        self.by_cluster.densify();
        self.by_task.densify();
    }

    /// Whether every string id is one of `n` (strata may also be `NO_STRATUM`).
    pub fn ids_in_range(&self, n: usize) -> bool {
        let ok = |id: u32| id == NO_STRATUM || (id as usize) < n;
        self.by_cluster.ids().chain(self.by_task.ids()).all(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use std::collections::BTreeMap;

    /// (model, stratum, response type, distinct sorted AI values) per conversation.
    type Conv = (u32, u32, u8, Vec<u32>);

    fn conversations(seed: u64, n: usize) -> Vec<Conv> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let stratum = match rng.random_range(0..10) {
                    0 => NO_STRATUM,
                    _ => rng.random_range(100..160),
                };
                let mut ai: Vec<u32> = (0..rng.random_range(0..6))
                    .map(|_| rng.random_range(1000..1400))
                    .collect();
                ai.sort_unstable();
                ai.dedup();
                (rng.random_range(0..4), stratum, rng.random_range(0..7), ai)
            })
            .collect()
    }

    type Plain = (
        BTreeMap<(u32, u32), RtCounts>,
        BTreeMap<(u32, u32, u32), u64>,
    );

    /// The oracle: plain map counting.
    fn plain(convs: &[Conv]) -> Plain {
        let (mut rt, mut ai) = (BTreeMap::new(), BTreeMap::new());
        for (m, s, r, values) in convs {
            rt.entry((*m, *s)).or_insert([0; 7])[*r as usize] += 1;
            for &v in values {
                *ai.entry((*m, *s, v)).or_insert(0) += 1;
            }
        }
        (rt, ai)
    }

    fn counted(ms: &ModelStrata) -> Plain {
        let rt = ms.rt_cells().map(|(m, s, c)| ((m, s), c)).collect();
        let ai = ms.ai_cells().map(|(m, s, v, n)| ((m, s, v), n)).collect();
        (rt, ai)
    }

    fn count(convs: &[Conv], budget: usize) -> ModelStrata {
        let mut ms = ModelStrata::with_budget(budget);
        for (m, s, r, ai) in convs {
            ms.add(*m, *s, *r, ai);
        }
        ms
    }

    fn is_dense(ms: &ModelStrata) -> bool {
        matches!(ms.layout, Layout::Dense(_))
    }

    fn bytes(ms: &ModelStrata) -> Vec<u8> {
        postcard::to_stdvec(ms).unwrap()
    }

    #[test]
    fn dense_and_sparse_counts_equal_plain_counting() {
        let convs = conversations(7, 3000);
        let want = plain(&convs);
        let dense = count(&convs, DENSE_BUDGET);
        // a budget that the first few hundred conversations pass: the layout changes mid-way
        let sparse = count(&convs, 2000);
        assert!(is_dense(&dense) && !is_dense(&sparse));
        assert_eq!(counted(&dense), want);
        assert_eq!(counted(&sparse), want);
        assert_eq!(dense, sparse);
        assert_eq!(bytes(&dense), bytes(&sparse));
        assert!(dense.has_strata() && !dense.is_empty());

        let back: ModelStrata = postcard::from_bytes(&bytes(&dense)).unwrap();
        assert_eq!(counted(&back), want);
        let mut again = back.clone();
        again.densify();
        assert!(is_dense(&again));
        assert_eq!(counted(&again), want);
    }

    #[test]
    fn dense_counts_carry_past_32_bits() {
        let (dense, sparse) = (ModelStrata::default(), ModelStrata::with_budget(0));
        let mut both = [dense, sparse];
        // the low 32 bits end at 2^32 - 2, so that the conversations added after carry too
        let big = [u32::MAX as u64 - 1, 1 << 32, (5 << 32) + 7, (1 << 32) - 7];
        for ms in &mut both {
            ms.add_rt(0, 9, &[1, 0, 0, 0, 0, 0, 0]);
            for n in big {
                ms.add_ai(0, 9, 20, n);
            }
            ms.add_ai(0, 9, 21, 1 << 32);
            for _ in 0..3 {
                ms.add(0, 9, 2, &[20]);
            }
        }
        assert!(is_dense(&both[0]) && !is_dense(&both[1]));
        let want = big.iter().sum::<u64>() + 3;
        for ms in &both {
            let mut cells: Vec<_> = ms.ai_cells().collect();
            cells.sort_unstable();
            assert_eq!(cells, [(0, 9, 20, want), (0, 9, 21, 1 << 32)]);
        }
        assert_eq!(bytes(&both[0]), bytes(&both[1]));
    }

    #[test]
    fn merges_of_dense_and_sparse_parts_equal_one_pass() {
        let convs = conversations(11, 4000);
        let want = plain(&convs);
        let (a, b) = convs.split_at(1500);
        let same = |id: u32| id;
        for (budget_a, budget_b) in [(DENSE_BUDGET, 1000), (1000, DENSE_BUDGET), (1000, 1000)] {
            let (da, db) = (count(a, budget_a), count(b, budget_b));
            assert_eq!(is_dense(&da), budget_a == DENSE_BUDGET);
            for (mut into, from) in [(da.clone(), &db), (db.clone(), &da)] {
                into.merge(from, &same);
                assert_eq!(counted(&into), want);
            }
        }
        // a dense merge that passes the budget turns sparse on the way
        let size = |ms: &ModelStrata| match &ms.layout {
            Layout::Dense(d) => d.size,
            Layout::Sparse(_) => unreachable!(),
        };
        let budget = size(&count(a, DENSE_BUDGET));
        assert!(budget < size(&count(&convs, DENSE_BUDGET)));
        let mut small = count(a, budget);
        assert!(is_dense(&small));
        small.merge(&count(b, DENSE_BUDGET), &same);
        assert!(!is_dense(&small));
        assert_eq!(counted(&small), want);
    }

    #[test]
    fn a_merge_maps_every_id() {
        let convs = conversations(3, 500);
        // ids of the other state: its values and strata shifted, models reversed
        let shift = |id: u32| match id {
            NO_STRATUM => NO_STRATUM,
            0..=3 => 3 - id,
            _ => id + 10_000,
        };
        let moved: Vec<Conv> = convs
            .iter()
            .map(|(m, s, r, ai)| {
                (
                    shift(*m),
                    shift(*s),
                    *r,
                    ai.iter().map(|&v| shift(v)).collect(),
                )
            })
            .collect();
        for budget in [DENSE_BUDGET, 100] {
            let mut into = ModelStrata::with_budget(budget);
            into.merge(&count(&convs, budget), &shift);
            assert_eq!(counted(&into), plain(&moved));
        }
    }
}
