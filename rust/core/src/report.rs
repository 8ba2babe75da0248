//! From a merged state to the published figures. Statistics are computed on the full counts;
//! the privacy rule is applied only to what is emitted.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use hashbrown::HashMap;
use rayon::prelude::*;
use serde_json::{json, Value};

use crate::cells::{Cells, PARTS};
use crate::engine::{EngineConfig, Plan, AI, EXPLICIT, HUMAN, MODEL, RT};
use crate::error::Result;
use crate::schema::{is_value_list, RESPONSE_TYPES};
use crate::spill::Spill;
use crate::state::{pack, unpack, State};
use crate::stats::{
    adjusted_residual, bonferroni_threshold, chi2_sf, coefficient_of_variation, expected,
    two_proportion_z, ExactSum,
};
use crate::strata::{Strata, StrataPlan};
use crate::users::Counter;

/// Row totals, column totals and the grand total of a table.
pub type Margins = (HashMap<u32, u64>, HashMap<u32, u64>, u64);

/// The cells of each table, merged: in memory, plus any spilled to disk.
pub struct TableCells<'a> {
    /// Per table; a derived table's cells are not the state's (see `strata`).
    pub hot: Vec<&'a Cells>,
    pub spill: Option<&'a Spill>,
    pub cap: u32,
}

impl TableCells<'_> {
    pub fn is_empty(&self, t: usize) -> bool {
        self.hot[t].is_empty() && !self.spill.is_some_and(|s| s.has(t))
    }

    /// Calls `f` with disjoint maps that together hold every cell of table `t` exactly once,
    /// one part at a time: the part in memory, merged with its spilled runs if there are any.
    pub fn for_each_part(&self, t: usize, mut f: impl FnMut(&HashMap<u64, Counter>)) -> Result<()> {
        let hot = self.hot[t];
        match self.spill {
            Some(s) if s.has(t) => {
                let mut size = 0;
                for p in 0..PARTS {
                    // parts are about equal: sized like the last, the map rarely regrows
                    let mut m = HashMap::with_capacity(size);
                    s.read(t, p, self.cap, &mut m)?;
                    for (&k, c) in hot.part(p) {
                        Counter::merge_into(&mut m, k, c.clone(), self.cap);
                    }
                    size = m.len() + m.len() / 8;
                    f(&m);
                }
            }
            _ => (0..PARTS).for_each(|p| f(hot.part(p))),
        }
        Ok(())
    }

    /// `f` of every part of table `t` (each merged with its spilled runs), in part order; the
    /// parts are read and `f` runs on the rayon pool, a few parts in memory at a time.
    pub fn map_parts<R: Send>(
        &self,
        t: usize,
        f: impl Fn(&HashMap<u64, Counter>) -> R + Sync,
    ) -> Result<Vec<R>> {
        let hot = self.hot[t];
        (0..PARTS)
            .into_par_iter()
            .map(|p| match self.spill {
                Some(s) if s.has(t) => {
                    let mut m = HashMap::with_capacity(2 * hot.part(p).len());
                    s.read(t, p, self.cap, &mut m)?;
                    for (&k, c) in hot.part(p) {
                        Counter::merge_into(&mut m, k, c.clone(), self.cap);
                    }
                    Ok(f(&m))
                }
                _ => Ok(f(hot.part(p))),
            })
            .collect()
    }

    /// Row and column totals and the grand total of table `t`: sums, so the spilled cells
    /// count as the spill summed them when it wrote them; the parts in memory in parallel.
    pub fn margins(&self, t: usize) -> Result<Margins> {
        let hot = self.hot[t];
        let empty = || (HashMap::new(), HashMap::new(), 0u64);
        let add_all = |(mut rows, mut cols, n): Margins, (r, c, k): Margins| {
            r.into_iter()
                .for_each(|(a, o)| *rows.entry(a).or_insert(0) += o);
            c.into_iter()
                .for_each(|(b, o)| *cols.entry(b).or_insert(0) += o);
            (rows, cols, n + k)
        };
        // one running total per thread, merged at the end: memory stays a few margins' worth
        let in_memory = (0..PARTS)
            .into_par_iter()
            .fold(empty, |(mut rows, mut cols, mut n), p| {
                for (&k, c) in hot.part(p) {
                    let (a, b) = unpack(k);
                    *rows.entry(a).or_insert(0) += c.n;
                    *cols.entry(b).or_insert(0) += c.n;
                    n += c.n;
                }
                (rows, cols, n)
            })
            .reduce(empty, add_all);
        Ok(match self.spill.filter(|s| s.has(t)) {
            Some(s) => add_all(in_memory, s.margins(t).clone()),
            None => in_memory,
        })
    }
}

