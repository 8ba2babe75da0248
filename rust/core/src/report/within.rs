//! Model differences within tasks (the paper's appendix B.5.3): for every pair of published
//! models and every published response type and AI value, the raw two-proportion test beside a
//! Cochran-Mantel-Haenszel test stratified by task cluster (raw task where nothing is clustered).

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use hashbrown::{HashMap, HashSet};
use serde_json::{json, Value};

use super::models::{passing_models, published_by_model};
use super::publish::{batch, f64s, pct, strs, u64s, Privacy};
use super::stats::{stratified, two_proportion_z, Stratified, Two};
use crate::engine::state::pack;
use crate::engine::strata::{ModelStrata, NO_STRATUM};
use crate::engine::users::Counter;
use crate::engine::{Plan, State, TableCells, AI, RT};
use crate::error::Result;
use crate::schema::RESPONSE_TYPES;

/// The odds ratio's interval is a 95% one whatever the engine's alpha (which sets the
/// Bonferroni threshold of the tests).
const OR_CI_ALPHA: f64 = 0.05;

/// The strata of one stratifying column, privacy applied: those whose category passes the
/// thresholds by name, sorted by name (so that the sums run in one order however the state was
/// merged); every other category, and conversations without one, in a last pooled stratum.
struct Strata {
    index: HashMap<u32, usize>,
    n_named: usize,
}

impl Strata {
    fn new(st: &State, ms: &ModelStrata, col: usize, pv: Privacy) -> Strata {
        let seen: HashSet<u32> = ms.rt_cells().map(|(_, s, _)| s).collect();
        let mut named: Vec<u32> = seen
            .into_iter()
            .filter(|&s| s != NO_STRATUM && st.keys[col].get(&s).is_some_and(|c| pv.ok(c)))
            .collect();
        named.sort_by(|&a, &b| st.string(a).cmp(st.string(b)));
        let n_named = named.len();
        let index = named.into_iter().enumerate().map(|(i, s)| (s, i)).collect();
        Strata { index, n_named }
    }

    fn len(&self) -> usize {
        self.n_named + 1
    }

    #[inline]
    fn of(&self, s: u32) -> usize {
        self.index.get(&s).copied().unwrap_or(self.n_named)
    }
}

/// One model's counts, dense: conversations per stratum, and per item and stratum.
struct Dense {
    n: Vec<u64>,
    /// [item][stratum], items as in `Items`
    x: Vec<Vec<u64>>,
}

struct Item<'a> {
    kind: &'static str,
    name: &'a str,
    /// the (item, model) cells of the two-way table, which decide whether a pair may be shown
    table: usize,
    id: u32,
}

