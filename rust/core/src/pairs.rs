//! The response-type mix of human-value x AI-value pairs, and the opposing pattern.
//!
//! The paper separates pairs that mirror or support (efficiency -> efficiency) from pairs that
//! oppose (human "deception" -> AI "honesty", mostly in resistance). A full three-way count
//! (human value x AI value x response type) would multiply the cells of the engine's largest
//! table; what the classification needs is smaller: how many of a pair's conversations were met
//! with reframing, and how many with resistance. So `human_values x ai_values` is counted twice
//! more, over the rows of those response types only (about a tenth of the rows in the paper's
//! mix), and the rest of a pair's mix is its total minus these.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use hashbrown::{HashMap, HashSet};

use crate::error::Result;
use crate::ingest::RowFilter;
use crate::report::{batch, opt_u64s, strs, u64s, Privacy, TableCells};
use crate::schema::RESPONSE_TYPES;
use crate::state::{pack, State};
use crate::users::Counter;

fn mask(names: &[&str]) -> u8 {
    names.iter().fold(0, |m, n| {
        m | 1
            << RESPONSE_TYPES
                .iter()
                .position(|t| t == n)
                .expect("a response type")
    })
}

/// The response-type groups counted per pair: (name, response types).
pub const GROUPS: [(&str, &[&str]); 2] = [
    ("reframing", &["reframing"]),
    ("resistance", &["mild resistance", "strong resistance"]),
];

/// A pair is opposing when at least this share of its conversations met resistance.
pub const OPPOSING_SHARE: f64 = 0.5;

#[derive(Clone, Debug)]
pub struct PairPlan {
    /// (table, response-type mask), one per group of GROUPS.
    pub groups: Vec<(usize, u8)>,
}

impl PairPlan {
    /// Appends the restricted `human x ai` tables to `tables`.
    pub fn add(tables: &mut Vec<(usize, usize)>, human: usize, ai: usize) -> PairPlan {
        let groups = GROUPS
            .iter()
            .map(|(_, types)| {
                tables.push((human, ai));
                (tables.len() - 1, mask(types))
            })
            .collect();
        PairPlan { groups }
    }

    pub fn filter(&self, t: usize) -> RowFilter {
        self.groups
            .iter()
            .find(|g| g.0 == t)
            .map_or(RowFilter::All, |g| RowFilter::ResponseTypes(g.1))
    }

    pub fn is_restricted(&self, t: usize) -> bool {
        self.groups.iter().any(|g| g.0 == t)
    }
}

/// One significant, published pair of `human_values x ai_values`: ids, conversations, residual.
pub(crate) type SignificantPair = (u32, u32, u64, f64);

/// Every significant pair with a positive residual, its conversations by response-type group
/// and its class. A group's count is shown when it passes the privacy rule (or is zero); a
/// pair is called opposing only on a count that is shown.
pub(crate) fn value_pairs(
    st: &State,
    pp: &PairPlan,
    cells: &TableCells,
    significant: &[SignificantPair],
    pv: Privacy,
) -> Result<RecordBatch> {
    let wanted: HashSet<u64> = significant.iter().map(|p| pack(p.0, p.1)).collect();
    let mut groups: Vec<HashMap<u64, Counter>> = Vec::new();
    for &(t, _) in &pp.groups {
        let mut found = HashMap::new();
        cells.for_each_part(t, |m| {
            for (&k, c) in m {
                if wanted.contains(&k) {
                    found.insert(k, c.clone());
                }
            }
        })?;
        groups.push(found);
    }
    let mut rows: Vec<&SignificantPair> = significant.iter().collect();
    // strongest association first
    rows.sort_by(|a, b| {
        b.3.total_cmp(&a.3)
            .then_with(|| (a.0, a.1).cmp(&(b.0, b.1)))
    });
    let mut shown: Vec<Vec<Option<u64>>> = vec![Vec::new(); groups.len()];
    let mut resist_pct = Vec::new();
    let mut class = Vec::new();
    for &&(h, a, n, _) in &rows {
        let mut resist_shown = None;
        for (g, found) in groups.iter().enumerate() {
            let c = found.get(&pack(h, a));
            let x = c.map_or(0, |c| c.n);
            let v = pv.ok_or_zero(c).then_some(x);
            if GROUPS[g].0 == "resistance" {
                resist_shown = v;
            }
            shown[g].push(v);
        }
        let share = resist_shown.map(|x| x as f64 / n as f64);
        resist_pct.push(share.map(|s| 100.0 * s));
        class.push(if h == a || st.string(h) == st.string(a) {
            "mirroring"
        } else if share.is_some_and(|s| s >= OPPOSING_SHARE) {
            "opposing"
        } else {
            "supporting"
        });
    }
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        (
            "human_value",
            strs(rows.iter().map(|r| st.string(r.0)).collect()),
        ),
        (
            "ai_value",
            strs(rows.iter().map(|r| st.string(r.1)).collect()),
        ),
        ("n_conversations", u64s(rows.iter().map(|r| r.2).collect())),
        (
            "adjusted_residual",
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ),
    ];
    let names = ["n_reframing", "n_resistance"];
    for (g, v) in shown.into_iter().enumerate() {
        cols.push((names[g], opt_u64s(v)));
    }
    cols.push(("pct_resistance", Arc::new(Float64Array::from(resist_pct))));
    cols.push(("class", strs(class)));
    Ok(batch(cols))
}
