//! What every published table shares: the privacy rule a figure must pass to be shown, the
//! order value-like rows are listed in, and the Arrow columns the tables are built from.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};

use crate::engine::users::Counter;
use crate::engine::State;

#[derive(Clone, Copy)]
pub(super) struct Privacy {
    pub min_conversations: u64,
    pub min_users: u32,
}

impl Privacy {
    pub fn ok(&self, c: &Counter) -> bool {
        c.passes(self.min_conversations, self.min_users)
    }
    /// A count may be shown as zero (it describes nobody) or when it passes the rule.
    pub fn ok_or_zero(&self, c: Option<&Counter>) -> bool {
        c.is_none_or(|c| c.n == 0 || self.ok(c))
    }
}

pub(super) fn pct(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| 100.0 * num as f64 / den as f64)
}

pub(super) fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(cols).expect("columns built with equal lengths")
}

pub(super) fn strs(v: Vec<&str>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
pub(super) fn u64s(v: Vec<u64>) -> ArrayRef {
    Arc::new(UInt64Array::from(v))
}
pub(super) fn opt_u64s(v: Vec<Option<u64>>) -> ArrayRef {
    Arc::new(UInt64Array::from(v))
}
pub(super) fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

/// Output order of value-like rows: most frequent first, then alphabetical.
pub(super) fn by_count_then_name(st: &State) -> impl Fn(&(u32, u64), &(u32, u64)) -> Ordering + '_ {
    move |a, b| {
        b.1.cmp(&a.1)
            .then_with(|| st.string(a.0).cmp(st.string(b.0)))
    }
}

/// Each string id's position in the sorted order of all interned strings (which are distinct).
pub(super) fn string_ranks(st: &State) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..st.strings.len() as u32).collect();
    ids.sort_unstable_by(|&a, &b| st.string(a).cmp(st.string(b)));
    let mut rank = vec![0u32; ids.len()];
    for (r, &id) in ids.iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    rank
}
