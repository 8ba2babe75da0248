//! Three-way counts: each AI value and each response type, by model and task cluster.
//!
//! The comparison of two models within tasks (the paper's appendix B.5.3) needs, per value, its
//! conversations in every (model, task cluster) stratum. Counting that as one more table would
//! add a full pass over every row's values. Instead the `ai_values x task_cluster` and
//! `ai_values x model` tables are not counted at all: one table `ai_values x stratum`, a stratum
//! being a (model, task cluster) pair, is counted in their place, and both two-way tables are
//! derived from it when the results are built, by summing over the models or over the clusters.
//! The same holds for `response_type x model`, counted as `response_type x stratum`, which also
//! gives each stratum's number of conversations. Sums of counters are exact, distinct users
//! included: a union of user sets that saturate at `min_users` is saturated when any of them is,
//! and is the plain union otherwise.
//!
//! A stratum is interned as a string "model\tcluster" (either side empty when the row has none).
//! Normalisation turns every tab into a space, so no value, model or cluster name holds one: the
//! pair splits back unambiguously, and the string can never be mistaken for a published name.
//! Being an interned string, a stratum merges, spills and serialises like any other table key.

use hashbrown::HashMap;
use rayon::prelude::*;

use crate::cells::{part_of, Cells, PARTS};
use crate::error::Result;
use crate::ingest::Resolved;
use crate::report::TableCells;
use crate::state::{pack, unpack, State, EMPTY};
use crate::users::Counter;

/// The plan's name for the virtual stratum column: no input column is read for it.
pub const COLUMN: &str = "\t(model, task_cluster)";

const SEP: char = '\t';

/// How a table counted no more is rebuilt from a three-way one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// `x task_cluster`: sum over the models.
    Cluster,
    /// `x model`: sum over the clusters.
    Model,
}

#[derive(Clone, Debug)]
pub struct StrataPlan {
    /// Index of the virtual stratum column in the plan's columns.
    pub column: usize,
    pub model: usize,
    pub cluster: usize,
    /// `ai_values x stratum` and `response_type x stratum`, indices into the plan's tables.
    pub values_table: usize,
    pub rt_table: usize,
    /// (table derived, table it is derived from, what it keeps)
    pub derived: Vec<(usize, usize, Keep)>,
}

impl StrataPlan {
    /// Whether table `t` is rebuilt from the three-way counts instead of counted.
    pub fn is_derived(&self, t: usize) -> bool {
        self.derived.iter().any(|d| d.0 == t)
    }

    /// Whether table `t` is one of the three-way tables (never published as such).
    pub fn is_three_way(&self, t: usize) -> bool {
        t == self.values_table || t == self.rt_table
    }
}

/// Interned ids of the strata, by packed (model, cluster) ids; kept by the engine between
/// batches (ids never change within a state), rebuilt on demand after decoding.
pub type StratumCache = HashMap<u64, u32>;

fn key_of(res: &Resolved, sp: &StrataPlan, r: usize) -> Option<u64> {
    let m = res.row(sp.model, r).first().copied();
    let c = res.row(sp.cluster, r).first().copied();
    (m.is_some() || c.is_some()).then(|| pack(m.unwrap_or(EMPTY), c.unwrap_or(EMPTY)))
}

fn intern_stratum(st: &mut State, key: u64) -> u32 {
    let (m, c) = unpack(key);
    let name = |id: u32, st: &State| {
        if id == EMPTY {
            String::new()
        } else {
            st.string(id).to_owned()
        }
    };
    let s = format!("{}{SEP}{}", name(m, st), name(c, st));
    st.intern(&s)
}

/// Fills the stratum column of every resolved row from its model and task cluster.
///
/// Once a run's strata are known (after its first batch, as a rule) the pieces are filled in
/// parallel from the cache; a piece that meets a new stratum is redone on this thread, which
/// interns it.
pub(crate) fn assign(
    st: &mut State,
    cache: &mut StratumCache,
    pieces: &mut [Resolved],
    sp: &StrataPlan,
) {
    let known: &StratumCache = cache;
    let complete: Vec<bool> = pieces
        .par_iter_mut()
        .map(|res| {
            let mut ok = true;
            res.set_single(sp.column, |res, r| {
                let key = key_of(res, sp, r)?;
                let id = known.get(&key).copied();
                ok &= id.is_some();
                id
            });
            ok
        })
        .collect();
    for (res, done) in pieces.iter_mut().zip(complete) {
        if done {
            continue;
        }
        res.set_single(sp.column, |res, r| {
            let key = key_of(res, sp, r)?;
            Some(*cache.entry(key).or_insert_with(|| intern_stratum(st, key)))
        });
    }
}

