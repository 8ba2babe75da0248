//! Feature files read in Rust: batches decoded ahead on a thread of their own and handed to
//! `Engine.update` without passing through pyarrow.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{Field, SchemaRef};
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use valuescope_core::io::parquet::{Batches, FeatureFile, ReadError};

use crate::error::ParquetReadError;

fn to_py(e: ReadError) -> PyErr {
    ParquetReadError::new_err(e.0)
}

/// One decoded batch. The engine takes it as it is; anything that reads Arrow's PyCapsule
/// interface (`pyarrow.record_batch(b)`) can read it too.
#[pyclass(module = "valuescope._core", name = "FeatureBatch", frozen)]
pub struct PyFeatureBatch {
    pub batch: RecordBatch,
}

#[pymethods]
impl PyFeatureBatch {
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// Rows offset.. (to the end, or `length` of them).
    #[pyo3(signature = (offset=0, length=None))]
    fn slice(&self, offset: usize, length: Option<usize>) -> PyFeatureBatch {
        let offset = offset.min(self.batch.num_rows());
        let length = length
            .unwrap_or(usize::MAX)
            .min(self.batch.num_rows() - offset);
        PyFeatureBatch {
            batch: self.batch.slice(offset, length),
        }
    }

    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyCapsule>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let schema = self.batch.schema();
        let field = Field::new_struct("", schema.fields().clone(), false)
            .with_metadata(schema.metadata().clone());
        let array: ArrayRef = Arc::new(StructArray::from(self.batch.clone()));
        Ok(pyo3_arrow::ffi::to_array_pycapsules(
            py,
            field.into(),
            &array,
            requested_schema,
        )?)
    }

    fn __repr__(&self) -> String {
        format!("FeatureBatch(rows={})", self.batch.num_rows())
    }
}

/// The batches of one Parquet feature file: `columns` it has (others are skipped), the string
/// columns named in `dictionary` (and their lists) decoded as dictionaries, the given row
/// groups only if `row_groups` is set.
#[pyclass(module = "valuescope._core", name = "ParquetReader")]
pub struct PyParquetReader {
    batches: Option<Batches>,
    schema: SchemaRef,
    num_rows: u64,
}

#[pymethods]
impl PyParquetReader {
    #[new]
    #[pyo3(signature = (path, columns, dictionary=Vec::new(), batch_size=65_536, row_groups=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        columns: Vec<String>,
        dictionary: Vec<String>,
        batch_size: usize,
        row_groups: Option<Vec<usize>>,
    ) -> PyResult<Self> {
        py.detach(move || {
            let file = FeatureFile::open(&path)?;
            let batches = file.batches(&columns, &dictionary, batch_size, row_groups)?;
            Ok(PyParquetReader {
                schema: batches.schema(),
                num_rows: batches.num_rows(),
                batches: Some(batches),
            })
        })
        .map_err(to_py)
    }

    /// Rows this reader will yield.
    #[getter]
    fn num_rows(&self) -> u64 {
        self.num_rows
    }

    /// A batch with no rows and the schema every batch has: enough to check the columns.
    fn empty(&self) -> PyFeatureBatch {
        PyFeatureBatch {
            batch: RecordBatch::new_empty(self.schema.clone()),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyFeatureBatch>> {
        let Some(batches) = self.batches.as_mut() else {
            return Ok(None);
        };
        match py.detach(|| batches.next()) {
            Some(Ok(batch)) => Ok(Some(PyFeatureBatch { batch })),
            Some(Err(e)) => {
                self.close();
                Err(to_py(e))
            }
            None => {
                self.close();
                Ok(None)
            }
        }
    }

    /// Stops decoding and frees what was decoded ahead.
    fn close(&mut self) {
        self.batches = None;
    }
}

/// Rows in each row group of a Parquet file (its footer only is read).
#[pyfunction]
pub fn parquet_row_groups(py: Python<'_>, path: PathBuf) -> PyResult<Vec<u64>> {
    py.detach(move || FeatureFile::open(&path).map(|f| f.row_groups()))
        .map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parquet_row_groups, m)?)?;
    m.add_class::<PyParquetReader>()?;
    m.add_class::<PyFeatureBatch>()?;
    Ok(())
}
