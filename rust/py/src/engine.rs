//! `valuescope._core.Engine`: the streaming engine, with Arrow in through the PyCapsule
//! interface and the GIL released while it works; also the engine's `normalize` and the
//! Bonferroni threshold its tests use.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3_arrow::input::AnyRecordBatch;
use valuescope_core::{schema, Engine, EngineConfig, Reject};

use crate::arrow::{check_arrow_data, table_to_py};
use crate::error::{config_error, py_err};
use crate::io::PyFeatureBatch;

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

/// An integer setting from 0 to `max`, or a ValueError that names it (pyo3's own conversion to
/// an unsigned type raises OverflowError without saying which argument was wrong).
fn int_option(name: &str, value: i128, max: u64) -> PyResult<u64> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| {
            config_error(format!(
                "invalid configuration: {name} must be an integer from 0 to {max}, got {value}"
            ))
        })
}

/// A rejected row as `update_tuples` returns it: (row, conversation_id, reason).
type RejectTuple = (u64, Option<String>, &'static str);

#[pyclass(module = "valuescope._core", name = "Engine")]
pub struct PyEngine {
    inner: Engine,
}

impl PyEngine {
    fn update_any(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Vec<Reject>> {
        let engine = &mut self.inner;
        if let Ok(fb) = data.cast::<PyFeatureBatch>() {
            // decoded by the Parquet reader, which checks offsets and UTF-8 as it decodes
            let batch = &fb.get().batch;
            return py.detach(move || engine.update(batch)).map_err(py_err);
        }
        let reader = data.extract::<AnyRecordBatch>()?.into_reader()?;
        py.detach(move || -> Result<Vec<Reject>, PyErr> {
            // The schema is checked even when the stream holds no batch (a zero-row table).
            engine
                .update(&RecordBatch::new_empty(reader.schema()))
                .map_err(py_err)?;
            let mut offset = 0u64;
            let mut all = Vec::new();
            for batch in reader {
                let batch = batch.map_err(py_err)?;
                check_arrow_data(&batch)?;
                let rows = batch.num_rows() as u64;
                for mut r in engine.update(&batch).map_err(py_err)? {
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
        let mut inner = Engine::new(config).map_err(py_err)?;
        if spill_dir.is_some() && memory_limit.is_none() {
            return Err(config_error("spill_dir needs memory_limit"));
        }
        if let Some(limit) = memory_limit {
            let limit = int_option("memory_limit", limit, usize::MAX as u64)? as usize;
            let dir = spill_dir.unwrap_or_else(std::env::temp_dir);
            inner.set_memory_limit(&dir, limit).map_err(py_err)?;
        }
        Ok(PyEngine { inner })
    }

    /// Streams every batch of `data` into the engine; returns the rejected rows as a
    /// pyarrow.Table (row, conversation_id, reason).
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rejects = self.update_any(py, data)?;
        table_to_py(py, rejects_table(rejects))
    }

    /// As `update`, with the rejected rows as a list of (row, conversation_id, reason) tuples:
    /// reading them needs no pyarrow.
    fn update_tuples(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<RejectTuple>> {
        let rejects = self.update_any(py, data)?;
        Ok(rejects
            .into_iter()
            .map(|r| (r.row, r.conversation_id, r.reason))
            .collect())
    }

    /// The old name of `update_tuples`, kept working.
    fn feed(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Vec<RejectTuple>> {
        self.update_tuples(py, data)
    }

    /// Folds another engine (same settings) into this one.
    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if slf.is(other) {
            // merging with itself: borrow rules need a copy of the counts first
            let copy = slf.borrow().inner.try_clone().map_err(py_err)?;
            let mut me = slf.borrow_mut();
            let engine = &mut me.inner;
            return py.detach(move || engine.merge(&copy)).map_err(py_err);
        }
        let theirs = other.borrow();
        let mut me = slf.borrow_mut();
        let (engine, theirs) = (&mut me.inner, &theirs.inner);
        py.detach(move || engine.merge(theirs)).map_err(py_err)
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let engine = &self.inner;
        let bytes = py.detach(move || engine.to_bytes()).map_err(py_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let owned = data.to_vec();
        let inner = py
            .detach(move || Engine::from_bytes(&owned))
            .map_err(py_err)?;
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
            .map_err(py_err)?;
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
    let refuse = || config_error("need 0 < alpha < 1 and n_tests >= 1");
    let n_tests = u64::try_from(n_tests).map_err(|_| refuse())?;
    valuescope_core::report::stats::bonferroni_threshold(alpha, n_tests).ok_or_else(refuse)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    m.add_function(wrap_pyfunction!(bonferroni_threshold, m)?)?;
    m.add(
        "STATE_FORMAT_VERSION",
        valuescope_core::engine::codec::FORMAT_VERSION,
    )?;
    Ok(())
}
