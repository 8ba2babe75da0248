//! Thin PyO3 bindings for valuescope-core, building the private module `valuescope._core`:
//! argument conversion, Arrow in and out through the PyCapsule interface, the GIL released while
//! the core works. No statistics live here. This file only registers what the modules define:
//! `engine` (Engine, normalize), `kmeans`, `io` (Parquet reader, CSV), `synth`, `embed` (the static embedder's pooling and WordPiece), and `error`
//! (the exceptions and the one mapping of core errors to them); `arrow` is shared plumbing.

mod arrow;
mod embed;
mod engine;
mod error;
mod io;
mod kmeans;
mod synth;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use valuescope_core::schema;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    error::register(m)?;
    engine::register(m)?;
    kmeans::register(m)?;
    io::register(m)?;
    synth::register(m)?;
    embed::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    add_schema(m)
}

/// The shared facts of `valuescope_core::schema`, so that Python defines none of them again.
fn add_schema(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let columns: Vec<(&str, &str, bool)> = schema::FEATURE_COLUMNS
        .iter()
        .map(|c| (c.name, c.kind.arrow_name(), c.required))
        .collect();
    m.add("FEATURE_COLUMNS", PyTuple::new(m.py(), columns)?)?;
    m.add(
        "RESPONSE_TYPES",
        PyTuple::new(m.py(), schema::RESPONSE_TYPES)?,
    )?;
    m.add(
        "DEFAULT_MIN_CONVERSATIONS",
        schema::DEFAULT_MIN_CONVERSATIONS,
    )?;
    m.add("DEFAULT_MIN_USERS", schema::DEFAULT_MIN_USERS)?;
    m.add("DEFAULT_ALPHA", schema::DEFAULT_ALPHA)?;
    Ok(())
}
