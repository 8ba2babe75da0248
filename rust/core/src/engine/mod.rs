//! The engine: parallel ingestion of Arrow batches into one mergeable state, merge, and the
//! memory budget of the co-occurrence tables (spilled to disk past it).
//!
//! Below it, in the order they use one another: `codec` (the state's bytes) sits on top of
//! this module; this module uses `ingest` (a batch into ids and counts), `tables` (the cells of
//! a table, in memory and on disk), `spill`, `state`, `strata`, `plan`, `cells`, `users`, `mix`,
//! `normalize`.

use std::borrow::Cow;
use std::path::Path;

use arrow_array::RecordBatch;
use hashbrown::HashMap;
use rayon::prelude::*;

use crate::error::{EngineError, Result};

pub mod cells;
pub mod codec;
pub mod ingest;
pub mod mix;
pub mod normalize;
pub mod plan;
pub mod spill;
pub mod state;
pub mod strata;
pub mod tables;
pub mod users;

pub use cells::Margins;
pub use plan::{
    EngineConfig, Plan, Reject, AI, DEFAULT_TABLES, EXPLICIT, HUMAN, MODEL, RAW_TASK_TABLE, RT,
};
pub use state::State;
pub use tables::TableCells;

use cells::{Cells, Scatter, PARTS};
use ingest::{
    count_keys, count_misc, count_model_strata, count_table, resolve, BatchView, Misc, Resolved,
};
use spill::Spill;
use users::Counter;

/// Below this many rows a batch is counted on one thread: spreading it costs more than it saves.
const PARALLEL_MIN_ROWS: usize = 4_096;

pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) plan: Plan,
    pub(crate) state: State,
    /// Reused between batches; not part of the state.
    scratch: Vec<Resolved>,
    /// Per table, reused between batches.
    scatter: Vec<Scatter>,
    /// Where table cells go once they outgrow the memory budget; None keeps all in memory.
    spill: Option<Spill>,
}

