//! The engine: configuration, the column plan, parallel ingestion over per-thread shards, merge.

use arrow_array::RecordBatch;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use hashbrown::HashMap;

use std::borrow::Cow;
use std::path::Path;

use crate::cells::{Cells, Scatter, PARTS};
use crate::ingest::{
    count_keys, count_misc, count_table, expects_list, resolve, BatchView, Misc, Resolved,
    RowFilter,
};
use crate::pairs::PairPlan;
use crate::report::{Analysis, TableCells};
use crate::spill::Spill;
use crate::state::State;
use crate::strata::{Keep, StrataPlan, StratumCache};
use crate::users::Counter;

/// Positions of the columns every analysis tracks, in `Plan::columns`.
pub const AI: usize = 0;
pub const HUMAN: usize = 1;
pub const RT: usize = 2;
pub const MODEL: usize = 3;
pub const EXPLICIT: usize = 4;
const FIXED: [&str; 5] = [
    "ai_values",
    "human_values",
    "response_type",
    "model",
    "ai_values_explicit",
];

/// Index in DEFAULT_TABLES of `ai_values x task`, the fallback for `ai_values x task_cluster`.
pub const RAW_TASK_TABLE: usize = 1;

/// The design's default tables. Both task tables are kept; the report publishes the clustered
/// one when it has data and falls back to raw tasks otherwise.
pub const DEFAULT_TABLES: [(&str, &str); 7] = [
    ("ai_values", "task_cluster"),
    ("ai_values", "task"),
    ("human_values", "ai_values"),
    ("ai_values", "response_type"),
    ("human_values", "response_type"),
    ("ai_values", "model"),
    ("response_type", "model"),
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Column pairs to cross; None means the design's default tables.
    pub tables: Option<Vec<(String, String)>>,
    pub min_conversations: u64,
    pub min_users: u32,
    pub alpha: f64,
    /// Number of tests for the Bonferroni correction; None: each table's number of rows.
    pub n_tests: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tables: None,
            min_conversations: crate::schema::DEFAULT_MIN_CONVERSATIONS,
            min_users: crate::schema::DEFAULT_MIN_USERS,
            alpha: crate::schema::DEFAULT_ALPHA,
            n_tests: None,
        }
    }
}

/// A rejected input row: its index in the batch and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub row: u64,
    pub conversation_id: Option<String>,
    pub reason: &'static str,
}

impl Reject {
    pub const NULL_ID: &'static str = "conversation_id is null";
    pub const NULL_RESPONSE_TYPE: &'static str = "response_type is null or empty";
    pub const UNKNOWN_RESPONSE_TYPE: &'static str = "response_type is not one of the seven types";
}

/// The column layout derived from a configuration.
#[derive(Clone, Debug)]
pub struct Plan {
    pub columns: Vec<String>,
    /// Index pairs into `columns`.
    pub tables: Vec<(usize, usize)>,
    pub default_tables: bool,
    /// Columns named only by the user's tables: these must exist in the input.
    pub required_extra: Vec<String>,
    pub min_users: u32,
    /// With the default tables: the three-way counts by model and task cluster, which also
    /// stand in for the two-way tables they sum to (see `strata`).
    pub strata: Option<StrataPlan>,
    /// With the default tables: `human_values x ai_values` again, over the conversations of a
    /// few response types only, for the response-type mix of each value pair (see `pairs`).
    pub pairs: Option<PairPlan>,
}

impl Plan {
    pub fn new(config: &EngineConfig) -> Result<Plan> {
        if config.min_users == 0 {
            return Err(EngineError::Config("min_users must be at least 1".into()));
        }
        if !(config.alpha > 0.0 && config.alpha < 1.0) {
            return Err(EngineError::Config("alpha must be in (0, 1)".into()));
        }
        if config.n_tests == Some(0) {
            return Err(EngineError::Config("n_tests must be at least 1".into()));
        }
        let pairs: Vec<(String, String)> = match &config.tables {
            None => DEFAULT_TABLES
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            Some(t) => t.clone(),
        };
        let mut columns: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
        let mut required_extra = Vec::new();
        let mut tables = Vec::new();
        for (a, b) in &pairs {
            let mut idx = |name: &String| -> Result<usize> {
                if name.is_empty()
                    || ["conversation_id", "user_id", "subjective"].contains(&name.as_str())
                {
                    return Err(EngineError::Config(format!(
                        "column '{name}' cannot be crossed in a table"
                    )));
                }
                if let Some(p) = columns.iter().position(|c| c == name) {
                    return Ok(p);
                }
                columns.push(name.clone());
                if expects_list(name).is_none() && config.tables.is_some() {
                    required_extra.push(name.clone());
                }
                Ok(columns.len() - 1)
            };
            let (ia, ib) = (idx(a)?, idx(b)?);
            if ia == ib {
                return Err(EngineError::Config(format!(
                    "table '{a}:{b}' crosses a column with itself"
                )));
            }
            if tables.contains(&(ia, ib)) {
                return Err(EngineError::Config(format!(
                    "table '{a}:{b}' is listed twice"
                )));
            }
            tables.push((ia, ib));
        }
        let strata = config.tables.is_none().then(|| {
            let at = |a: usize, b: usize| tables.iter().position(|&t| t == (a, b));
            let cluster = columns
                .iter()
                .position(|c| c == "task_cluster")
                .expect("a default table");
            columns.push(crate::strata::COLUMN.to_string());
            let column = columns.len() - 1;
            let derived = [
                (at(AI, cluster), AI, Keep::Cluster),
                (at(AI, MODEL), AI, Keep::Model),
                (at(RT, MODEL), RT, Keep::Model),
            ];
            tables.push((AI, column));
            tables.push((RT, column));
            let (values_table, rt_table) = (tables.len() - 2, tables.len() - 1);
            StrataPlan {
                column,
                model: MODEL,
                cluster,
                values_table,
                rt_table,
                derived: derived
                    .into_iter()
                    .map(|(t, row, keep)| {
                        let source = if row == AI { values_table } else { rt_table };
                        (t.expect("a default table"), source, keep)
                    })
                    .collect(),
            }
        });
        let pairs = config
            .tables
            .is_none()
            .then(|| PairPlan::add(&mut tables, HUMAN, AI));
        Ok(Plan {
            columns,
            tables,
            default_tables: config.tables.is_none(),
            required_extra,
            min_users: config.min_users,
            strata,
            pairs,
        })
    }

