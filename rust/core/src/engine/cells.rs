//! The cells of one co-occurrence table, split by key into `PARTS` hash maps.
//!
//! A large table (`human_values x ai_values` keeps finding new pairs) outgrows the CPU caches,
//! and counting into one big map costs a cache miss per update. Split by key, a large table's
//! updates from one batch are sorted into their parts first and then applied one part at a
//! time: each part is small enough to stay in cache, and different parts are counted on
//! different threads. A small table is counted as its updates come. The same split is the
//! spill files' partitioning, so a part is also the unit written to and read back from disk.

use hashbrown::HashMap;
use rayon::prelude::*;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::users::{insert_default, Counter, UserId};

/// A cell's key: its row id in the high half, its column id in the low half.
#[inline]
pub fn pack(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

#[inline]
pub fn unpack(k: u64) -> (u32, u32) {
    ((k >> 32) as u32, k as u32)
}

/// Row totals, column totals and the grand total of a table, by id.
pub type Margins = (HashMap<u32, u64>, HashMap<u32, u64>, u64);

/// Parts per table.
pub const PARTS: usize = 128;

/// Below this many cells a table fits in cache as it is: its updates are applied directly.
const SORT_MIN_CELLS: usize = 1 << 15;

/// Which part a cell belongs to; any fixed function of the key works.
#[inline]
pub fn part_of(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57) as usize
}

/// Approximate heap bytes held by a cell map: buckets (key, counter and control byte) at
/// hashbrown's load factor, plus ids moved to the heap by cells with more than four users.
pub fn map_bytes(map: &HashMap<u64, Counter>) -> usize {
    let entry = std::mem::size_of::<(u64, Counter)>() + 1;
    map.capacity() * entry * 8 / 7 + map.len() * 8
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cells {
    parts: Vec<HashMap<u64, Counter>>,
}

impl Default for Cells {
    fn default() -> Self {
        Cells {
            parts: vec![HashMap::new(); PARTS],
        }
    }
}

impl Cells {
    pub fn len(&self) -> usize {
        self.parts.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(HashMap::is_empty)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Counter)> {
        self.parts.iter().flat_map(|m| m.iter())
    }

    pub fn get(&self, key: u64) -> Option<&Counter> {
        self.parts[part_of(key)].get(&key)
    }

    /// The counter of `key`, created empty if absent.
    #[inline(always)]
    pub fn counter(&mut self, key: u64) -> &mut Counter {
        cell(&mut self.parts[part_of(key)], key)
    }

    /// One more conversation of `user` in the cell of `key` (created if absent); with `rt`,
    /// its response type in the cell's mix too.
    #[inline(always)]
    pub fn add(&mut self, key: u64, user: UserId, cap: u32, rt: Option<u8>) {
        add(&mut self.parts[part_of(key)], key, user, cap, rt);
    }

    /// Part `p`: the cells whose `part_of(key)` is `p`.
    pub fn part(&self, p: usize) -> &HashMap<u64, Counter> {
        &self.parts[p]
    }

    /// Replaces part `p`; every key of `m` must belong to it.
    pub fn set_part(&mut self, p: usize, m: HashMap<u64, Counter>) {
        debug_assert!(m.keys().all(|&k| part_of(k) == p));
        self.parts[p] = m;
    }

    /// Heap bytes held now (an estimate).
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(map_bytes).sum()
    }

    /// Heap bytes after adding `grown` new cells spread evenly over the parts: a part that has
    /// to regrow doubles. Parts regrow one at a time, so this is also the peak.
    pub fn bytes_after(&self, grown: usize) -> usize {
        let per_part = grown.div_ceil(PARTS);
        self.parts
            .iter()
            .map(|m| {
                let b = map_bytes(m);
                if m.len() + per_part > m.capacity() {
                    2 * b.max(map_bytes(&HashMap::with_capacity(per_part)))
                } else {
                    b
                }
            })
            .sum()
    }

    /// Whether a batch's updates should be sorted by part before they are applied (a table
    /// too large for the caches) rather than applied as they come.
    pub fn wants_sorting(&self) -> bool {
        self.len() >= SORT_MIN_CELLS
    }

    /// Applies the updates sorted into `scatter`, each part on its own rayon task; with `mix`,
    /// the cells count their response types too.
    pub fn apply(&mut self, scatter: &Scatter, cap: u32, mix: bool) {
        self.parts
            .par_iter_mut()
            .zip(scatter.parts.par_iter())
            .with_min_len(PARTS / 16)
            .for_each(|(m, ups)| {
                if mix {
                    for &(k, user, rt) in ups {
                        add(m, k, user, cap, Some(rt));
                    }
                } else {
                    for &(k, user, _) in ups {
                        add(m, k, user, cap, None);
                    }
                }
            });
    }
}

