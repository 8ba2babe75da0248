//! The engine: configuration, the column plan, parallel ingestion over per-thread shards, merge.

use arrow_array::RecordBatch;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::ingest::{expects_list, BatchView};
use crate::report::Analysis;
use crate::state::State;

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
            min_conversations: 15,
            min_users: 10,
            alpha: 0.05,
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
        Ok(Plan {
            columns,
            tables,
            default_tables: config.tables.is_none(),
            required_extra,
            min_users: config.min_users,
        })
    }

    pub fn table_name(&self, t: usize) -> String {
        let (a, b) = self.tables[t];
        format!("{}__{}", self.columns[a], self.columns[b])
    }
}

/// Below this many rows a batch is ingested on one thread: splitting costs more than it saves.
const PARALLEL_MIN_ROWS: usize = 16_384;

#[derive(Clone)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) plan: Plan,
    /// One partial state per worker thread; merged on demand.
    pub(crate) shards: Vec<State>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let plan = Plan::new(&config)?;
        let n = rayon::current_num_threads().max(1);
        let shards = (0..n)
            .map(|_| State::new(plan.columns.len(), plan.tables.len()))
            .collect();
        Ok(Engine {
            config,
            plan,
            shards,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Folds one batch in. Schema problems fail the whole batch before anything is counted;
    /// row-level problems reject just the row, and are returned.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<Vec<Reject>> {
        let view = BatchView::new(batch, &self.plan)?;
        let rows = view.rows;
        let plan = &self.plan;
        if rows < PARALLEL_MIN_ROWS || self.shards.len() == 1 {
            return Ok(self.shards[0].ingest(&view, plan, 0, rows));
        }
        let k = self.shards.len();
        let chunk = rows.div_ceil(k);
        let parts: Vec<Vec<_>> = self
            .shards
            .par_iter_mut()
            .enumerate()
            .map(|(s, shard)| {
                let lo = (s * chunk).min(rows);
                let hi = ((s + 1) * chunk).min(rows);
                shard.ingest(&view, plan, lo, hi)
            })
            .collect();
        Ok(parts.into_iter().flatten().collect())
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
        for shard in &other.shards {
            self.shards[0].merge_from(shard, cap);
        }
        Ok(())
    }

    /// All shards folded into one state.
    pub fn merged_state(&self) -> State {
        let cap = self.config.min_users;
        let mut iter = self.shards.iter();
        let mut out = iter.next().cloned().unwrap_or_default();
        for s in iter {
            out.merge_from(s, cap);
        }
        out
    }

    pub(crate) fn from_state(config: EngineConfig, state: State) -> Result<Engine> {
        let mut engine = Engine::new(config)?;
        engine.shards[0] = state;
        Ok(engine)
    }

    /// The published figures, with suppression applied.
    pub fn analysis(&self) -> Analysis {
        Analysis::build(&self.config, &self.plan, &self.merged_state())
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

impl Engine {
    /// Rows seen so far across all shards.
    pub fn shards_rows(&self) -> u64 {
        self.shards.iter().map(|s| s.n_rows).sum()
    }
}
