//! Binding of the static embedder's pooling: token table, weights and token ids as numpy arrays
//! in, one unit-length float32 row per text out; the GIL is released while it pools.

use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use valuescope_core::static_embed::WordPiece;

/// Weighted mean of token vectors per text, L2-normalised: text i is
/// `ids[offsets[i]:offsets[i + 1]]`.
#[pyfunction]
pub fn static_embed<'py>(
    py: Python<'py>,
    table: PyReadonlyArray2<'py, f32>,
    weights: PyReadonlyArray1<'py, f32>,
    ids: PyReadonlyArray1<'py, u32>,
    offsets: PyReadonlyArray1<'py, i64>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let dim = table.shape()[1];
    let table = table.as_slice()?;
    let weights = weights.as_slice()?;
    let ids = ids.as_slice()?;
    let offsets: Vec<usize> = offsets
        .as_slice()?
        .iter()
        .map(|&o| usize::try_from(o).map_err(|_| PyValueError::new_err("negative offset")))
        .collect::<PyResult<_>>()?;
    let n = offsets.len().saturating_sub(1);
    let out = py
        .detach(|| valuescope_core::static_embed::pool(table, dim, weights, ids, &offsets))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    PyArray1::from_vec(py, out).reshape([n, dim])
}

/// Token ids of many texts, concatenated, and each text's offsets into them.
type IdsAndOffsets<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<i64>>);

/// BERT uncased WordPiece ids of ASCII texts (see `valuescope_core::static_embed::WordPiece`):
/// the ids concatenated and each text's offsets. `vocab` lists the tokens in id order.
#[pyfunction]
pub fn wordpiece_ids<'py>(
    py: Python<'py>,
    vocab: Vec<String>,
    texts: Vec<String>,
) -> PyResult<IdsAndOffsets<'py>> {
    if let Some(at) = texts.iter().position(|t| !t.is_ascii()) {
        return Err(PyValueError::new_err(format!(
            "text {at} is not ASCII: tokenise it with the tokenizers library"
        )));
    }
    let (ids, offsets) = py
        .detach(|| {
            let wp = WordPiece::new(&vocab).ok_or("the vocabulary has no [UNK] token")?;
            Ok::<_, &str>(wp.encode_many(&texts))
        })
        .map_err(PyValueError::new_err)?;
    let offsets: Vec<i64> = offsets.into_iter().map(|o| o as i64).collect();
    Ok((PyArray1::from_vec(py, ids), PyArray1::from_vec(py, offsets)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(static_embed, m)?)?;
    m.add_function(wrap_pyfunction!(wordpiece_ids, m)?)?;
    Ok(())
}