/// One independent piece of counting work for a batch: each owns a disjoint part of the state.
enum Job<'a> {
    Keys(usize, &'a mut HashMap<u32, Counter>),
    /// (columns crossed, a column whose non-empty rows are skipped, whether its cells keep
    /// their response-type mix), cells, their buffers
    Table(
        (usize, usize),
        Option<usize>,
        bool,
        &'a mut Cells,
        &'a mut Scatter,
    ),
    Misc(Misc<'a>),
    ModelStrata(&'a mut strata::ModelStrata, &'a mut strata::ModelStrata),
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let plan = Plan::new(&config)?;
        let state = State::new(plan.columns.len(), plan.tables.len());
        Ok(Engine {
            scatter: vec![Scatter::default(); plan.tables.len()],
            config,
            plan,
            state,
            scratch: Vec::new(),
            spill: None,
        })
    }

    /// Bounds the memory of the co-occurrence tables: once they would hold more than
    /// `limit_bytes`, their cells are moved to run files in a new private directory under
    /// `dir` (removed when the engine is dropped). Results are the same as without a limit.
    pub fn set_memory_limit(&mut self, dir: &Path, limit_bytes: usize) -> Result<()> {
        match self.spill.as_mut() {
            // a new budget for the same directory
            Some(spill) => spill.limit = limit_bytes,
            None => self.spill = Some(Spill::new(dir, limit_bytes, self.plan.tables.len())?),
        }
        self.maybe_spill(&[])
    }

    /// (bytes written to spill files, times the tables were spilled)
    pub fn spilled(&self) -> (u64, u64) {
        self.spill.as_ref().map_or((0, 0), |s| (s.bytes, s.spills))
    }

    /// Heap bytes the tables hold in memory now (an estimate).
    pub fn table_bytes(&self) -> usize {
        self.state.tables.iter().map(Cells::bytes).sum()
    }

    /// Spills the largest tables when the in-memory cells pass the budget, down to half of it.
    ///
    /// Each table is sized as it would be after another batch like the last (`before`: the
    /// table sizes before it), its parts that would regrow doubled: the budget bounds the
    /// peak, not the average.
    fn maybe_spill(&mut self, before: &[usize]) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let sizes: Vec<usize> = self
            .state
            .tables
            .iter()
            .enumerate()
            .map(|(t, m)| {
                let len = m.len();
                m.bytes_after(len - before.get(t).copied().unwrap_or(len).min(len))
            })
            .collect();
        let mut total: usize = sizes.iter().sum();
        if total <= spill.limit {
            return Ok(());
        }
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        order.sort_by_key(|&t| std::cmp::Reverse(sizes[t]));
        for t in order {
            if total <= spill.limit / 2 || sizes[t] == 0 {
                break;
            }
            spill.write(t, &self.state.tables[t])?;
            self.state.tables[t] = Cells::default();
            total -= sizes[t];
        }
        spill.spills += 1;
        Ok(())
    }

    pub(crate) fn cells(&self) -> TableCells<'_> {
        TableCells {
            hot: &self.state.tables,
            spill: self.spill.as_ref(),
            cap: self.config.min_users,
        }
    }

    /// The state with every spilled cell back in its table (borrowed when nothing is spilled).
    pub(crate) fn materialized(&self) -> Result<Cow<'_, State>> {
        let Some(spill) = self.spill.as_ref().filter(|s| s.any()) else {
            return Ok(Cow::Borrowed(&self.state));
        };
        let mut full = self.state.clone();
        let cells = TableCells {
            hot: &self.state.tables,
            spill: Some(spill),
            cap: self.config.min_users,
        };
        for (t, table) in full.tables.iter_mut().enumerate() {
            let mut p = 0;
            cells.for_each_part(t, |m| {
                table.set_part(p, m.clone());
                p += 1;
            })?;
        }
        Ok(Cow::Owned(full))
    }

    /// An independent copy with every cell in memory and no spill directory.
    pub fn try_clone(&self) -> Result<Engine> {
        let state = self.materialized()?.into_owned();
        Engine::from_state(self.config.clone(), state)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Rows seen so far, analysed or not.
    pub fn n_rows(&self) -> u64 {
        self.state.n_rows
    }

    /// Folds one batch in. Schema problems fail the whole batch before anything is counted;
    /// row-level problems reject just the row, and are returned.
    ///
    /// Two phases: the batch's strings are resolved to interned ids (on several threads when
    /// the columns are dictionaries, see `ingest::resolve`), then each key map and each table
    /// is counted as its own task on the rayon pool, a large table part by part. One state, no
    /// per-thread copies: memory is one table's worth.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<Vec<Reject>> {
        let view = BatchView::new(batch, &self.plan)?;
        let rejects = resolve(&mut self.state, &view, &mut self.scratch);
        let res = &self.scratch[..];
        let rows: usize = res.iter().map(Resolved::len).sum();
        if rows == 0 {
            return Ok(rejects);
        }
        let cap = self.config.min_users;
        let st = &mut self.state;
        let before: Vec<usize> = st.tables.iter().map(|m| m.len()).collect();
        let mut jobs: Vec<Job> = Vec::with_capacity(st.keys.len() + st.tables.len() + 1);
        jobs.extend(st.keys.iter_mut().enumerate().map(|(c, m)| Job::Keys(c, m)));
        // The raw-task default table is only published when there are no task clusters, so
        // rows that have a cluster need not be counted in it.
        let skip = |t: usize| {
            (self.plan.default_tables && t == RAW_TASK_TABLE).then_some(self.plan.tables[0].1)
        };
        jobs.extend(
            st.tables
                .iter_mut()
                .zip(self.scatter.iter_mut())
                .zip(&self.plan.tables)
                .enumerate()
                .map(|(t, ((m, s), &ab))| Job::Table(ab, skip(t), ab == (HUMAN, AI), m, s)),
        );
        jobs.push(Job::Misc(Misc {
            rt_all: &mut st.rt_all,
            rt_with_human: &mut st.rt_with_human,
            rt_mirrored: &mut st.rt_mirrored,
            rt_explicit: &mut st.rt_explicit,
            models: &mut st.models,
        }));
        let cols = self.plan.strata;
        if cols.any() {
            jobs.push(Job::ModelStrata(
                &mut st.strata.by_cluster,
                &mut st.strata.by_task,
            ));
        }
        let run = |job: Job| match job {
            Job::Keys(c, m) => count_keys(m, res, c, cap),
            Job::Table(ab, skip, true, m, s) => count_table::<true>(m, s, res, ab, skip, cap),
            Job::Table(ab, skip, false, m, s) => count_table::<false>(m, s, res, ab, skip, cap),
            Job::Misc(m) => count_misc(m, res, cap),
            Job::ModelStrata(a, b) => count_model_strata(a, b, res, cols),
        };
        if rows < PARALLEL_MIN_ROWS {
            jobs.into_iter().for_each(run);
        } else {
            jobs.into_par_iter().with_max_len(1).for_each(run);
        }
        self.maybe_spill(&before)?;
        Ok(rejects)
    }

    /// Folds another engine's counts into this one. Both must have the same settings.
    pub fn merge(&mut self, other: &Engine) -> Result<()> {
        if self.config != other.config {
            return Err(EngineError::Mismatch(describe_mismatch(
                &self.config,
                &other.config,
            )));
        }
        let cap = self.config.min_users;
        let remap = self.state.merge_from(&other.state, cap);
        // their in-memory cells are merged above; the ones on disk follow, a partition at a time
        if let Some(spill) = other.spill.as_ref() {
            for t in (0..self.state.tables.len()).filter(|&t| spill.has(t)) {
                for p in 0..PARTS {
                    let mut part = HashMap::new();
                    spill.read(t, p, cap, &mut part)?;
                    self.state.merge_cells(t, &remap, &part, cap);
                }
            }
        }
        self.maybe_spill(&[])
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub(crate) fn from_state(config: EngineConfig, state: State) -> Result<Engine> {
        let mut engine = Engine::new(config)?;
        engine.state = state;
        Ok(engine)
    }

    /// Moves the cells still in memory of every table that has cells on disk to disk too.
    ///
    /// Called before a result over spilled tables: the result merges each table part by part
    /// from disk anyway, and the memory the cells held then serves that work, so that a result
    /// peaks no higher than the streaming did. Results are unchanged.
    pub fn spill_rest(&mut self) -> Result<()> {
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        for (t, table) in self.state.tables.iter_mut().enumerate() {
            if spill.has(t) && !table.is_empty() {
                spill.write(t, table)?;
                *table = Cells::default();
            }
        }
        Ok(())
    }
}