    pub fn table_name(&self, t: usize) -> String {
        let (a, b) = self.tables[t];
        format!("{}__{}", self.columns[a], self.columns[b])
    }
}

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
    /// Stratum ids by (model, cluster); not part of the state.
    strata_cache: StratumCache,
}

/// One independent piece of counting work for a batch: each owns a disjoint part of the state.
enum Job<'a> {
    Keys(usize, &'a mut HashMap<u32, Counter>),
    /// (columns crossed, the rows counted), cells, their buffers
    Table((usize, usize), RowFilter, &'a mut Cells, &'a mut Scatter),
    Misc(Misc<'a>),
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
            strata_cache: StratumCache::new(),
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
            hot: self.state.tables.iter().collect(),
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
            hot: self.state.tables.iter().collect(),
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
        if let Some(sp) = &self.plan.strata {
            crate::strata::assign(
                &mut self.state,
                &mut self.strata_cache,
                &mut self.scratch,
                sp,
            );
        }
        let res = &self.scratch[..];
        let rows: usize = res.iter().map(Resolved::len).sum();
        if rows == 0 {
            return Ok(rejects);
        }
        let cap = self.config.min_users;
        let st = &mut self.state;
        let before: Vec<usize> = st.tables.iter().map(|m| m.len()).collect();
        let mut jobs: Vec<Job> = Vec::with_capacity(st.keys.len() + st.tables.len() + 1);
        // The stratum column's keys would only repeat `response_type x stratum`'s totals, and
        // derived tables are not counted.
        let strata = self.plan.strata.as_ref();
        let wanted = |c: usize| strata.is_none_or(|sp| c != sp.column);
        let counted = |t: usize| strata.is_none_or(|sp| !sp.is_derived(t));
        jobs.extend(
            st.keys
                .iter_mut()
                .enumerate()
                .filter(|(c, _)| wanted(*c))
                .map(|(c, m)| Job::Keys(c, m)),
        );
        // The raw-task default table is only published when there are no task clusters, so
        // rows that have a cluster need not be counted in it.
        let skip = |t: usize| {
            if self.plan.default_tables && t == RAW_TASK_TABLE {
                RowFilter::WithoutColumn(self.plan.tables[0].1)
            } else {
                self.plan
                    .pairs
                    .as_ref()
                    .map_or(RowFilter::All, |pp| pp.filter(t))
            }
        };
        jobs.extend(
            st.tables
                .iter_mut()
                .zip(self.scatter.iter_mut())
                .zip(&self.plan.tables)
                .enumerate()
                .filter(|(t, _)| counted(*t))
                .map(|(t, ((m, s), &ab))| Job::Table(ab, skip(t), m, s)),
        );
        jobs.push(Job::Misc(Misc {
            rt_all: &mut st.rt_all,
            rt_with_human: &mut st.rt_with_human,
            rt_mirrored: &mut st.rt_mirrored,
            rt_explicit: &mut st.rt_explicit,
            models: &mut st.models,
        }));
        let run = |job: Job| match job {
            Job::Keys(c, m) => count_keys(m, res, c, cap),
            Job::Table(ab, skip, m, s) => count_table(m, s, res, ab, skip, cap),
            Job::Misc(m) => count_misc(m, res, cap),
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

    /// The published figures, with suppression applied.
    pub fn analysis(&self) -> Result<Analysis> {
        let cells = self.cells();
        let Some(sp) = &self.plan.strata else {
            return Analysis::build(&self.config, &self.plan, &self.state, &cells, None);
        };
        let strata = crate::strata::strata(&self.state, sp, &cells)?;
        let derived = crate::strata::derive(sp, &strata, &cells, self.config.min_users)?;
        let mut cells = cells;
        for (t, table) in &derived {
            cells.hot[*t] = table;
        }
        Analysis::build(
            &self.config,
            &self.plan,
            &self.state,
            &cells,
            Some((sp, &strata)),
        )
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