/// The counter of `key` in `m`, created empty if absent.
#[inline(always)]
fn cell(m: &mut HashMap<u64, Counter>, key: u64) -> &mut Counter {
    m.entry(key).or_default()
}

/// `Cells::add` on one part: always inlined into the counting loops, the one place a table's
/// cells are updated one by one.
#[inline(always)]
fn add(m: &mut HashMap<u64, Counter>, key: u64, user: UserId, cap: u32, rt: Option<u8>) {
    // no closure (`users::update`): it would be left out of line, a call per update
    match m.get_mut(&key) {
        Some(c) => count(c, user, cap, rt),
        None => count(insert_default(m, key), user, cap, rt),
    }
}

#[inline(always)]
fn count(c: &mut Counter, user: UserId, cap: u32, rt: Option<u8>) {
    match rt {
        Some(rt) => c.add_rt(user, cap, rt),
        None => c.add(user, cap),
    }
}

/// Reusable buffers: one batch's updates of a table (key, user, response type), sorted by
/// part. The response type rides in what would be the tuple's padding.
#[derive(Clone, Debug, Default)]
pub struct Scatter {
    parts: Vec<Vec<(u64, UserId, u8)>>,
}

impl Scatter {
    pub fn clear(&mut self) {
        self.parts.resize_with(PARTS, Vec::new);
        self.parts.iter_mut().for_each(Vec::clear);
    }

    #[inline]
    pub fn push(&mut self, key: u64, user: UserId, rt: u8) {
        self.parts[part_of(key)].push((key, user, rt));
    }
}

// Serialised as one flat map, exactly as a single `HashMap<u64, Counter>` was: stored states
// keep their format.
impl Serialize for Cells {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // with its length up front: compact formats (postcard) need it
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, c) in self.iter() {
            map.serialize_entry(k, c)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Cells {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let flat: HashMap<u64, Counter> = HashMap::deserialize(d)?;
        let mut cells = Cells::default();
        for (k, c) in flat {
            cells.parts[part_of(k)].insert(k, c);
        }
        Ok(cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_evenly() {
        let mut seen = vec![0u32; PARTS];
        for a in 0..200u64 {
            for b in 0..200u64 {
                seen[part_of((a << 32) | b)] += 1;
            }
        }
        let (lo, hi) = (seen.iter().min().unwrap(), seen.iter().max().unwrap());
        assert!(*lo > 0 && *hi < 2 * *lo, "uneven parts: {lo}..{hi}");
    }

    #[test]
    fn sorted_and_direct_counting_agree() {
        // enough cells that the second batch takes the sorted path; response types too
        let ups: Vec<(u64, UserId, u8)> = (0..200_000u64)
            .map(|i| {
                (
                    (i % 50_000) * 0x1_0000_0001,
                    (i % 13) as UserId,
                    (i % 7) as u8,
                )
            })
            .collect();
        let mut sorted = Cells::default();
        for &(k, u, rt) in &ups[..100_000] {
            sorted.counter(k).add_rt(u, 10, rt);
        }
        assert!(sorted.wants_sorting());
        let mut scatter = Scatter::default();
        scatter.clear();
        for &(k, u, rt) in &ups[100_000..] {
            scatter.push(k, u, rt);
        }
        sorted.apply(&scatter, 10, true);
        let mut direct: HashMap<u64, Counter> = HashMap::new();
        let mut mixes: HashMap<u64, [u64; 7]> = HashMap::new();
        for &(k, u, rt) in &ups {
            direct.entry(k).or_default().add_rt(u, 10, rt);
            mixes.entry(k).or_default()[rt as usize] += 1;
        }
        assert_eq!(sorted.len(), direct.len());
        for (k, c) in &direct {
            assert_eq!(sorted.get(*k), Some(c));
            assert_eq!(c.mix().counts(), mixes[k]);
        }
    }

    #[test]
    fn serialises_as_a_flat_map() {
        let mut cells = Cells::default();
        let mut flat: HashMap<u64, Counter> = HashMap::new();
        for k in 0..300u64 {
            cells.counter(k * 7919).add(k as UserId, 10);
            flat.entry(k * 7919).or_default().add(k as UserId, 10);
        }
        let bytes = postcard::to_stdvec(&cells).unwrap();
        let back: HashMap<u64, Counter> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, flat);
        let again: Cells = postcard::from_bytes(&postcard::to_stdvec(&flat).unwrap()).unwrap();
        assert_eq!(again, cells);
    }
}