fn describe_mismatch(a: &EngineConfig, b: &EngineConfig) -> String {
    let mut parts = Vec::new();
    if a.tables != b.tables {
        parts.push("tables");
    }
    if a.min_conversations != b.min_conversations {
        parts.push("min_conversations");
    }
    if a.min_users != b.min_users {
        parts.push("min_users");
    }
    if a.alpha != b.alpha {
        parts.push("alpha");
    }
    if a.n_tests != b.n_tests {
        parts.push("n_tests");
    }
    format!("{} differ", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{all_text, batch, conversation, Row};

    const VALUES: [&[&str]; 4] = [&["honesty"], &["clarity", "honesty"], &[], &["efficiency"]];

    fn rows(n: usize) -> Vec<Row<'static>> {
        (0..n)
            .map(|i| {
                let rt = crate::schema::RESPONSE_TYPES[i % 7];
                let model = ["m1", "m2", "m3"][i % 3];
                Row {
                    // ten users, so that some figures pass min_users and some do not
                    user_id: Some(
                        ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"][i % 10],
                    ),
                    human_values: VALUES[(i / 2) % 4],
                    ..conversation(i, model, VALUES[i % 4], rt)
                }
            })
            .collect()
    }

    fn config() -> EngineConfig {
        EngineConfig {
            min_conversations: 3,
            min_users: 2,
            ..Default::default()
        }
    }

    #[test]
    fn merging_the_halves_gives_what_one_pass_gives() {
        let all = rows(60);
        let mut one = Engine::new(config()).unwrap();
        one.update(&batch(&all)).unwrap();
        // the halves see their strings in another order, so their ids differ from one pass's
        let mut a = Engine::new(config()).unwrap();
        let mut b = Engine::new(config()).unwrap();
        b.update(&batch(&all[..25])).unwrap();
        a.update(&batch(&all[25..])).unwrap();
        a.merge(&b).unwrap();
        let (x, y) = (one.analysis().unwrap(), a.analysis().unwrap());
        assert_eq!(x.summary, y.summary);
        assert_eq!(x.tables, y.tables);
        assert_eq!(a.n_rows(), 60);
        // merging an empty engine changes nothing
        a.merge(&Engine::new(config()).unwrap()).unwrap();
        assert_eq!(all_text(&a.analysis().unwrap()), all_text(&x));
    }

    #[test]
    fn engines_with_different_settings_do_not_merge() {
        let mut a = Engine::new(config()).unwrap();
        let b = Engine::new(EngineConfig {
            min_users: 3,
            alpha: 0.01,
            ..config()
        })
        .unwrap();
        match a.merge(&b) {
            Err(EngineError::Mismatch(m)) => assert_eq!(m, "min_users, alpha differ"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_memory_limit_spills_without_changing_the_result() {
        let all = rows(200);
        let mut plain = Engine::new(config()).unwrap();
        let dir = std::env::temp_dir();
        let mut small = Engine::new(config()).unwrap();
        small.set_memory_limit(&dir, 1).unwrap();
        for chunk in all.chunks(40) {
            plain.update(&batch(chunk)).unwrap();
            small.update(&batch(chunk)).unwrap();
        }
        assert!(small.spilled().1 > 0, "nothing was spilled");
        let (x, y) = (plain.analysis().unwrap(), small.analysis().unwrap());
        assert_eq!(x.tables, y.tables);
        assert_eq!(x.summary, y.summary);
        // a copy holds every cell in memory and no spill directory
        let copy = small.try_clone().unwrap();
        assert_eq!(copy.spilled(), (0, 0));
        assert_eq!(copy.analysis().unwrap().tables, x.tables);
    }

    #[test]
    fn plans_refuse_tables_that_cannot_be_counted() {
        let with = |tables: &[(&str, &str)]| {
            Engine::new(EngineConfig {
                tables: Some(
                    tables
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect(),
                ),
                ..Default::default()
            })
            .err()
            .map(|e| e.to_string())
        };
        assert_eq!(with(&[("ai_values", "model")]), None);
        assert!(with(&[("ai_values", "user_id")])
            .unwrap()
            .contains("'user_id' cannot be crossed"));
        assert!(with(&[("model", "model")]).unwrap().contains("with itself"));
        assert!(with(&[("task", "model"), ("task", "model")])
            .unwrap()
            .contains("twice"));
    }
}
