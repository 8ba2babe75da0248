//! Per-model shares and the model-to-model comparison, with its significance decided here.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use hashbrown::HashMap;

use super::publish::{batch, by_count_then_name, f64s, pct, strs, u64s, Privacy};
use super::stats::{bonferroni_threshold, two_proportion_z};
use crate::engine::state::{pack, unpack};
use crate::engine::users::Counter;
use crate::engine::{Plan, State, TableCells, AI, MODEL, RT};
use crate::error::Result;

pub(super) fn passing_models(st: &State, pv: Privacy) -> Vec<(u32, u64)> {
    let mut m: Vec<(u32, u64)> = st.keys[MODEL]
        .iter()
        .filter(|(_, c)| pv.ok(c))
        .map(|(&k, c)| (k, c.n))
        .collect();
    m.sort_by(|a, b| st.string(a.0).cmp(st.string(b.0)));
    m
}

/// Published keys with their conversations, and the cells between them and the published models.
pub(super) type PublishedByModel = (Vec<(u32, u64)>, HashMap<u64, Counter>);

/// The published keys of `col` (most conversations first, then by name) and, of the
/// `col x model` table, only the cells between those keys and the published `models`; None when
/// the plan does not cross `col` with the model.
pub(super) fn published_by_model(
    plan: &Plan,
    st: &State,
    cells: &TableCells,
    col: usize,
    models: &[(u32, u64)],
    pv: Privacy,
) -> Result<Option<PublishedByModel>> {
    let Some(t) = plan.tables.iter().position(|&p| p == (col, MODEL)) else {
        return Ok(None);
    };
    let mut keys: Vec<(u32, u64)> = st.keys[col]
        .iter()
        .filter(|(_, c)| pv.ok(c))
        .map(|(&k, c)| (k, c.n))
        .collect();
    keys.sort_by(by_count_then_name(st));
    // Only the cells of published values and models are looked up: gather just those.
    let wanted_v: hashbrown::HashSet<u32> = keys.iter().map(|f| f.0).collect();
    let wanted_m: hashbrown::HashSet<u32> = models.iter().map(|m| m.0).collect();
    let mut kept: HashMap<u64, Counter> = HashMap::new();
    cells.for_each_part(t, |m| {
        for (&k, c) in m {
            let (v, model) = unpack(k);
            if wanted_v.contains(&v) && wanted_m.contains(&model) {
                kept.insert(k, c.clone());
            }
        }
    })?;
    Ok(Some((keys, kept)))
}

pub(super) fn models(st: &State, pv: Privacy) -> (RecordBatch, u64) {
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
///
/// A difference is `significant` when |z| exceeds the two-sided Bonferroni threshold over
/// every comparison in the table (each pair of models times each value compared), at the
/// engine's alpha: the `threshold` column. Where z is undefined (no variance), so is the verdict.
pub(super) fn model_comparison(
    plan: &Plan,
    alpha: f64,
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
        let Some((features, cells_t)) = published_by_model(plan, st, cells, col, &models, pv)?
        else {
            continue;
        };
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
    let threshold = bonferroni_threshold(alpha, out.len() as u64);
    let significant: Vec<Option<bool>> = out
        .iter()
        .map(|r| r.z.zip(threshold).map(|((z, _), th)| z.abs() > th))
        .collect();
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
        ("threshold", f64s(vec![threshold; out.len()])),
        (
            "significant",
            Arc::new(BooleanArray::from(significant)) as ArrayRef,
        ),
    ]))
}
