//! The exceptions the native module raises, under one base a library user can catch.
//!
//! `ValuescopeError` is the root; `SchemaError` is also a `ValueError` and `ParquetReadError`
//! also an `OSError`, as they always were, so both kinds of `except` keep working. PyO3's
//! `create_exception!` takes a single base, so the two are built with `type()` when the module
//! loads and raised through `import_exception!`, which looks them up on the module.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    valuescope._core,
    ValuescopeError,
    PyException,
    "The base of every error valuescope raises."
);

pyo3::import_exception!(valuescope._core, SchemaError);
pyo3::import_exception!(valuescope._core, ParquetReadError);

fn subclass<'py>(
    py: Python<'py>,
    name: &str,
    other: Bound<'py, PyType>,
    doc: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let bases = PyTuple::new(py, [py.get_type::<ValuescopeError>(), other])?;
    let ns = PyDict::new(py);
    ns.set_item("__module__", "valuescope._core")?;
    ns.set_item("__doc__", doc)?;
    py.get_type::<PyType>().call1((name, bases, ns))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ValuescopeError", py.get_type::<ValuescopeError>())?;
    m.add(
        "SchemaError",
        subclass(
            py,
            "SchemaError",
            py.get_type::<PyValueError>(),
            "The input does not follow the feature schema (a missing or wrongly typed column).",
        )?,
    )?;
    m.add(
        "ParquetReadError",
        subclass(
            py,
            "ParquetReadError",
            py.get_type::<PyOSError>(),
            "A Parquet file this reader cannot open or decode (pyarrow may still read it).",
        )?,
    )?;
    Ok(())
}