/// Everything `result()` returns: a JSON summary and named Arrow tables.
pub struct Analysis {
    pub summary: Value,
    /// (name, table); co-occurrence tables are named `tables/<A>__<B>`.
    pub tables: Vec<(String, RecordBatch)>,
}

#[derive(Clone, Copy)]
pub(crate) struct Privacy {
    min_conversations: u64,
    min_users: u32,
}

impl Privacy {
    pub(crate) fn ok(&self, c: &Counter) -> bool {
        c.passes(self.min_conversations, self.min_users)
    }
    /// A count may be shown as zero (it describes nobody) or when it passes the rule.
    pub(crate) fn ok_or_zero(&self, c: Option<&Counter>) -> bool {
        c.is_none_or(|c| c.n == 0 || self.ok(c))
    }
}

pub(crate) fn pct(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| 100.0 * num as f64 / den as f64)
}

pub(crate) fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).expect("columns built with equal lengths")
}

pub(crate) fn strs(v: Vec<&str>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
pub(crate) fn u64s(v: Vec<u64>) -> ArrayRef {
    Arc::new(UInt64Array::from(v))
}
pub(crate) fn opt_u64s(v: Vec<Option<u64>>) -> ArrayRef {
    Arc::new(UInt64Array::from(v))
}
pub(crate) fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

/// Output order of value-like rows: most frequent first, then alphabetical.
pub(crate) fn by_count_then_name(st: &State) -> impl Fn(&(u32, u64), &(u32, u64)) -> Ordering + '_ {
    move |a, b| {
        b.1.cmp(&a.1)
            .then_with(|| st.string(a.0).cmp(st.string(b.0)))
    }
}

/// Each string id's position in the sorted order of all interned strings (which are distinct).
fn string_ranks(st: &State) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..st.strings.len() as u32).collect();
    ids.sort_unstable_by(|&a, &b| st.string(a).cmp(st.string(b)));
    let mut rank = vec![0u32; ids.len()];
    for (r, &id) in ids.iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    rank
}

struct TableResult {
    name: String,
    row_column: String,
    col_column: String,
    batch: RecordBatch,
    chi2: Option<f64>,
    dof: u64,
    p_value: Option<f64>,
    n: u64,
    threshold: Option<f64>,
    n_tests: u64,
    n_cells: u64,
    suppressed_cells: u64,
    /// Published cells above the threshold, with a positive residual.
    significant: Vec<crate::pairs::SignificantPair>,
}

