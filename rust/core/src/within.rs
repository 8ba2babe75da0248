//! Model differences within tasks (the paper's appendix B.5.3): for every pair of publishable
//! models and every published response type and AI value, the raw two-proportion test beside a
//! Cochran-Mantel-Haenszel test stratified by task cluster, with a Bonferroni threshold over all
//! the tests made.
//!
//! A task cluster is its own stratum for a pair of models only when both models' conversations
//! in it pass the privacy rule; every other cluster (and conversations with no cluster) goes
//! into one pooled stratum, which is never named. No stratum's counts leave the engine: only the
//! pooled statistics do.

use hashbrown::{HashMap, HashSet};
use rayon::prelude::*;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use std::sync::Arc;

use crate::cmh::{cmh, Cmh, Stratum};
use crate::engine::{EngineConfig, Plan, AI, MODEL, RT};
use crate::error::Result;
use crate::report::{
    batch, by_count_then_name, f64s, passing_models, pct, strs, u64s, Privacy, TableCells,
};
use crate::state::{pack, unpack, State};
use crate::stats::two_proportion_z;
use crate::strata::{stratum_totals, Keep, Strata, StrataPlan};
use crate::users::Counter;

/// Coverage of the common odds ratio's interval.
const LEVEL: f64 = 0.95;

/// What the two tests together say about a difference.
fn verdict(raw: bool, within: bool) -> &'static str {
    match (raw, within) {
        (true, true) => "holds within tasks",
        (true, false) => "explained by task mix",
        (false, true) => "only within tasks",
        (false, false) => "no difference",
    }
}

/// How one pair of models' strata are laid out: per shared publishable cluster its two
/// stratum ids, and the ids pooled on each side.
struct PairStrata {
    named: Vec<(u32, u32)>,
    pooled_a: Vec<u32>,
    pooled_b: Vec<u32>,
}

fn pair_strata(
    st: &State,
    a: u32,
    b: u32,
    strata: &Strata,
    totals: &HashMap<u32, Counter>,
    pv: Privacy,
) -> PairStrata {
    let ok = |s: u32| totals.get(&s).is_some_and(|c| pv.ok(c));
    let mut by_cluster: HashMap<u32, (Option<u32>, Option<u32>)> = HashMap::new();
    let (mut pooled_a, mut pooled_b) = (Vec::new(), Vec::new());
    for (&s, &(m, c)) in strata {
        let side = match m {
            Some(m) if m == a => 0,
            Some(m) if m == b => 1,
            _ => continue,
        };
        match c {
            Some(c) => {
                let e = by_cluster.entry(c).or_default();
                if side == 0 {
                    e.0 = Some(s);
                } else {
                    e.1 = Some(s);
                }
            }
            None if side == 0 => pooled_a.push(s),
            None => pooled_b.push(s),
        }
    }
    let mut named = Vec::new();
    for (_, ids) in by_cluster {
        match ids {
            (Some(sa), Some(sb)) if ok(sa) && ok(sb) => named.push((sa, sb)),
            (sa, sb) => {
                pooled_a.extend(sa);
                pooled_b.extend(sb);
            }
        }
    }
    // by name: the statistics are float sums, summed in this order, and ids differ between
    // states that hold the same counts (sharded, merged), names do not
    named.sort_unstable_by(|x, y| st.string(x.0).cmp(st.string(y.0)));
    pooled_a.sort_unstable_by(|&x, &y| st.string(x).cmp(st.string(y)));
    pooled_b.sort_unstable_by(|&x, &y| st.string(x).cmp(st.string(y)));
    PairStrata {
        named,
        pooled_a,
        pooled_b,
    }
}

struct Row<'a> {
    feature: &'static str,
    value: &'a str,
    model_a: &'a str,
    model_b: &'a str,
    n: (u64, u64),
    x: (u64, u64),
    z: Option<(f64, f64)>,
    cmh: Cmh,
}

