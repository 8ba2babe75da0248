//! CSV text of an Arrow table, for the output files (the writer lives in the core).

use arrow_array::RecordBatch;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_arrow::input::AnyRecordBatch;

use crate::{check_arrow_data, to_py};

/// The table as CSV bytes: a header line (unless `header` is false), then one line per row
/// (`columns` picks and orders).
#[pyfunction]
#[pyo3(signature = (data, columns=None, header=true))]
pub fn csv_bytes<'py>(
    py: Python<'py>,
    data: AnyRecordBatch,
    columns: Option<Vec<String>>,
    header: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let reader = data.into_reader()?;
    let out = py.detach(move || -> PyResult<Vec<u8>> {
        let cols = columns.as_deref();
        let mut out = Vec::new();
        // the header comes from the schema, so that a table without rows still has one
        valuescope_core::io::csv::write_csv(
            &RecordBatch::new_empty(reader.schema()),
            cols,
            header,
            &mut out,
        )
        .map_err(to_py)?;
        for batch in reader {
            let batch = batch.map_err(|e| PyValueError::new_err(e.to_string()))?;
            check_arrow_data(&batch)?;
            valuescope_core::io::csv::write_csv(&batch, cols, false, &mut out).map_err(to_py)?;
        }
        Ok(out)
    })?;
    Ok(PyBytes::new(py, &out))
}
