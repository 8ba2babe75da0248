//! Arrow across the boundary: tables out to pyarrow, and the check every table coming in gets.

use arrow_array::RecordBatch;
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3_arrow::PyTable;

use crate::error::data_error;

pub fn table_to_py<'py>(py: Python<'py>, batch: RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let schema = batch.schema();
    let table = PyTable::try_new(vec![batch], schema)?.into_pyobject(py)?;
    // Through the C stream, not pyarrow.table(): that probes for pandas and imports it.
    py.import(intern!(py, "pyarrow"))?
        .getattr(intern!(py, "RecordBatchReader"))?
        .call_method1(intern!(py, "from_stream"), (table,))?
        .call_method0(intern!(py, "read_all"))
}

/// arrow-rs imports C-interface arrays without checking them, and the engine reads strings
/// without re-checking them: offsets past the end of a buffer or bytes that are not UTF-8 (easy to
/// make with pyarrow's `Array.from_buffers`) would be read out of bounds. Every column is checked
/// in full before the engine sees it; the error names the column and a position, never a value.
pub fn check_arrow_data(batch: &RecordBatch) -> PyResult<()> {
    let schema = batch.schema();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        check_reachable(&column.to_data()).map_err(|e| {
            data_error(format!(
                "column '{}' holds malformed Arrow data: {e}",
                field.name()
            ))
        })?;
    }
    Ok(())
}

/// `validate_full` of what the engine can reach. A slice of a list column keeps the list's whole
/// child array (pyarrow's `to_batches` shares one child among all its batches), so checking the
/// child in full would check the whole column again for every small batch: the list's own
/// offsets are checked first, then only the child entries they point at.
fn check_reachable(data: &ArrayData) -> Result<(), ArrowError> {
    let range = |lo: usize, hi: usize| (lo, hi.saturating_sub(lo));
    let (start, len) = match data.data_type() {
        DataType::List(_) | DataType::LargeList(_) if data.is_empty() => {
            return data.validate_data();
        }
        DataType::List(_) => {
            data.validate_data()?;
            let offsets = data.buffer::<i32>(0);
            range(offsets[0] as usize, offsets[data.len()] as usize)
        }
        DataType::LargeList(_) => {
            data.validate_data()?;
            let offsets = data.buffer::<i64>(0);
            range(offsets[0] as usize, offsets[data.len()] as usize)
        }
        _ => return data.validate_full(),
    };
    check_reachable(&data.child_data()[0].slice(start, len))
}