/// (model, cluster) of a stratum id; None for an id that is not a stratum.
pub fn split(st: &State, id: u32) -> Option<(Option<u32>, Option<u32>)> {
    let (m, c) = st.string(id).split_once(SEP)?;
    let look = |s: &str| (!s.is_empty()).then(|| st.id_of(s)).flatten();
    Some((look(m), look(c)))
}

/// Every stratum id seen in `t`'s cells, with its (model, cluster).
pub(crate) type Strata = HashMap<u32, (Option<u32>, Option<u32>)>;

/// The strata named by the columns of the three-way tables.
pub(crate) fn strata(st: &State, sp: &StrataPlan, cells: &TableCells) -> Result<Strata> {
    let mut ids: hashbrown::HashSet<u32> = hashbrown::HashSet::new();
    // the response-type table holds every stratum that holds a row
    cells.for_each_part(sp.rt_table, |m| ids.extend(m.keys().map(|&k| unpack(k).1)))?;
    Ok(ids
        .into_iter()
        .filter_map(|s| split(st, s).map(|mc| (s, mc)))
        .collect())
}

/// The tables the plan derives, rebuilt from the three-way counts, each with its index.
///
/// One pass over each three-way table serves every table derived from it. Each part of the
/// source is summed on its own task into buckets by destination part; each destination part is
/// then merged from its buckets on its own task.
pub(crate) fn derive(
    sp: &StrataPlan,
    strata: &Strata,
    cells: &TableCells,
    cap: u32,
) -> Result<Vec<(usize, Cells)>> {
    let mut out = Vec::new();
    for source in [sp.values_table, sp.rt_table] {
        let targets: Vec<(usize, Keep)> = sp
            .derived
            .iter()
            .filter(|d| d.1 == source)
            .map(|d| (d.0, d.2))
            .collect();
        if targets.is_empty() {
            continue;
        }
        // per source part: per target, per destination part, the summed cells
        let buckets: Vec<Vec<Vec<HashMap<u64, Counter>>>> = cells.map_parts(source, |m| {
            let mut b = vec![vec![HashMap::new(); PARTS]; targets.len()];
            for (&k, c) in m {
                let (row, s) = unpack(k);
                let Some(&(model, cluster)) = strata.get(&s) else {
                    continue;
                };
                for (i, &(_, keep)) in targets.iter().enumerate() {
                    let col = match keep {
                        Keep::Cluster => cluster,
                        Keep::Model => model,
                    };
                    if let Some(col) = col {
                        let key = pack(row, col);
                        Counter::merge_into(&mut b[i][part_of(key)], key, c.clone(), cap);
                    }
                }
            }
            b
        })?;
        for (i, &(t, _)) in targets.iter().enumerate() {
            let parts: Vec<HashMap<u64, Counter>> = (0..PARTS)
                .into_par_iter()
                .map(|p| {
                    let mut m: HashMap<u64, Counter> = HashMap::new();
                    for b in &buckets {
                        for (&k, c) in &b[i][p] {
                            Counter::merge_into(&mut m, k, c.clone(), cap);
                        }
                    }
                    m
                })
                .collect();
            let mut table = Cells::default();
            for (p, m) in parts.into_iter().enumerate() {
                table.set_part(p, m);
            }
            out.push((t, table));
        }
    }
    Ok(out)
}

/// Conversations and users of each stratum (the response types summed).
pub(crate) fn stratum_totals(sp: &StrataPlan, cells: &TableCells) -> Result<HashMap<u32, Counter>> {
    let mut totals: HashMap<u32, Counter> = HashMap::new();
    let cap = cells.cap;
    cells.for_each_part(sp.rt_table, |m| {
        for (&k, c) in m {
            totals.entry(unpack(k).1).or_default().merge(c, cap);
        }
    })?;
    Ok(totals)
}
