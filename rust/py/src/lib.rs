//! Thin PyO3 bindings for valuescope-core: argument conversion, Arrow in and out through the
//! PyCapsule interface, the GIL released while the engine works. No statistics live here.

mod csv;
mod embed;
mod error;
mod kmeans;
mod read;
mod synth;

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType};
use error::SchemaError;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyTable;
use valuescope_core::{schema, Engine, EngineConfig, EngineError, Reject};

fn to_py(e: EngineError) -> PyErr {
    match e {
        EngineError::MissingColumn(_) | EngineError::WrongType { .. } => {
            SchemaError::new_err(e.to_string())
        }
        EngineError::Io(_) => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

fn table_to_py<'py>(py: Python<'py>, batch: RecordBatch) -> PyResult<Bound<'py, PyAny>> {
    let schema = batch.schema();
    let table = PyTable::try_new(vec![batch], schema)?.into_pyobject(py)?;
    // Through the C stream, not pyarrow.table(): that probes for pandas and imports it.
    py.import(intern!(py, "pyarrow"))?
        .getattr(intern!(py, "RecordBatchReader"))?
        .call_method1(intern!(py, "from_stream"), (table,))?
        .call_method0(intern!(py, "read_all"))
}

fn rejects_table(rejects: Vec<Reject>) -> RecordBatch {
    let rows: ArrayRef = Arc::new(Int64Array::from_iter_values(
        rejects.iter().map(|r| r.row as i64),
    ));
    let ids: ArrayRef = Arc::new(StringArray::from_iter(
        rejects.iter().map(|r| r.conversation_id.as_deref()),
    ));
    let reasons: ArrayRef = Arc::new(StringArray::from_iter_values(
        rejects.iter().map(|r| r.reason),
    ));
    RecordBatch::try_from_iter([("row", rows), ("conversation_id", ids), ("reason", reasons)])
        .expect("equal lengths")
}

/// arrow-rs imports C-interface arrays without checking them, and the engine reads strings
/// without re-checking them: offsets past the end of a buffer or bytes that are not UTF-8 (easy to
/// make with pyarrow's `Array.from_buffers`) would be read out of bounds. Every column is checked
/// in full before the engine sees it; the error names the column and a position, never a value.
fn check_arrow_data(batch: &RecordBatch) -> PyResult<()> {
    let schema = batch.schema();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        check_reachable(&column.to_data()).map_err(|e| {
            PyValueError::new_err(format!(
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

/// An integer setting from 0 to `max`, or a ValueError that names it (pyo3's own conversion to
/// an unsigned type raises OverflowError without saying which argument was wrong).
fn int_option(name: &str, value: i128, max: u64) -> PyResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "invalid configuration: {name} must be an integer from 0 to {max}, got {value}"
            ))
        })
}

#[pyclass(module = "valuescope._core", name = "Engine")]
struct PyEngine {
    inner: Engine,
}

impl PyEngine {
    fn update_any(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Vec<Reject>> {
        let engine = &mut self.inner;
        if let Ok(fb) = data.cast::<read::PyFeatureBatch>() {
            // decoded by the Parquet reader, which checks offsets and UTF-8 as it decodes
            let batch = &fb.get().batch;
            return py.detach(move || engine.update(batch)).map_err(to_py);
        }
        let reader = data.extract::<AnyRecordBatch>()?.into_reader()?;
        py.detach(move || -> Result<Vec<Reject>, PyErr> {
            // The schema is checked even when the stream holds no batch (a zero-row table).
            engine
                .update(&RecordBatch::new_empty(reader.schema()))
                .map_err(to_py)?;
            let mut offset = 0u64;
            let mut all = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|e| PyValueError::new_err(e.to_string()))?;
                check_arrow_data(&batch)?;
                let rows = batch.num_rows() as u64;
                for mut r in engine.update(&batch).map_err(to_py)? {
                    r.row += offset;
                    all.push(r);
                }
                offset += rows;
            }
            Ok(all)
        })
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (
        tables=None,
        min_conversations=schema::DEFAULT_MIN_CONVERSATIONS as i128,
        min_users=schema::DEFAULT_MIN_USERS as i128,
        alpha=schema::DEFAULT_ALPHA,
        n_tests=None,
        memory_limit=None, spill_dir=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        tables: Option<Vec<(String, String)>>,
        min_conversations: i128,
        min_users: i128,
        alpha: f64,
        n_tests: Option<i128>,
        memory_limit: Option<i128>,
        spill_dir: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let config = EngineConfig {
            tables,
            min_conversations: int_option("min_conversations", min_conversations, u64::MAX)?,
            min_users: int_option("min_users", min_users, u32::MAX.into())? as u32,
            alpha,
            n_tests: n_tests
                .map(|n| int_option("n_tests", n, u64::MAX))
                .transpose()?,
        };
        let mut inner = Engine::new(config).map_err(to_py)?;
        if spill_dir.is_some() && memory_limit.is_none() {
            return Err(PyValueError::new_err("spill_dir needs memory_limit"));
        }
        if let Some(limit) = memory_limit {
            let limit = int_option("memory_limit", limit, usize::MAX as u64)? as usize;
            let dir = spill_dir.unwrap_or_else(std::env::temp_dir);
            inner.set_memory_limit(&dir, limit).map_err(to_py)?;
        }
        Ok(PyEngine { inner })
    }

