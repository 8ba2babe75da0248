use thiserror::Error;

/// Every failure the engine can report. Messages name columns, never values: a value string may
/// be below the privacy thresholds and must not surface in an error.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    #[error("missing required column '{0}'")]
    MissingColumn(String),
    #[error("column '{column}' has type {found}, expected {expected}")]
    WrongType {
        column: String,
        expected: &'static str,
        found: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot merge engines with different settings: {0}")]
    Mismatch(String),
    #[error("invalid engine state bytes: {0}")]
    Corrupt(String),
    /// Spill files (the tables' overflow to disk) could not be written or read.
    #[error("spill to disk failed: {0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;