impl Analysis {
    pub fn build(
        config: &EngineConfig,
        plan: &Plan,
        st: &State,
        cells: &TableCells,
        strata: Option<(&StrataPlan, &Strata)>,
    ) -> Result<Analysis> {
        let pv = Privacy {
            min_conversations: config.min_conversations,
            min_users: config.min_users,
        };
        let n = st.n_conversations;
        let mut tables = Vec::new();
        let mut suppressed = serde_json::Map::new();

        for (name, col) in [
            ("ai_values", AI),
            ("human_values", HUMAN),
            ("ai_values_explicit", EXPLICIT),
        ] {
            let (b, s) = frequencies(st, col, n, pv);
            suppressed.insert(name.into(), json!(s));
            tables.push((name.to_string(), b));
        }

        let (b, s) = response_types(st, pv);
        suppressed.insert("response_types".into(), json!(s));
        tables.push(("response_types".into(), b));

        let (b, s) = mirroring(st, pv);
        suppressed.insert("mirroring".into(), json!(s));
        tables.push(("mirroring".into(), b));

        let (b, s) = explicit_by_response_type(st, pv);
        suppressed.insert("explicit_by_response_type".into(), json!(s));
        tables.push(("explicit_by_response_type".into(), b));

        let published = published_tables(plan, cells);
        let within = match strata {
            Some((sp, strata)) => {
                crate::within::within_tasks(config, plan, st, cells, sp, strata, pv)?
            }
            None => None,
        };
        // The tables, invariance and model comparison read disjoint data: all on the pool.
        let rank = string_ranks(st);
        let ((results, inv), cmp) = rayon::join(
            || {
                rayon::join(
                    || {
                        published
                            .par_iter()
                            .map(|&t| cooccurrence(config, plan, st, cells, t, pv, &rank))
                            .collect::<Result<Vec<TableResult>>>()
                    },
                    || invariance(plan, st, cells, &published, pv),
                )
            },
            || model_comparison(plan, st, cells, pv),
        );
        let (results, inv, cmp) = (results?, inv?, cmp?);
        let mut suppressed_cells = serde_json::Map::new();
        for r in &results {
            suppressed_cells.insert(r.name.clone(), json!(r.suppressed_cells));
        }
        suppressed.insert("table_cells".into(), Value::Object(suppressed_cells));

        if let Some(pp) = &plan.pairs {
            let base = (0..plan.tables.len()).find(|&t| plan.tables[t] == (HUMAN, AI));
            let sig = results
                .iter()
                .zip(&published)
                .find(|(_, &t)| Some(t) == base)
                .map_or(&[][..], |(r, _)| &r.significant[..]);
            let b = crate::pairs::value_pairs(st, pp, cells, sig, pv)?;
            tables.push(("value_pairs".into(), b));
        }
        tables.push(("invariance".into(), inv));
        let (b, s) = models(st, pv);
        suppressed.insert("models".into(), json!(s));
        tables.push(("models".into(), b));
        tables.push(("model_comparison".into(), cmp));
        if let Some(w) = within {
            tables.push(("model_comparison_within_tasks".into(), w));
        }
        tables.push(("table_tests".into(), table_tests(&results)));
        let table_names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
        for r in results {
            tables.push((format!("tables/{}", r.name), r.batch));
        }

        let mean = |c: usize| (n > 0).then(|| st.sum_len[c] as f64 / n as f64);
        let rejected: u64 = st.rejects.values().sum();
        let summary = json!({
            "n_rows": st.n_rows,
            "n_conversations": n,
            "n_not_subjective": st.n_not_subjective,
            "n_rejected": rejected,
            "rejected_by_reason": st.rejects,
            "n_with_ai_values": st.with_any[AI],
            "pct_with_ai_values": pct(st.with_any[AI], n),
            "n_with_human_values": st.with_any[HUMAN],
            "pct_with_human_values": pct(st.with_any[HUMAN], n),
            "mean_ai_values": mean(AI),
            "mean_human_values": mean(HUMAN),
            "mean_ai_values_explicit": mean(EXPLICIT),
            "n_distinct": {
                "ai_values": st.keys[AI].len(),
                "human_values": st.keys[HUMAN].len(),
                "ai_values_explicit": st.keys[EXPLICIT].len(),
                "models": st.keys[MODEL].len(),
            },
            "thresholds": {
                "min_conversations": config.min_conversations,
                "min_users": config.min_users,
                "alpha": config.alpha,
                "n_tests": config.n_tests,
            },
            "suppressed": suppressed,
            "tables": table_names,
        });
        Ok(Analysis { summary, tables })
    }
}

fn frequencies(st: &State, col: usize, n: u64, pv: Privacy) -> (RecordBatch, u64) {
    let keys = &st.keys[col];
    let total: u64 = keys.values().map(|c| c.n).sum();
    let mut rows: Vec<(u32, u64)> = keys
        .iter()
        .filter(|(_, c)| pv.ok(c))
        .map(|(&k, c)| (k, c.n))
        .collect();
    let suppressed = (keys.len() - rows.len()) as u64;
    rows.sort_by(by_count_then_name(st));
    let b = batch(vec![
        ("value", strs(rows.iter().map(|r| st.string(r.0)).collect())),
        ("n_conversations", u64s(rows.iter().map(|r| r.1).collect())),
        (
            "pct_convos",
            f64s(rows.iter().map(|r| pct(r.1, n)).collect()),
        ),
        (
            "pct_total_occurrences",
            f64s(rows.iter().map(|r| pct(r.1, total)).collect()),
        ),
    ]);
    (b, suppressed)
}