    /// Streams every batch of `data` into the engine; returns the rejected rows.
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rejects = self.update_any(py, data)?;
        table_to_py(py, rejects_table(rejects))
    }

    /// As `update`, with the rejected rows as (row, conversation_id, reason) tuples: reading
    /// them needs no pyarrow.
    #[allow(clippy::type_complexity)]
    fn feed(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(u64, Option<String>, &'static str)>> {
        let rejects = self.update_any(py, data)?;
        Ok(rejects
            .into_iter()
            .map(|r| (r.row, r.conversation_id, r.reason))
            .collect())
    }

    /// Folds another engine (same settings) into this one.
    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if slf.is(other) {
            // merging with itself: borrow rules need a copy of the counts first
            let copy = slf.borrow().inner.try_clone().map_err(to_py)?;
            let mut me = slf.borrow_mut();
            let engine = &mut me.inner;
            return py.detach(move || engine.merge(&copy)).map_err(to_py);
        }
        let theirs = other.borrow();
        let mut me = slf.borrow_mut();
        let (engine, theirs) = (&mut me.inner, &theirs.inner);
        py.detach(move || engine.merge(theirs)).map_err(to_py)
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let engine = &self.inner;
        let bytes = py.detach(move || engine.to_bytes()).map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let owned = data.to_vec();
        let inner = py
            .detach(move || Engine::from_bytes(&owned))
            .map_err(to_py)?;
        Ok(PyEngine { inner })
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let ctor = slf.get_type().getattr("from_bytes")?;
        let bytes = slf.borrow().to_bytes(py)?;
        PyTuple::new(py, [ctor.into_any(), PyTuple::new(py, [bytes])?.into_any()])
    }

    /// The published figures: {"summary": dict, name: pyarrow.Table, ...}.
    fn result<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let engine = &mut self.inner;
        let analysis = py
            .detach(move || {
                engine.spill_rest()?;
                engine.analysis()
            })
            .map_err(to_py)?;
        let out = PyDict::new(py);
        let json = py.import("json")?;
        out.set_item(
            "summary",
            json.call_method1("loads", (analysis.summary.to_string(),))?,
        )?;
        for (name, batch) in analysis.tables {
            out.set_item(name, table_to_py(py, batch)?)?;
        }
        Ok(out)
    }

    #[getter]
    fn min_conversations(&self) -> u64 {
        self.inner.config().min_conversations
    }

    #[getter]
    fn min_users(&self) -> u32 {
        self.inner.config().min_users
    }

    #[getter]
    fn alpha(&self) -> f64 {
        self.inner.config().alpha
    }

    #[getter]
    fn n_tests(&self) -> Option<u64> {
        self.inner.config().n_tests
    }

    /// The column pairs crossed, as given (None: the design's defaults).
    #[getter]
    fn tables(&self) -> Option<Vec<(String, String)>> {
        self.inner.config().tables.clone()
    }

    /// Rows seen so far, analysed or not.
    #[getter]
    fn n_rows(&self) -> u64 {
        self.inner.n_rows()
    }

    /// (bytes written to spill files, times the tables were spilled); (0, 0) without a limit.
    #[getter]
    fn spilled(&self) -> (u64, u64) {
        self.inner.spilled()
    }

    /// Estimated bytes the co-occurrence tables hold in memory now.
    #[getter]
    fn table_bytes(&self) -> usize {
        self.inner.table_bytes()
    }

    fn __repr__(&self) -> String {
        let c = self.inner.config();
        format!(
            "Engine(min_conversations={}, min_users={}, alpha={}, rows={})",
            c.min_conversations,
            c.min_users,
            c.alpha,
            self.inner.n_rows()
        )
    }
}

/// NFKC, lower case, trimmed, inner white space collapsed: how the engine keys values.
#[pyfunction]
fn normalize(value: &str) -> String {
    valuescope_core::engine::normalize::normalize(value)
}

/// Two-sided Bonferroni threshold Phi^-1(1 - alpha / (2 m)).
#[pyfunction]
fn bonferroni_threshold(alpha: f64, n_tests: i128) -> PyResult<f64> {
    let refuse = || PyValueError::new_err("need 0 < alpha < 1 and n_tests >= 1");
    let n_tests = u64::try_from(n_tests).map_err(|_| refuse())?;
    valuescope_core::report::stats::bonferroni_threshold(alpha, n_tests).ok_or_else(refuse)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<kmeans::PyMiniBatchKMeans>()?;
    m.add_class::<kmeans::PyKMeans>()?;
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    m.add_function(wrap_pyfunction!(synth::synth_batches, m)?)?;
    m.add_function(wrap_pyfunction!(embed::static_embed, m)?)?;
    m.add_function(wrap_pyfunction!(embed::wordpiece_ids, m)?)?;
    m.add_function(wrap_pyfunction!(bonferroni_threshold, m)?)?;
    m.add_function(wrap_pyfunction!(csv::csv_bytes, m)?)?;
    read::register(m)?;
    error::register(m)?;
    m.add(
        "STATE_FORMAT_VERSION",
        valuescope_core::engine::codec::FORMAT_VERSION,
    )?;
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
