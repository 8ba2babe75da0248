//! valuescope-core: the statistics engine of valuescope, as a plain Rust library.
//!
//! Extracted-feature rows arrive as Arrow record batches; the engine folds them into mergeable
//! accumulators (value counts, sparse contingency tables, exact distinct-user counts that saturate
//! at the privacy threshold) and, on request, computes the published figures of "Values in the
//! Wild": frequencies, chi-square with adjusted residuals, Bonferroni significance, context
//! invariance, response types, mirroring and cross-model comparison, with Clio-style suppression.
//!
//! Nothing here knows about Python; the bindings live in `rust/py`.

pub mod cells;
pub mod codec;
pub mod csv;
pub mod engine;
pub mod error;
pub mod ingest;
pub mod kmeans;
pub mod normalize;
#[cfg(feature = "parquet")]
pub mod read;
pub mod report;
pub mod schema;
pub mod spill;
pub mod state;
pub mod static_embed;
pub mod stats;
pub mod synth;
pub mod task_text;
pub mod users;

pub use engine::{Engine, EngineConfig, Reject};
pub use error::EngineError;
pub use report::Analysis;