/// `model_comparison_within_tasks`, or None when there is nothing to stratify: fewer than two
/// published models, no stratum column with data, or no `x model` tables to check cells by.
///
/// A row's 2x2 table per stratum is (model a, model b) x (has the item, has not) among that
/// stratum's conversations of the two models. `p_threshold` is alpha over the number of rows
/// (Bonferroni over the tests made); `significant_raw` compares the raw test's p with it,
/// `significant_within` the CMH test's. A pair of models is shown for an item only where both
/// of its (item, model) cells may be published, as in `model_comparison`.
pub(super) fn within_tasks(
    plan: &Plan,
    alpha: f64,
    st: &State,
    cells: &TableCells,
    pv: Privacy,
) -> Result<Option<(RecordBatch, Value)>> {
    let models = passing_models(st, pv);
    if models.len() < 2 {
        return Ok(None);
    }
    let (ms, col, column) = match (plan.strata.cluster, plan.strata.task) {
        (Some(c), _) if st.strata.by_cluster.has_strata() => {
            (&st.strata.by_cluster, c, "task_cluster")
        }
        (_, Some(t)) if st.strata.by_task.has_strata() => (&st.strata.by_task, t, "task"),
        _ => return Ok(None),
    };
    let strata = Strata::new(st, ms, col, pv);
    let k = strata.len();

    let mut items: Vec<Item> = Vec::new();
    let mut two_way: Vec<HashMap<u64, Counter>> = Vec::new();
    for (kind, c) in [("response_type", RT), ("value", AI)] {
        let Some((mut feats, kept)) = published_by_model(plan, st, cells, c, &models, pv)? else {
            continue;
        };
        if c == RT {
            feats.sort_by_key(|&(id, _)| RESPONSE_TYPES.iter().position(|r| *r == st.string(id)));
        }
        let table = two_way.len();
        two_way.push(kept);
        items.extend(feats.into_iter().map(|(id, _)| Item {
            kind,
            name: st.string(id),
            table,
            id,
        }));
    }
    let item_of: HashMap<(usize, u32), usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| ((it.table, it.id), i))
        .collect();
    let rt_table = items
        .iter()
        .find(|i| i.kind == "response_type")
        .map(|i| i.table);
    let ai_table = items.iter().find(|i| i.kind == "value").map(|i| i.table);
    // response type (schema index) -> its item, where it is one
    let rt_item: Vec<Option<usize>> = RESPONSE_TYPES
        .iter()
        .map(|r| {
            let (t, id) = (rt_table?, st.id_of(r)?);
            item_of.get(&(t, id)).copied()
        })
        .collect();

    let model_of: HashMap<u32, usize> = models
        .iter()
        .enumerate()
        .map(|(i, &(m, _))| (m, i))
        .collect();
    let mut dense: Vec<Dense> = (0..models.len())
        .map(|_| Dense {
            n: vec![0; k],
            x: vec![vec![0; k]; items.len()],
        })
        .collect();
    for (m, s, counts) in ms.rt_cells() {
        let Some(&d) = model_of.get(&m) else {
            continue;
        };
        let (d, s) = (&mut dense[d], strata.of(s));
        d.n[s] += counts.iter().sum::<u64>();
        for (&c, i) in counts.iter().zip(&rt_item) {
            if let Some(i) = *i {
                d.x[i][s] += c;
            }
        }
    }
    if let Some(t) = ai_table {
        for (m, s, v, c) in ms.ai_cells() {
            if let (Some(&d), Some(&i)) = (model_of.get(&m), item_of.get(&(t, v))) {
                dense[d].x[i][strata.of(s)] += c;
            }
        }
    }

    struct Row<'a> {
        item: &'a Item<'a>,
        a: usize,
        b: usize,
        x: (u64, u64),
        z: Option<(f64, f64)>,
        test: Stratified,
        n_strata: u64,
    }
    let mut rows: Vec<Row> = Vec::new();
    for a in 0..models.len() {
        for b in a + 1..models.len() {
            let (ma, mb) = (models[a].0, models[b].0);
            for (i, item) in items.iter().enumerate() {
                let cell = |m: u32| two_way[item.table].get(&pack(item.id, m));
                let (xa, xb): (u64, u64) = (dense[a].x[i].iter().sum(), dense[b].x[i].iter().sum());
                if xa + xb == 0 || !pv.ok_or_zero(cell(ma)) || !pv.ok_or_zero(cell(mb)) {
                    continue;
                }
                let tables: Vec<Two> = (0..k)
                    .map(|s| {
                        let (x1, n1, x2, n2) = (
                            dense[a].x[i][s],
                            dense[a].n[s],
                            dense[b].x[i][s],
                            dense[b].n[s],
                        );
                        Two {
                            a: x1 as f64,
                            b: (n1 - x1) as f64,
                            c: x2 as f64,
                            d: (n2 - x2) as f64,
                        }
                    })
                    .collect();
                let (test, n_strata) = stratified(&tables, OR_CI_ALPHA);
                rows.push(Row {
                    item,
                    a,
                    b,
                    x: (xa, xb),
                    z: two_proportion_z(xa, models[a].1, xb, models[b].1),
                    test,
                    n_strata,
                });
            }
        }
    }

    let th = (!rows.is_empty()).then(|| alpha / rows.len() as f64);
    let below = |p: Option<f64>| p.zip(th).map(|(p, th)| p < th);
    let name = |m: usize| st.string(models[m].0);
    let bools = |v: Vec<Option<bool>>| Arc::new(BooleanArray::from(v)) as ArrayRef;
    let f = |g: &dyn Fn(&Row) -> Option<f64>| f64s(rows.iter().map(g).collect());
    let b = batch(vec![
        ("kind", strs(rows.iter().map(|r| r.item.kind).collect())),
        ("item", strs(rows.iter().map(|r| r.item.name).collect())),
        ("model_a", strs(rows.iter().map(|r| name(r.a)).collect())),
        ("model_b", strs(rows.iter().map(|r| name(r.b)).collect())),
        ("pct_a", f(&|r| pct(r.x.0, models[r.a].1))),
        ("pct_b", f(&|r| pct(r.x.1, models[r.b].1))),
        ("z_raw", f(&|r| r.z.map(|z| z.0))),
        ("p_raw", f(&|r| r.z.map(|z| z.1))),
        ("odds_ratio", f(&|r| r.test.odds_ratio)),
        ("or_ci_low", f(&|r| r.test.or_ci.map(|c| c.0))),
        ("or_ci_high", f(&|r| r.test.or_ci.map(|c| c.1))),
        ("cmh", f(&|r| r.test.cmh.map(|c| c.0))),
        ("p_cmh", f(&|r| r.test.cmh.map(|c| c.1))),
        ("breslow_day", f(&|r| r.test.breslow_day.map(|c| c.0))),
        ("p_breslow_day", f(&|r| r.test.breslow_day.map(|c| c.1))),
        ("n_strata", u64s(rows.iter().map(|r| r.n_strata).collect())),
        ("p_threshold", f64s(vec![th; rows.len()])),
        (
            "significant_raw",
            bools(rows.iter().map(|r| below(r.z.map(|z| z.1))).collect()),
        ),
        (
            "significant_within",
            bools(
                rows.iter()
                    .map(|r| below(r.test.cmh.map(|c| c.1)))
                    .collect(),
            ),
        ),
    ]);
    let info = json!({
        "stratified_by": column,
        "named_strata": strata.n_named,
        "n_tests": rows.len(),
    });
    Ok(Some((b, info)))
}

