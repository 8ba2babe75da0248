//! Value frequencies, response types and mirroring: one count per value, each shown only when
//! it passes the privacy rule.

use arrow_array::RecordBatch;

use super::publish::{batch, by_count_then_name, f64s, opt_u64s, pct, strs, u64s, Privacy};
use crate::engine::{State, HUMAN};
use crate::schema::RESPONSE_TYPES;

pub(super) fn frequencies(st: &State, col: usize, n: u64, pv: Privacy) -> (RecordBatch, u64) {
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

pub(super) fn response_types(st: &State, pv: Privacy) -> (RecordBatch, u64) {
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

pub(super) fn mirroring(st: &State, pv: Privacy) -> (RecordBatch, u64) {
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
