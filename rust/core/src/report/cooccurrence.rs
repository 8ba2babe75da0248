//! Co-occurrence tables: chi-square over every cell, adjusted residuals and Bonferroni
//! significance of the cells shown, and the context invariance of each AI value.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use hashbrown::HashMap;

use super::publish::{batch, by_count_then_name, f64s, strs, u64s, Privacy};
use super::stats::{
    adjusted_residual, bonferroni_threshold, chi2_sf, coefficient_of_variation, expected, ExactSum,
};
use crate::engine::state::unpack;
use crate::engine::strata::RtCounts;
use crate::engine::{EngineConfig, Plan, State, TableCells, AI, RAW_TASK_TABLE};
use crate::error::Result;
use crate::schema::is_value_list;

pub(super) struct TableResult {
    pub name: String,
    pub row_column: String,
    pub col_column: String,
    pub batch: RecordBatch,
    /// The response-type mix of each row of `batch` (all zeros where the table keeps none).
    pub mixes: Vec<RtCounts>,
    pub chi2: Option<f64>,
    pub dof: u64,
    pub p_value: Option<f64>,
    pub n: u64,
    pub threshold: Option<f64>,
    pub n_tests: u64,
    pub n_cells: u64,
    pub suppressed_cells: u64,
}

/// Tables to publish, as indices into plan.tables. With the default tables, the task table is
/// the clustered one when it holds data, the raw-task one otherwise.
pub(super) fn published_tables(plan: &Plan, cells: &TableCells) -> Vec<usize> {
    let all: Vec<usize> = (0..plan.tables.len()).collect();
    if !plan.default_tables {
        return all;
    }
    let clustered = 0;
    let raw = RAW_TASK_TABLE;
    let drop = if cells.is_empty(clustered) && !cells.is_empty(raw) {
        clustered
    } else {
        raw
    };
    all.into_iter().filter(|&t| t != drop).collect()
}

pub(super) fn cooccurrence(
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
        let mut shown: Vec<(u32, u32, u64, RtCounts)> = Vec::new();
        for (&k, c) in m {
            let (a, b) = unpack(k);
            let o = c.n as f64;
            chi.add(o * o / expected(rows[&a] as f64, cols[&b] as f64, nf));
            if pv.ok(c) {
                shown.push((a, b, c.n, c.mix().counts()));
            }
        }
        (chi, shown, m.len() as u64)
    })?;
    let mut chi = ExactSum::default();
    let mut shown: Vec<(u32, u32, u64, RtCounts)> = Vec::new();
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
    shown.sort_unstable_by_key(|&(a, b, _, _)| (rank[a as usize], rank[b as usize]));
    let mut e_col = Vec::with_capacity(shown.len());
    let mut r_col = Vec::with_capacity(shown.len());
    let mut s_col = Vec::with_capacity(shown.len());
    for &(a, b, o, _) in &shown {
        let (r, c) = (rows[&a] as f64, cols[&b] as f64);
        e_col.push(Some(expected(r, c, nf)));
        let res = adjusted_residual(o as f64, r, c, nf);
        let res = (!res.is_nan()).then_some(res);
        r_col.push(res);
        s_col.push(match (res, threshold) {
            (Some(z), Some(th)) => Some(z.abs() > th),
            _ => None,
        });
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
        mixes: shown.iter().map(|x| x.3).collect(),
        chi2,
        dof,
        p_value,
        n,
        threshold,
        n_tests,
        n_cells,
        suppressed_cells,
    })
}

pub(super) fn table_tests(results: &[TableResult]) -> RecordBatch {
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
pub(super) fn invariance(
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
