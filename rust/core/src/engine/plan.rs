//! What an engine counts, derived once from its configuration: the columns it tracks, the
//! tables it crosses, the privacy settings, and the reasons a row can be rejected.

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::schema::{expects_list, DEFAULT_ALPHA, DEFAULT_MIN_CONVERSATIONS, DEFAULT_MIN_USERS};

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
            min_conversations: DEFAULT_MIN_CONVERSATIONS,
            min_users: DEFAULT_MIN_USERS,
            alpha: DEFAULT_ALPHA,
            n_tests: None,
        }
    }
}

/// Where a plan's stratum columns are, if it tracks them.
#[derive(Clone, Copy, Debug, Default)]
pub struct StratumColumns {
    pub cluster: Option<usize>,
    pub task: Option<usize>,
}

impl StratumColumns {
    pub fn any(&self) -> bool {
        self.cluster.is_some() || self.task.is_some()
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
    /// The columns the model comparison is stratified by, where the plan tracks them and
    /// crosses a response type or AI value with the model (whose cells decide what may be
    /// shown); none otherwise, and the three-way model counts are not kept.
    pub strata: StratumColumns,
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
        let by_model = tables.contains(&(RT, MODEL)) || tables.contains(&(AI, MODEL));
        let strata = StratumColumns {
            cluster: columns.iter().position(|c| c == "task_cluster"),
            task: columns.iter().position(|c| c == "task"),
        };
        Ok(Plan {
            strata: if by_model {
                strata
            } else {
                StratumColumns::default()
            },
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