fn response_types(st: &State, pv: Privacy) -> (RecordBatch, u64) {
    let n = st.n_conversations;
    let n_human = st.with_any[HUMAN];
    let mut out = (vec![], vec![], vec![], vec![], vec![]);
    let mut suppressed = 0;
    for (i, name) in RESPONSE_TYPES.iter().enumerate() {
        let all = &st.rt_all[i];
        if all.n == 0 {
            continue;
        }
        if !pv.ok(all) {
            suppressed += 1;
            continue;
        }
        let wh = &st.rt_with_human[i];
        let show = pv.ok_or_zero(Some(wh));
        out.0.push(*name);
        out.1.push(all.n);
        out.2.push(pct(all.n, n));
        out.3.push(show.then_some(wh.n));
        out.4.push(if show { pct(wh.n, n_human) } else { None });
    }
    let b = batch(vec![
        ("response_type", strs(out.0)),
        ("n_conversations", u64s(out.1)),
        ("pct_all", f64s(out.2)),
        ("n_with_human_values", opt_u64s(out.3)),
        ("pct_with_human_values", f64s(out.4)),
    ]);
    (b, suppressed)
}

fn mirroring(st: &State, pv: Privacy) -> (RecordBatch, u64) {
    let mut out = (vec![], vec![], vec![], vec![]);
    let mut suppressed = 0;
    for (i, name) in RESPONSE_TYPES.iter().enumerate() {
        let wh = &st.rt_with_human[i];
        if wh.n == 0 {
            continue;
        }
        if !pv.ok(wh) {
            suppressed += 1;
            continue;
        }
        let m = &st.rt_mirrored[i];
        let show = pv.ok_or_zero(Some(m));
        out.0.push(*name);
        out.1.push(wh.n);
        out.2.push(show.then_some(m.n));
        out.3.push(if show { pct(m.n, wh.n) } else { None });
    }
    let b = batch(vec![
        ("response_type", strs(out.0)),
        ("n_conversations", u64s(out.1)),
        ("n_mirrored", opt_u64s(out.2)),
        ("pct_mirrored", f64s(out.3)),
    ]);
    (b, suppressed)
}

/// Per response type, the conversations in which the AI states a value explicitly (the paper's
/// appendix B.6): a share published under the same rule as every count.
fn explicit_by_response_type(st: &State, pv: Privacy) -> (RecordBatch, u64) {
    let mut out = (vec![], vec![], vec![], vec![]);
    let mut suppressed = 0;
    for (i, name) in RESPONSE_TYPES.iter().enumerate() {
        let all = &st.rt_all[i];
        if all.n == 0 {
            continue;
        }
        if !pv.ok(all) {
            suppressed += 1;
            continue;
        }
        let ex = &st.rt_explicit[i];
        let show = pv.ok_or_zero(Some(ex));
        out.0.push(*name);
        out.1.push(all.n);
        out.2.push(show.then_some(ex.n));
        out.3.push(if show { pct(ex.n, all.n) } else { None });
    }
    let b = batch(vec![
        ("response_type", strs(out.0)),
        ("n_conversations", u64s(out.1)),
        ("n_with_explicit", opt_u64s(out.2)),
        ("pct_with_explicit", f64s(out.3)),
    ]);
    (b, suppressed)
}

/// Tables to publish, as indices into plan.tables. With the default tables, the task table is
/// the clustered one when it holds data, the raw-task one otherwise.
fn published_tables(plan: &Plan, cells: &TableCells) -> Vec<usize> {
    let all: Vec<usize> = (0..plan.tables.len())
        .filter(|&t| !plan.strata.as_ref().is_some_and(|sp| sp.is_three_way(t)))
        .filter(|&t| !plan.pairs.as_ref().is_some_and(|pp| pp.is_restricted(t)))
        .collect();
    if !plan.default_tables {
        return all;
    }
    let clustered = 0;
    let raw = crate::engine::RAW_TASK_TABLE;
    let drop = if cells.is_empty(clustered) && !cells.is_empty(raw) {
        clustered
    } else {
        raw
    };
    all.into_iter().filter(|&t| t != drop).collect()
}

