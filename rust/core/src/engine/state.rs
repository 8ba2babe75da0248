//! The mergeable accumulator: everything the statistics need, and nothing that grows with rows.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

pub use super::cells::{pack, unpack};
use super::cells::{Cells, PARTS};
use super::normalize::normalize_into;
use super::strata::Strata;
use super::users::Counter;
use crate::schema::RESPONSE_TYPES;

/// Interned id standing for "normalises to the empty string".
pub const EMPTY: u32 = u32::MAX;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub with_ai: Counter,
    pub with_human: Counter,
    pub sum_ai: u64,
    pub sum_human: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Normalised strings; ids index this.
    pub strings: Vec<String>,
    #[serde(skip)]
    index: HashMap<Box<str>, u32>,
    /// Raw input string -> id (or EMPTY): normalisation runs once per distinct raw string.
    #[serde(skip)]
    raw: HashMap<Box<str>, u32>,
    #[serde(skip)]
    rt_of: HashMap<u32, u8>,

    pub n_rows: u64,
    pub n_conversations: u64,
    pub n_not_subjective: u64,
    pub rejects: BTreeMap<String, u64>,
    /// Per tracked column: conversations and users per key.
    pub keys: Vec<HashMap<u32, Counter>>,
    /// Per tracked column: conversations with at least one key, and total keys.
    pub with_any: Vec<u64>,
    pub sum_len: Vec<u64>,
    /// Per table: sparse cells keyed by pack(row id, column id).
    pub tables: Vec<Cells>,
    pub rt_all: Vec<Counter>,
    pub rt_with_human: Vec<Counter>,
    pub rt_mirrored: Vec<Counter>,
    /// Per response type: conversations with at least one explicitly stated AI value.
    pub rt_explicit: Vec<Counter>,
    pub models: HashMap<u32, ModelStats>,
    pub strata: Strata,
}

impl State {
    pub fn new(n_columns: usize, n_tables: usize) -> Self {
        State {
            keys: vec![HashMap::new(); n_columns],
            with_any: vec![0; n_columns],
            sum_len: vec![0; n_columns],
            tables: vec![Cells::default(); n_tables],
            rt_all: vec![Counter::default(); RESPONSE_TYPES.len()],
            rt_with_human: vec![Counter::default(); RESPONSE_TYPES.len()],
            rt_mirrored: vec![Counter::default(); RESPONSE_TYPES.len()],
            rt_explicit: vec![Counter::default(); RESPONSE_TYPES.len()],
            ..Default::default()
        }
    }

