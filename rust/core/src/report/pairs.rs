//! The response-type mix of the value pairs that go together (human value -> AI value), and
//! the explicitly stated AI values (the paper's appendix B.6).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};

use super::cooccurrence::TableResult;
use super::publish::{batch, f64s, pct, strs, u64s, Privacy};
use super::stats::wilson_interval;
use crate::engine::strata::RtCounts;
use crate::engine::{State, AI, EXPLICIT};
use crate::schema::RESPONSE_TYPES;

/// Index of the resistance types in `RESPONSE_TYPES`.
const RESISTANCE: [usize; 2] = [4, 5];

/// How an AI value answers a human value, the one rule every output uses:
///
/// * `mirroring`: the same value on both sides;
/// * `opposing`: otherwise, when mild and strong resistance together are more than half of the
///   pair's conversations (the paper's human "deception" -> AI "honesty", mostly resisted);
/// * `supporting`: every other pair (the AI complements what the user values).
pub fn pair_pattern(human: &str, ai: &str, mix: &RtCounts) -> &'static str {
    let n: u64 = mix.iter().sum();
    let resisted: u64 = RESISTANCE.iter().map(|&r| mix[r]).sum();
    if human == ai {
        "mirroring"
    } else if resisted > n - resisted {
        "opposing"
    } else {
        "supporting"
    }
}

/// The output column of a response type's share: `pct_` and its name in snake case.
pub fn pct_column(response_type: &str) -> String {
    format!("pct_{}", response_type.replace(' ', "_"))
}

/// Which of a pair's response-type counts may be shown. Its cells carry no user sets, so a
/// count is shown when it is zero or reaches `min_conversations` (the pair itself passed both
/// thresholds). When exactly one count is held back, the smallest shown non-zero one is held
/// back too, or the pair's total would give the hidden one away.
pub(super) fn shown_counts(mix: &RtCounts, min_conversations: u64) -> [bool; 7] {
    let mut shown = mix.map(|c| c == 0 || c >= min_conversations);
    if shown.iter().filter(|&&s| !s).count() == 1 {
        let smallest = (0..mix.len())
            .filter(|&r| shown[r] && mix[r] > 0)
            .min_by_key(|&r| (mix[r], std::cmp::Reverse(r)));
        if let Some(r) = smallest {
            shown[r] = false;
        }
    }
    shown
}

/// `value_pairs`: each human value x AI value cell of the published `human_values x ai_values`
/// table that is significant with a positive adjusted residual, with its response-type mix.
pub(super) fn value_pairs(table: Option<&TableResult>, pv: Privacy) -> RecordBatch {
    let mut human: Vec<&str> = Vec::new();
    let mut ai: Vec<&str> = Vec::new();
    let mut n: Vec<u64> = Vec::new();
    let mut residual: Vec<Option<f64>> = Vec::new();
    let mut threshold: Vec<Option<f64>> = Vec::new();
    let mut shares: Vec<Vec<Option<f64>>> = vec![Vec::new(); RESPONSE_TYPES.len()];
    let mut dominant: Vec<Option<&str>> = Vec::new();
    let mut pattern: Vec<&str> = Vec::new();
    if let Some(t) = table {
        let b = &t.batch;
        let rows = b.column(0).as_string::<i32>();
        let cols = b.column(1).as_string::<i32>();
        let observed = b.column(2).as_primitive::<UInt64Type>();
        let res = b.column(4).as_primitive::<Float64Type>();
        let sig = b.column(5).as_boolean();
        for i in 0..b.num_rows() {
            let r = res.is_valid(i).then(|| res.value(i));
            if !(sig.is_valid(i) && sig.value(i) && r.is_some_and(|r| r > 0.0)) {
                continue;
            }
            let (h, a, mix) = (rows.value(i), cols.value(i), t.mixes[i]);
            let total: u64 = mix.iter().sum();
            let shown = shown_counts(&mix, pv.min_conversations);
            for (r, s) in shares.iter_mut().enumerate() {
                s.push(if shown[r] { pct(mix[r], total) } else { None });
            }
            let top = (0..mix.len())
                .filter(|&r| shown[r] && mix[r] > 0)
                .max_by_key(|&r| (mix[r], std::cmp::Reverse(r)));
            human.push(h);
            ai.push(a);
            n.push(observed.value(i));
            residual.push(r);
            threshold.push(t.threshold);
            dominant.push(top.map(|r| RESPONSE_TYPES[r]));
            pattern.push(pair_pattern(h, a, &mix));
        }
    }
    let names: Vec<String> = RESPONSE_TYPES.iter().map(|r| pct_column(r)).collect();
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("human_value", strs(human)),
        ("ai_value", strs(ai)),
        ("n_conversations", u64s(n)),
        ("residual", f64s(residual)),
        ("threshold", f64s(threshold)),
    ];
    for (name, s) in names.iter().zip(shares) {
        cols.push((name.as_str(), f64s(s)));
    }
    cols.push((
        "dominant_response_type",
        Arc::new(StringArray::from(dominant)) as ArrayRef,
    ));
    cols.push(("pattern", strs(pattern)));
    batch(cols)
}