fn cooccurrence(
    config: &EngineConfig,
    plan: &Plan,
    st: &State,
    cells: &TableCells,
    t: usize,
    pv: Privacy,
    rank: &[u32],
) -> Result<TableResult> {
    let (rows, cols, n) = cells.margins(t)?;
    let nf = n as f64;
    let n_tests = config.n_tests.unwrap_or(rows.len() as u64);
    let threshold = bonferroni_threshold(config.alpha, n_tests);
    let dof = (rows.len().saturating_sub(1) * cols.len().saturating_sub(1)) as u64;
    // An exact sum: the same counts print the same digits however they were sharded or spilled.
    let parts = cells.map_parts(t, |m| {
        let mut chi = ExactSum::default();
        let mut shown: Vec<(u32, u32, u64)> = Vec::new();
        for (&k, c) in m {
            let (a, b) = unpack(k);
            let o = c.n as f64;
            chi.add(o * o / expected(rows[&a] as f64, cols[&b] as f64, nf));
            if pv.ok(c) {
                shown.push((a, b, c.n));
            }
        }
        (chi, shown, m.len() as u64)
    })?;
    let mut chi = ExactSum::default();
    let mut shown: Vec<(u32, u32, u64)> = Vec::new();
    let mut n_cells = 0u64;
    for (c, s, k) in parts {
        chi.merge(c);
        shown.extend(s);
        n_cells += k;
    }
    let chi2 = (n > 0).then(|| (chi.value() - nf).max(0.0));
    let p_value = chi2.map(|x| chi2_sf(x, dof)).filter(|p| !p.is_nan());

    let suppressed_cells = n_cells - shown.len() as u64;
    // by row name, then column name: integer ranks stand in for the strings
    shown.sort_unstable_by_key(|&(a, b, _)| (rank[a as usize], rank[b as usize]));
    let mut e_col = Vec::with_capacity(shown.len());
    let mut r_col = Vec::with_capacity(shown.len());
    let mut s_col = Vec::with_capacity(shown.len());
    let mut significant = Vec::new();
    for &(a, b, o) in &shown {
        let (r, c) = (rows[&a] as f64, cols[&b] as f64);
        e_col.push(Some(expected(r, c, nf)));
        let res = adjusted_residual(o as f64, r, c, nf);
        let res = (!res.is_nan()).then_some(res);
        r_col.push(res);
        s_col.push(match (res, threshold) {
            (Some(z), Some(th)) => Some(z.abs() > th),
            _ => None,
        });
        if let (Some(z), Some(th)) = (res, threshold) {
            if z > th {
                significant.push((a, b, o, z));
            }
        }
    }
    let (ia, ib) = plan.tables[t];
    let b = batch(vec![
        ("row", strs(shown.iter().map(|x| st.string(x.0)).collect())),
        ("col", strs(shown.iter().map(|x| st.string(x.1)).collect())),
        ("observed", u64s(shown.iter().map(|x| x.2).collect())),
        ("expected", f64s(e_col)),
        ("adjusted_residual", f64s(r_col)),
        (
            "significant",
            Arc::new(BooleanArray::from(s_col)) as ArrayRef,
        ),
    ]);
    Ok(TableResult {
        name: plan.table_name(t),
        row_column: plan.columns[ia].clone(),
        col_column: plan.columns[ib].clone(),
        batch: b,
        chi2,
        dof,
        p_value,
        n,
        threshold,
        n_tests,
        n_cells,
        suppressed_cells,
        significant,
    })
}

fn table_tests(results: &[TableResult]) -> RecordBatch {
    batch(vec![
        (
            "table",
            strs(results.iter().map(|r| r.name.as_str()).collect()),
        ),
        (
            "row_column",
            strs(results.iter().map(|r| r.row_column.as_str()).collect()),
        ),
        (
            "col_column",
            strs(results.iter().map(|r| r.col_column.as_str()).collect()),
        ),
        ("chi2", f64s(results.iter().map(|r| r.chi2).collect())),
        ("dof", u64s(results.iter().map(|r| r.dof).collect())),
        ("p_value", f64s(results.iter().map(|r| r.p_value).collect())),
        ("n", u64s(results.iter().map(|r| r.n).collect())),
        (
            "threshold",
            f64s(results.iter().map(|r| r.threshold).collect()),
        ),
        ("n_tests", u64s(results.iter().map(|r| r.n_tests).collect())),
        ("n_cells", u64s(results.iter().map(|r| r.n_cells).collect())),
        (
            "suppressed_cells",
            u64s(results.iter().map(|r| r.suppressed_cells).collect()),
        ),
    ])
}