#[cfg(test)]
mod tests {
    use crate::engine::{Engine, EngineConfig};
    use crate::testing::{batch, conversation, floats, strings, table, Row};

    /// Two tasks; in each, a conversation has the value with a rate that depends on the task
    /// and, for `m3` only, on the model too. `m2`'s users mostly do task b.
    fn rows() -> Vec<Row<'static>> {
        let mut rows = Vec::new();
        // (model, task, conversations, of which with the value)
        for (model, task, n, x) in [
            ("m1", "a", 300, 60),
            ("m1", "b", 100, 60),
            ("m2", "a", 100, 20),
            ("m2", "b", 300, 180),
            ("m3", "a", 200, 100),
            ("m3", "b", 200, 180),
        ] {
            for i in 0..n {
                let values: &'static [&'static str] = if i < x { &["focus"] } else { &["other"] };
                rows.push(Row {
                    task: Some(task),
                    ..conversation(rows.len(), model, values, "mild support")
                });
            }
        }
        rows
    }

    #[test]
    fn the_stratified_test_separates_a_task_mix_from_a_model_difference() {
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        e.update(&batch(&rows())).unwrap();
        let a = e.analysis().unwrap();
        let w = table(&a, "model_comparison_within_tasks");
        let (kind, item) = (strings(w, "kind"), strings(w, "item"));
        let (ma, mb) = (strings(w, "model_a"), strings(w, "model_b"));
        let (p_raw, p_cmh) = (floats(w, "p_raw"), floats(w, "p_cmh"));
        let or = floats(w, "odds_ratio");
        let th = floats(w, "p_threshold")[0].unwrap();
        // every pair of the three models for two values and one response type
        assert_eq!(w.num_rows(), 3 * 3);
        assert!((th - 0.05 / 9.0).abs() < 1e-15);
        let row = |a: &str, b: &str| {
            (0..w.num_rows())
                .find(|&i| kind[i] == "value" && item[i] == "focus" && ma[i] == a && mb[i] == b)
                .unwrap()
        };
        // m1 vs m2: raw shares 30% and 50% differ, but within each task the rates are equal
        let i = row("m1", "m2");
        assert!(p_raw[i].unwrap() < th);
        assert!(p_cmh[i].unwrap() > 0.5);
        assert!((or[i].unwrap() - 1.0).abs() < 1e-12);
        // m1 vs m3: m3 has the value more often within both tasks
        let i = row("m1", "m3");
        assert!(p_cmh[i].unwrap() < th);
        assert!(or[i].unwrap() < 1.0);
        assert_eq!(
            a.summary["model_comparison_within_tasks"]["stratified_by"],
            "task"
        );
    }

    #[test]
    fn one_model_or_no_strata_writes_no_table() {
        let one: Vec<Row> = rows()
            .into_iter()
            .filter(|r| r.model == Some("m1"))
            .collect();
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        e.update(&batch(&one)).unwrap();
        let a = e.analysis().unwrap();
        assert!(a
            .tables
            .iter()
            .all(|(n, _)| n != "model_comparison_within_tasks"));
        let untasked: Vec<Row> = rows()
            .into_iter()
            .map(|r| Row { task: None, ..r })
            .collect();
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        e.update(&batch(&untasked)).unwrap();
        let a = e.analysis().unwrap();
        assert!(a
            .tables
            .iter()
            .all(|(n, _)| n != "model_comparison_within_tasks"));
    }
}
