//! Binding of the synthetic corpus generator: a spec (JSON, built by valuescope.synth) in, a
//! pyarrow RecordBatchReader out. Batches are made on a background Rust thread, so pulling them
//! from Python (pyarrow releases the GIL while it waits) overlaps generation with writing.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatchReader;
use valuescope_core::synth::Synth;

use crate::error::{config_error, py_err};

/// Streams rows [0, n) of the synthetic corpus described by `spec_json` as a
/// pyarrow.RecordBatchReader of `batch_size`-row batches (plain or dictionary-encoded strings).
#[pyfunction]
#[pyo3(signature = (spec_json, n, seed, batch_size=131_072, dictionary=true))]
pub fn synth_batches<'py>(
    py: Python<'py>,
    spec_json: &str,
    n: u64,
    seed: u64,
    batch_size: usize,
    dictionary: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if batch_size == 0 {
        return Err(config_error("batch_size must be at least 1"));
    }
    let json = spec_json.to_owned();
    let synth = py.detach(move || Synth::from_json(&json)).map_err(py_err)?;
    let stream = Arc::new(synth).stream(seed, n, batch_size, dictionary);
    PyRecordBatchReader::new(Box::new(stream)).into_pyarrow(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(synth_batches, m)?)
}