/// CV of each AI value's rate across the categories of each context column crossed with it.
fn invariance(
    plan: &Plan,
    st: &State,
    cells: &TableCells,
    published: &[usize],
    pv: Privacy,
) -> Result<RecordBatch> {
    // (value, context, cv, n_categories)
    let mut out: Vec<(&str, &str, f64, u64)> = Vec::new();
    for &t in published {
        let (a, b) = plan.tables[t];
        if a != AI || is_value_list(&plan.columns[b]) {
            continue;
        }
        let cats: HashMap<u32, u64> = st.keys[b]
            .iter()
            .filter(|(_, c)| pv.ok(c))
            .map(|(&k, c)| (k, c.n))
            .collect();
        let k = cats.len();
        if k < 2 {
            continue;
        }
        let mut by_value: HashMap<u32, Vec<f64>> = HashMap::new();
        cells.for_each_part(t, |m| {
            for (&key, c) in m {
                let (v, cat) = unpack(key);
                if let Some(&nb) = cats.get(&cat) {
                    by_value.entry(v).or_default().push(c.n as f64 / nb as f64);
                }
            }
        })?;
        let mut rows: Vec<(u32, u64)> = st.keys[AI]
            .iter()
            .filter(|(_, c)| pv.ok(c))
            .map(|(&v, c)| (v, c.n))
            .collect();
        rows.sort_by(by_count_then_name(st));
        for (v, _) in rows {
            let Some(nonzero) = by_value.get(&v) else {
                continue;
            };
            let mut rates = nonzero.clone();
            rates.resize(k, 0.0);
            if let Some(cv) = coefficient_of_variation(&rates) {
                out.push((st.string(v), plan.columns[b].as_str(), cv, k as u64));
            }
        }
    }
    Ok(batch(vec![
        ("value", strs(out.iter().map(|r| r.0).collect())),
        ("context", strs(out.iter().map(|r| r.1).collect())),
        ("cv", f64s(out.iter().map(|r| Some(r.2)).collect())),
        ("n_categories", u64s(out.iter().map(|r| r.3).collect())),
    ]))
}

pub(crate) fn passing_models(st: &State, pv: Privacy) -> Vec<(u32, u64)> {
    let mut m: Vec<(u32, u64)> = st.keys[MODEL]
        .iter()
        .filter(|(_, c)| pv.ok(c))
        .map(|(&k, c)| (k, c.n))
        .collect();
    m.sort_by(|a, b| st.string(a.0).cmp(st.string(b.0)));
    m
}

fn models(st: &State, pv: Privacy) -> (RecordBatch, u64) {
    let shown = passing_models(st, pv);
    let suppressed = (st.keys[MODEL].len() - shown.len()) as u64;
    let n = st.n_conversations;
    let mut out: (Vec<&str>, Vec<u64>, Vec<Option<f64>>) = Default::default();
    let mut ai = (vec![], vec![], vec![], vec![]);
    for &(m, nm) in &shown {
        let ms = st.models.get(&m).cloned().unwrap_or_default();
        out.0.push(st.string(m));
        out.1.push(nm);
        out.2.push(pct(nm, n));
        ai.0.push(if pv.ok_or_zero(Some(&ms.with_ai)) {
            pct(ms.with_ai.n, nm)
        } else {
            None
        });
        ai.1.push(if pv.ok_or_zero(Some(&ms.with_human)) {
            pct(ms.with_human.n, nm)
        } else {
            None
        });
        ai.2.push(Some(ms.sum_ai as f64 / nm as f64));
        ai.3.push(Some(ms.sum_human as f64 / nm as f64));
    }
    let b = batch(vec![
        ("model", strs(out.0)),
        ("n_conversations", u64s(out.1)),
        ("pct_conversations", f64s(out.2)),
        ("pct_with_ai_values", f64s(ai.0)),
        ("pct_with_human_values", f64s(ai.1)),
        ("mean_ai_values", f64s(ai.2)),
        ("mean_human_values", f64s(ai.3)),
    ]);
    (b, suppressed)
}

