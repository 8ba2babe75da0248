//! The exceptions the native module raises, and the one mapping from every error of the core
//! to them. A library user catches `ValuescopeError` for all of them.
//!
//! Each is also the builtin error it always was, so `except ValueError` / `except OSError`
//! keep working: PyO3's `create_exception!` takes a single base, so the classes with two bases
//! are built with `type()` when the module loads and raised through `import_exception!`, which
//! looks them up on the module.
//!
//! | core error                                  | Python                                 |
//! |---------------------------------------------|----------------------------------------|
//! | `EngineError::MissingColumn`, `WrongType`   | `SchemaError` (ValueError)             |
//! | `EngineError::Config`, `Mismatch`, `SynthError` | `ConfigError` (ValueError)         |
//! | `EngineError::Corrupt`                      | `StateError` (ValueError)              |
//! | `EngineError::Io`                           | `SpillError` (OSError)                 |
//! | `ReadError` (the Parquet reader)            | `ParquetReadError` (OSError)           |
//! | `KMeansError`                               | `KMeansError` (ValueError)             |
//! | `ArrowError`, malformed Arrow data          | `DataError` (ValueError)               |

use arrow_schema::ArrowError;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use valuescope_core::io::parquet::ReadError;
use valuescope_core::EngineError;

create_exception!(
    valuescope._core,
    ValuescopeError,
    PyException,
    "The base of every error valuescope raises."
);

pyo3::import_exception!(valuescope._core, SchemaError);
pyo3::import_exception!(valuescope._core, ConfigError);
pyo3::import_exception!(valuescope._core, StateError);
pyo3::import_exception!(valuescope._core, SpillError);
pyo3::import_exception!(valuescope._core, ParquetReadError);
pyo3::import_exception!(valuescope._core, KMeansError);
pyo3::import_exception!(valuescope._core, DataError);

/// The Python exception of a core error. (`From` cannot be implemented here: both types are
/// foreign to this crate.)
pub trait IntoPyErr {
    fn into_py_err(self) -> PyErr;
}

/// For `map_err`: `.map_err(py_err)`.
pub fn py_err(e: impl IntoPyErr) -> PyErr {
    e.into_py_err()
}

impl IntoPyErr for EngineError {
    fn into_py_err(self) -> PyErr {
        let msg = self.to_string();
        match self {
            EngineError::MissingColumn(_) | EngineError::WrongType { .. } => {
                SchemaError::new_err(msg)
            }
            EngineError::Config(_) | EngineError::Mismatch(_) => ConfigError::new_err(msg),
            EngineError::Corrupt(_) => StateError::new_err(msg),
            EngineError::Io(_) => SpillError::new_err(msg),
        }
    }
}

impl IntoPyErr for ReadError {
    fn into_py_err(self) -> PyErr {
        ParquetReadError::new_err(self.0)
    }
}

impl IntoPyErr for valuescope_core::kmeans::KMeansError {
    fn into_py_err(self) -> PyErr {
        KMeansError::new_err(self.to_string())
    }
}

impl IntoPyErr for valuescope_core::synth::SynthError {
    fn into_py_err(self) -> PyErr {
        ConfigError::new_err(self.to_string())
    }
}

impl IntoPyErr for ArrowError {
    fn into_py_err(self) -> PyErr {
        DataError::new_err(self.to_string())
    }
}

/// A `DataError` with this message (bad input that is neither a schema nor a setting problem).
pub fn data_error(msg: impl Into<String>) -> PyErr {
    DataError::new_err(msg.into())
}

/// A `ConfigError` with this message (a setting out of range, refused before the core sees it).
pub fn config_error(msg: impl Into<String>) -> PyErr {
    ConfigError::new_err(msg.into())
}

/// A `KMeansError` with this message (a parameter refused before the core sees it).
pub fn kmeans_error(msg: impl Into<String>) -> PyErr {
    KMeansError::new_err(msg.into())
}

/// The classes, each a `ValuescopeError` and the builtin it always was: (name, base, doc).
const CLASSES: [(&str, Base, &str); 7] = [
    (
        "SchemaError",
        Base::Value,
        "The input does not follow the feature schema (a missing or wrongly typed column).",
    ),
    (
        "ConfigError",
        Base::Value,
        "A setting is out of range, or two engines with different settings were merged.",
    ),
    (
        "StateError",
        Base::Value,
        "Saved engine state that cannot be read (damaged, truncated, or another format).",
    ),
    (
        "SpillError",
        Base::OS,
        "The engine could not write or read its spill files (the tables' overflow to disk).",
    ),
    (
        "ParquetReadError",
        Base::OS,
        "A Parquet file this reader cannot open or decode (pyarrow may still read it).",
    ),
    (
        "KMeansError",
        Base::Value,
        "k-means refused its parameters or data, or was used before it was fitted.",
    ),
    (
        "DataError",
        Base::Value,
        "Arrow data that cannot be read: malformed buffers, or a stream that failed.",
    ),
];

#[derive(Clone, Copy)]
enum Base {
    Value,
    OS,
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let root = py.get_type::<ValuescopeError>();
    m.add("ValuescopeError", &root)?;
    for (name, base, doc) in CLASSES {
        let other = match base {
            Base::Value => py.get_type::<PyValueError>(),
            Base::OS => py.get_type::<PyOSError>(),
        };
        let ns = PyDict::new(py);
        ns.set_item("__module__", "valuescope._core")?;
        ns.set_item("__doc__", doc)?;
        let bases = PyTuple::new(py, [root.clone(), other])?;
        m.add(name, py.get_type::<PyType>().call1((name, bases, ns))?)?;
    }
    Ok(())
}
