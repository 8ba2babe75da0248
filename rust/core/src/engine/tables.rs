//! A table's cells as one whole, wherever they are: in memory, or partly in spill files.

use hashbrown::HashMap;
use rayon::prelude::*;

use super::cells::{Cells, Margins, PARTS};
use super::spill::Spill;
use super::state::unpack;
use super::users::Counter;
use crate::error::Result;

/// The cells of each table, merged: in memory, plus any spilled to disk.
pub struct TableCells<'a> {
    pub hot: &'a [Cells],
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
        let hot = &self.hot[t];
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
        let hot = &self.hot[t];
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
        let hot = &self.hot[t];
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
