//! Files in and out of the engine: Parquet feature files decoded into the batches the engine
//! takes, and the CSV text of result tables.

pub mod csv;
#[cfg(feature = "parquet")]
pub mod parquet;