/// Every pair of publishable models, per response type and per AI value: shares and a pooled
/// two-proportion z-test. Needs the `response_type x model` / `ai_values x model` tables.
fn model_comparison(
    plan: &Plan,
    st: &State,
    cells: &TableCells,
    pv: Privacy,
) -> Result<RecordBatch> {
    struct Row<'a> {
        feature: &'a str,
        value: &'a str,
        model_a: &'a str,
        model_b: &'a str,
        n: (u64, u64),
        x: (u64, u64),
        z: Option<(f64, f64)>,
    }
    let models = passing_models(st, pv);
    let mut out: Vec<Row> = Vec::new();
    for (feature, col) in [("response_type", RT), ("ai_values", AI)] {
        let Some(t) = plan.tables.iter().position(|&p| p == (col, MODEL)) else {
            continue;
        };
        let mut features: Vec<(u32, u64)> = st.keys[col]
            .iter()
            .filter(|(_, c)| pv.ok(c))
            .map(|(&k, c)| (k, c.n))
            .collect();
        features.sort_by(by_count_then_name(st));
        // Only the cells of published values and models are looked up: gather just those.
        let wanted_v: hashbrown::HashSet<u32> = features.iter().map(|f| f.0).collect();
        let wanted_m: hashbrown::HashSet<u32> = models.iter().map(|m| m.0).collect();
        let mut cells_t: HashMap<u64, Counter> = HashMap::new();
        cells.for_each_part(t, |m| {
            for (&k, c) in m {
                let (v, model) = unpack(k);
                if wanted_v.contains(&v) && wanted_m.contains(&model) {
                    cells_t.insert(k, c.clone());
                }
            }
        })?;
        let cells = &cells_t;
        for i in 0..models.len() {
            for j in i + 1..models.len() {
                let ((ma, na), (mb, nb)) = (models[i], models[j]);
                for &(v, _) in &features {
                    let ca = cells.get(&pack(v, ma));
                    let cb = cells.get(&pack(v, mb));
                    let xa = ca.map_or(0, |c| c.n);
                    let xb = cb.map_or(0, |c| c.n);
                    if xa + xb == 0 || !pv.ok_or_zero(ca) || !pv.ok_or_zero(cb) {
                        continue;
                    }
                    out.push(Row {
                        feature,
                        value: st.string(v),
                        model_a: st.string(ma),
                        model_b: st.string(mb),
                        n: (na, nb),
                        x: (xa, xb),
                        z: two_proportion_z(xa, na, xb, nb),
                    });
                }
            }
        }
    }
    let pa = |r: &Row| pct(r.x.0, r.n.0);
    let pb = |r: &Row| pct(r.x.1, r.n.1);
    Ok(batch(vec![
        ("feature", strs(out.iter().map(|r| r.feature).collect())),
        ("value", strs(out.iter().map(|r| r.value).collect())),
        ("model_a", strs(out.iter().map(|r| r.model_a).collect())),
        ("model_b", strs(out.iter().map(|r| r.model_b).collect())),
        ("n_a", u64s(out.iter().map(|r| r.n.0).collect())),
        ("n_b", u64s(out.iter().map(|r| r.n.1).collect())),
        ("x_a", u64s(out.iter().map(|r| r.x.0).collect())),
        ("x_b", u64s(out.iter().map(|r| r.x.1).collect())),
        ("pct_a", f64s(out.iter().map(pa).collect())),
        ("pct_b", f64s(out.iter().map(pb).collect())),
        (
            "diff_pct",
            f64s(
                out.iter()
                    .map(|r| pa(r).zip(pb(r)).map(|(a, b)| a - b))
                    .collect(),
            ),
        ),
        ("z", f64s(out.iter().map(|r| r.z.map(|z| z.0)).collect())),
        (
            "p_value",
            f64s(out.iter().map(|r| r.z.map(|z| z.1)).collect()),
        ),
    ]))
}