/// `explicit_by_response_type`: per response type, the share of its conversations with at
/// least one explicitly stated AI value, with Wilson's 95% interval (in percent like the share).
/// A response type is listed when both its conversations and those with an explicit value may
/// be published.
pub(super) fn explicit_by_response_type(st: &State, pv: Privacy) -> RecordBatch {
    let mut out: (Vec<&str>, Vec<u64>, Vec<u64>) = Default::default();
    let mut p: [Vec<Option<f64>>; 3] = Default::default();
    for (r, name) in RESPONSE_TYPES.iter().enumerate() {
        let (all, with) = (&st.rt_all[r], &st.rt_explicit[r]);
        if !pv.ok(all) || !pv.ok_or_zero(Some(with)) {
            continue;
        }
        let ci = wilson_interval(with.n, all.n, 0.05);
        out.0.push(name);
        out.1.push(all.n);
        out.2.push(with.n);
        p[0].push(pct(with.n, all.n));
        p[1].push(ci.map(|c| 100.0 * c.0));
        p[2].push(ci.map(|c| 100.0 * c.1));
    }
    batch(vec![
        ("response_type", strs(out.0)),
        ("n_conversations", u64s(out.1)),
        ("n_with_explicit", u64s(out.2)),
        ("pct_with_explicit", f64s(std::mem::take(&mut p[0]))),
        ("ci_low", f64s(std::mem::take(&mut p[1]))),
        ("ci_high", f64s(std::mem::take(&mut p[2]))),
    ])
}

/// `explicit_values`: each AI value whose explicit count may be published, how often it is
/// stated outright relative to how often it is expressed at all, with Wilson's 95% interval
/// of that ratio. Its expressed count must pass too (it is published beside). Highest ratio
/// first, then by name.
pub(super) fn explicit_values(st: &State, pv: Privacy) -> RecordBatch {
    // (value, expressed, explicit)
    let mut rows: Vec<(&str, u64, u64)> = st.keys[EXPLICIT]
        .iter()
        .filter(|(_, c)| pv.ok(c))
        .filter_map(|(&v, c)| {
            let expressed = st.keys[AI].get(&v).filter(|e| pv.ok(e))?;
            Some((st.string(v), expressed.n, c.n))
        })
        .collect();
    let ratio = |r: &(&str, u64, u64)| r.2 as f64 / r.1 as f64;
    rows.sort_by(|a, b| ratio(b).total_cmp(&ratio(a)).then_with(|| a.0.cmp(b.0)));
    let ci: Vec<Option<(f64, f64)>> = rows
        .iter()
        .map(|r| wilson_interval(r.2, r.1, 0.05))
        .collect();
    batch(vec![
        ("value", strs(rows.iter().map(|r| r.0).collect())),
        ("n_expressed", u64s(rows.iter().map(|r| r.1).collect())),
        ("n_explicit", u64s(rows.iter().map(|r| r.2).collect())),
        ("ratio", f64s(rows.iter().map(|r| Some(ratio(r))).collect())),
        ("ci_low", f64s(ci.iter().map(|c| c.map(|c| c.0)).collect())),
        ("ci_high", f64s(ci.iter().map(|c| c.map(|c| c.1)).collect())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_rule() {
        let resisted = [1, 0, 0, 0, 3, 3, 0];
        assert_eq!(pair_pattern("honesty", "honesty", &resisted), "mirroring");
        assert_eq!(pair_pattern("deception", "honesty", &resisted), "opposing");
        // exactly half is not more than half
        assert_eq!(pair_pattern("a", "b", &[3, 0, 0, 0, 2, 1, 0]), "supporting");
        assert_eq!(
            pct_column("neutral acknowledgment"),
            "pct_neutral_acknowledgment"
        );
    }

    #[test]
    fn a_lone_small_count_takes_the_next_smallest_with_it() {
        let shown = shown_counts(&[40, 20, 0, 3, 0, 16, 0], 15);
        assert_eq!(shown, [true, true, true, false, true, false, true]);
        // two held back already hide each other
        let shown = shown_counts(&[40, 2, 0, 3, 0, 16, 0], 15);
        assert_eq!(shown, [true, false, true, false, true, true, true]);
    }

    #[test]
    fn wilson_is_inside_zero_one_and_around_the_share() {
        let (lo, hi) = wilson_interval(0, 20, 0.05).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.2);
        let (lo, hi) = wilson_interval(30, 100, 0.05).unwrap();
        assert!(lo < 0.3 && 0.3 < hi);
        assert_eq!(wilson_interval(3, 2, 0.05), None);
    }
}