pub(crate) fn within_tasks(
    config: &EngineConfig,
    plan: &Plan,
    st: &State,
    cells: &TableCells,
    sp: &StrataPlan,
    strata: &Strata,
    pv: Privacy,
) -> Result<Option<RecordBatch>> {
    let models = passing_models(st, pv);
    if models.len() < 2 || !strata.values().any(|&(_, c)| c.is_some()) {
        return Ok(None);
    }
    let totals = stratum_totals(sp, cells)?;
    let n_of = |s: u32| totals.get(&s).map_or(0, |c| c.n);
    let wanted_m: HashSet<u32> = models.iter().map(|m| m.0).collect();
    let mut out: Vec<Row> = Vec::new();
    for (feature, col, source) in [
        ("response_type", RT, sp.rt_table),
        ("ai_values", AI, sp.values_table),
    ] {
        // the derived `x model` table: the privacy rule is read from its counters
        let Some(&(by_model, _, _)) = sp
            .derived
            .iter()
            .find(|d| d.1 == source && d.2 == Keep::Model)
        else {
            continue;
        };
        debug_assert_eq!(plan.tables[by_model], (col, MODEL));
        let mut features: Vec<(u32, u64)> = st.keys[col]
            .iter()
            .filter(|(_, c)| pv.ok(c))
            .map(|(&k, c)| (k, c.n))
            .collect();
        features.sort_by(by_count_then_name(st));
        let wanted_v: HashSet<u32> = features.iter().map(|f| f.0).collect();
        let mut by_m: HashMap<u64, Counter> = HashMap::new();
        cells.for_each_part(by_model, |m| {
            for (&k, c) in m {
                let (v, model) = unpack(k);
                if wanted_v.contains(&v) && wanted_m.contains(&model) {
                    by_m.insert(k, c.clone());
                }
            }
        })?;
        // conversations of each published feature in each stratum of a published model
        let parts = cells.map_parts(source, |m| {
            m.iter()
                .filter(|(&k, _)| {
                    let (v, s) = unpack(k);
                    wanted_v.contains(&v)
                        && strata
                            .get(&s)
                            .is_some_and(|(m, _)| m.is_some_and(|m| wanted_m.contains(&m)))
                })
                .map(|(&k, c)| (k, c.n))
                .collect::<Vec<(u64, u64)>>()
        })?;
        let x3: HashMap<u64, u64> = parts.into_iter().flatten().collect();
        let x_of = |v: u32, s: u32| x3.get(&pack(v, s)).copied().unwrap_or(0);
        for i in 0..models.len() {
            for j in i + 1..models.len() {
                let ((ma, na), (mb, nb)) = (models[i], models[j]);
                let layout = pair_strata(st, ma, mb, strata, &totals, pv);
                let rows: Vec<Row> = features
                    .par_iter()
                    .filter_map(|&(v, _)| {
                        let ca = by_m.get(&pack(v, ma));
                        let cb = by_m.get(&pack(v, mb));
                        let xa = ca.map_or(0, |c| c.n);
                        let xb = cb.map_or(0, |c| c.n);
                        if xa + xb == 0 || !pv.ok_or_zero(ca) || !pv.ok_or_zero(cb) {
                            return None;
                        }
                        let stratum = |sa: &[u32], sb: &[u32]| {
                            let a: u64 = sa.iter().map(|&s| x_of(v, s)).sum();
                            let c: u64 = sb.iter().map(|&s| x_of(v, s)).sum();
                            let n_a: u64 = sa.iter().map(|&s| n_of(s)).sum();
                            let n_b: u64 = sb.iter().map(|&s| n_of(s)).sum();
                            Stratum::new(a, n_a - a, c, n_b - c)
                        };
                        let mut tables: Vec<Stratum> = layout
                            .named
                            .iter()
                            .map(|&(sa, sb)| stratum(&[sa], &[sb]))
                            .collect();
                        tables.push(stratum(&layout.pooled_a, &layout.pooled_b));
                        Some(Row {
                            feature,
                            value: st.string(v),
                            model_a: st.string(ma),
                            model_b: st.string(mb),
                            n: (na, nb),
                            x: (xa, xb),
                            z: two_proportion_z(xa, na, xb, nb),
                            cmh: cmh(&tables, LEVEL),
                        })
                    })
                    .collect();
                out.extend(rows);
            }
        }
    }
    // Bonferroni over the tests made: each row is one raw and one stratified test
    let m = out.len().max(1) as f64;
    let p_threshold = config.alpha / m;
    let sig = |p: Option<f64>| p.map(|p| p < p_threshold);
    let raw_sig: Vec<Option<bool>> = out.iter().map(|r| sig(r.z.map(|z| z.1))).collect();
    let cmh_sig: Vec<Option<bool>> = out.iter().map(|r| sig(r.cmh.p_value)).collect();
    let bools = |v: &[Option<bool>]| Arc::new(BooleanArray::from(v.to_vec())) as ArrayRef;
    let ci = |f: fn((f64, f64)) -> f64| f64s(out.iter().map(|r| r.cmh.ci.map(f)).collect());
    Ok(Some(batch(vec![
        ("feature", strs(out.iter().map(|r| r.feature).collect())),
        ("value", strs(out.iter().map(|r| r.value).collect())),
        ("model_a", strs(out.iter().map(|r| r.model_a).collect())),
        ("model_b", strs(out.iter().map(|r| r.model_b).collect())),
        ("n_a", u64s(out.iter().map(|r| r.n.0).collect())),
        ("n_b", u64s(out.iter().map(|r| r.n.1).collect())),
        ("x_a", u64s(out.iter().map(|r| r.x.0).collect())),
        ("x_b", u64s(out.iter().map(|r| r.x.1).collect())),
        (
            "pct_a",
            f64s(out.iter().map(|r| pct(r.x.0, r.n.0)).collect()),
        ),
        (
            "pct_b",
            f64s(out.iter().map(|r| pct(r.x.1, r.n.1)).collect()),
        ),
        ("z", f64s(out.iter().map(|r| r.z.map(|z| z.0)).collect())),
        (
            "p_value",
            f64s(out.iter().map(|r| r.z.map(|z| z.1)).collect()),
        ),
        (
            "n_strata",
            u64s(out.iter().map(|r| r.cmh.n_strata as u64).collect()),
        ),
        (
            "common_odds_ratio",
            f64s(out.iter().map(|r| r.cmh.odds_ratio).collect()),
        ),
        ("odds_ratio_low", ci(|c| c.0)),
        ("odds_ratio_high", ci(|c| c.1)),
        (
            "cmh_statistic",
            f64s(out.iter().map(|r| r.cmh.statistic).collect()),
        ),
        (
            "cmh_p_value",
            f64s(out.iter().map(|r| r.cmh.p_value).collect()),
        ),
        (
            "breslow_day",
            f64s(out.iter().map(|r| r.cmh.breslow_day).collect()),
        ),
        (
            "breslow_day_p_value",
            f64s(out.iter().map(|r| r.cmh.breslow_day_p).collect()),
        ),
        ("n_tests", u64s(vec![out.len() as u64; out.len()])),
        ("p_threshold", f64s(vec![Some(p_threshold); out.len()])),
        ("significant_raw", bools(&raw_sig)),
        ("significant_within_tasks", bools(&cmh_sig)),
        (
            "verdict",
            strs(
                raw_sig
                    .iter()
                    .zip(&cmh_sig)
                    .map(|(r, c)| verdict(r.unwrap_or(false), c.unwrap_or(false)))
                    .collect(),
            ),
        ),
    ])))
}