    pub fn string(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    /// The id of an already normalised string, if it has one.
    pub fn id_of(&self, normalized: &str) -> Option<u32> {
        self.index.get(normalized).copied()
    }

    /// Interns an already normalised string.
    pub fn intern(&mut self, normalized: &str) -> u32 {
        if let Some(&id) = self.index.get(normalized) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(normalized.to_owned());
        self.index.insert(normalized.into(), id);
        id
    }

    /// Id of a raw input string after normalisation (EMPTY if nothing is left of it).
    #[inline]
    pub fn resolve_raw(&mut self, raw: &str, scratch: &mut String) -> u32 {
        if let Some(&id) = self.raw.get(raw) {
            return id;
        }
        normalize_into(raw, scratch);
        let id = if scratch.is_empty() {
            EMPTY
        } else {
            let s = std::mem::take(scratch);
            let id = self.intern(&s);
            *scratch = s;
            id
        };
        self.raw.insert(raw.into(), id);
        id
    }

    /// Index into RESPONSE_TYPES, or None for a string that is not one of them.
    #[inline]
    pub fn response_type_of(&mut self, id: u32) -> Option<u8> {
        if let Some(&rt) = self.rt_of.get(&id) {
            return (rt != u8::MAX).then_some(rt);
        }
        let s = &self.strings[id as usize];
        let rt = RESPONSE_TYPES
            .iter()
            .position(|t| t == s)
            .map_or(u8::MAX, |p| p as u8);
        self.rt_of.insert(id, rt);
        (rt != u8::MAX).then_some(rt)
    }

    /// As `response_type_of`, for an id it has already seen (None otherwise).
    #[inline]
    pub fn known_response_type(&self, id: u32) -> Option<u8> {
        self.rt_of.get(&id).copied().filter(|&rt| rt != u8::MAX)
    }

    /// Rebuilds the lookup index after deserialisation; fails on duplicate strings.
    pub(crate) fn rebuild_index(&mut self) -> Result<(), String> {
        self.index.clear();
        for (i, s) in self.strings.iter().enumerate() {
            if self.index.insert(s.as_str().into(), i as u32).is_some() {
                return Err("duplicate interned string".into());
            }
        }
        Ok(())
    }

    /// Checks the invariants a decoded state must hold before it is used.
    pub(crate) fn validate(&self, n_columns: usize, n_tables: usize) -> Result<(), String> {
        let n = self.strings.len() as u64;
        let ok_id = |id: u32| (id as u64) < n;
        if self.keys.len() != n_columns
            || self.with_any.len() != n_columns
            || self.sum_len.len() != n_columns
            || self.tables.len() != n_tables
            || self.rt_all.len() != RESPONSE_TYPES.len()
            || self.rt_with_human.len() != RESPONSE_TYPES.len()
            || self.rt_mirrored.len() != RESPONSE_TYPES.len()
            || self.rt_explicit.len() != RESPONSE_TYPES.len()
        {
            return Err("layout does not match the engine settings".into());
        }
        if !self.keys.iter().all(|m| m.keys().all(|&id| ok_id(id)))
            || !self.tables.iter().all(|t| {
                t.iter().all(|(&k, _)| {
                    let (a, b) = unpack(k);
                    ok_id(a) && ok_id(b)
                })
            })
            || !self.models.keys().all(|&id| ok_id(id))
            || !self.strata.ids_in_range(self.strings.len())
        {
            return Err("string id out of range".into());
        }
        let consistent = |c: &Counter| c.is_consistent();
        if !self.keys.iter().all(|m| m.values().all(consistent))
            || !self
                .tables
                .iter()
                .all(|t| t.iter().all(|(_, c)| consistent(c)))
            || !self
                .rt_all
                .iter()
                .chain(&self.rt_with_human)
                .chain(&self.rt_mirrored)
                .chain(&self.rt_explicit)
                .all(consistent)
            || !self
                .models
                .values()
                .all(|m| consistent(&m.with_ai) && consistent(&m.with_human))
        {
            return Err("a counter holds more users than conversations".into());
        }
        Ok(())
    }

    /// Folds `other` into `self`. Associative and commutative in everything results depend on.
    /// Returns how `other`'s string ids map to this state's.
    pub fn merge_from(&mut self, other: &State, cap: u32) -> Vec<u32> {
        let remap: Vec<u32> = other.strings.iter().map(|s| self.intern(s)).collect();
        self.n_rows += other.n_rows;
        self.n_conversations += other.n_conversations;
        self.n_not_subjective += other.n_not_subjective;
        for (reason, n) in &other.rejects {
            *self.rejects.entry(reason.clone()).or_insert(0) += n;
        }
        for (mine, theirs) in self.keys.iter_mut().zip(&other.keys) {
            mine.reserve(theirs.len());
            for (&id, c) in theirs {
                mine.entry(remap[id as usize]).or_default().merge(c, cap);
            }
        }
        for (a, b) in self.with_any.iter_mut().zip(&other.with_any) {
            *a += b;
        }
        for (a, b) in self.sum_len.iter_mut().zip(&other.sum_len) {
            *a += b;
        }
        for (t, theirs) in other.tables.iter().enumerate() {
            for p in 0..PARTS {
                self.merge_cells(t, &remap, theirs.part(p), cap);
            }
        }
        for (mine, theirs) in [
            (&mut self.rt_all, &other.rt_all),
            (&mut self.rt_with_human, &other.rt_with_human),
            (&mut self.rt_mirrored, &other.rt_mirrored),
            (&mut self.rt_explicit, &other.rt_explicit),
        ] {
            for (a, b) in mine.iter_mut().zip(theirs) {
                a.merge(b, cap);
            }
        }
        for (&id, m) in &other.models {
            let mine = self.models.entry(remap[id as usize]).or_default();
            mine.with_ai.merge(&m.with_ai, cap);
            mine.with_human.merge(&m.with_human, cap);
            mine.sum_ai += m.sum_ai;
            mine.sum_human += m.sum_human;
        }
        self.strata.merge(&other.strata, &remap);
        remap
    }

    /// Folds cells of table `t` whose string ids are `remap`'s keys into this state.
    pub fn merge_cells(
        &mut self,
        t: usize,
        remap: &[u32],
        cells: &HashMap<u64, Counter>,
        cap: u32,
    ) {
        let mine = &mut self.tables[t];
        for (&k, c) in cells {
            let (a, b) = unpack(k);
            mine.counter(pack(remap[a as usize], remap[b as usize]))
                .merge(c, cap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_strings_share_the_normalised_id() {
        let mut s = State::new(1, 0);
        let mut buf = String::new();
        let a = s.resolve_raw("Honesty", &mut buf);
        let b = s.resolve_raw("  honesty ", &mut buf);
        assert_eq!(a, b);
        assert_eq!(s.resolve_raw(" \t", &mut buf), EMPTY);
        assert_eq!(s.strings, vec!["honesty".to_string()]);
    }

    #[test]
    fn response_types_are_recognised() {
        let mut s = State::new(1, 0);
        let mut buf = String::new();
        let id = s.resolve_raw("Strong  Support", &mut buf);
        assert_eq!(s.response_type_of(id), Some(0));
        let bad = s.resolve_raw("enthusiastic", &mut buf);
        assert_eq!(s.response_type_of(bad), None);
    }
}
