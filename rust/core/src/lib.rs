//! valuescope-core: the statistics engine of valuescope, as a plain Rust library.
//!
//! Extracted-feature rows arrive as Arrow record batches; the engine folds them into mergeable
//! accumulators (value counts, sparse contingency tables, exact distinct-user counts that saturate
//! at the privacy threshold) and, on request, computes the published figures of "Values in the
//! Wild": frequencies, chi-square with adjusted residuals, Bonferroni significance, context
//! invariance, response types, mirroring and cross-model comparison, with Clio-style suppression.
//!
//! Nothing here knows about Python; the bindings live in `rust/py`.
//!
//! A record's way through: `io::parquet` decodes a feature file into Arrow batches;
//! `engine::ingest` resolves each batch's strings to interned ids (`engine::normalize`) and counts
//! them into the `engine::state` (value counts, distinct users in `engine::users`, table cells
//! in `engine::cells`, overflowing to `engine::spill`); engines merge, and `engine::codec` saves
//! and loads the state; `report` turns the merged counts into the published tables (statistics
//! in `report::stats`), and `io::csv` writes them out. `kmeans` clusters embeddings for the
//! taxonomy (`static_embed` pools static token vectors into text embeddings for it) and `synth`
//! makes synthetic corpora (`task_text` writes their free-text tasks); `schema` holds the facts
//! all of them share.
//!
//! ## Layers
//!
//! Each module uses only modules on the lines below its own, never one on its own line or
//! above: so no module can take part in a use cycle. `tests/test_architecture_rust.py` reads
//! this list and every path the modules name, and fails on an upward one.
//!
//! ```text
//! synth io::csv io::parquet
//! task_text static_embed
//! report
//! report::within report::pairs
//! report::cooccurrence report::frequencies report::models
//! report::publish report::stats
//! engine::codec
//! engine
//! engine::ingest
//! engine::tables
//! engine::spill
//! engine::state
//! engine::strata
//! engine::plan engine::cells
//! engine::normalize engine::users
//! engine::mix
//! io
//! kmeans
//! kmeans::lloyd kmeans::minibatch
//! kmeans::init
//! kmeans::common
//! schema error
//! ```

pub mod engine;
pub mod error;
pub mod io;
pub mod kmeans;
pub mod report;
pub mod schema;
pub mod static_embed;
pub mod synth;
pub mod task_text;

pub use engine::{Engine, EngineConfig, Reject};
pub use error::EngineError;
pub use report::Analysis;

#[cfg(test)]
mod testing;
