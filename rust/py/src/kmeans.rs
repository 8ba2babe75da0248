//! `valuescope._core.MiniBatchKMeans`: scikit-learn's face over the Rust mini-batch k-means.
//!
//! C-contiguous float32 / float64 arrays are read in place (anything else is converted once, as
//! scikit-learn's own validation would); the GIL is released while the model works.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyDict, PyString};
use valuescope_core::kmeans::{
    Float, Init, KMeans, KMeansConfig, KMeansError, KMeansState, LloydConfig, LloydState,
    MiniBatchKMeans,
};

fn to_py(e: KMeansError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A fitted model of either float width (the training data's dtype decides).
enum Fit<A, B> {
    F32(A),
    F64(B),
}
type Model = Fit<MiniBatchKMeans<f32>, MiniBatchKMeans<f64>>;
type FullModel = Fit<KMeans<f32>, KMeans<f64>>;

/// `predict` of either k-means kind.
trait Predict<T> {
    fn nearest(&self, x: &[T], d: usize, w: Option<&[f64]>)
        -> Result<(Vec<u32>, f64), KMeansError>;
}

impl<T: Float> Predict<T> for MiniBatchKMeans<T> {
    fn nearest(
        &self,
        x: &[T],
        d: usize,
        w: Option<&[f64]>,
    ) -> Result<(Vec<u32>, f64), KMeansError> {
        self.predict(x, d, w)
    }
}

impl<T: Float> Predict<T> for KMeans<T> {
    fn nearest(
        &self,
        x: &[T],
        d: usize,
        w: Option<&[f64]>,
    ) -> Result<(Vec<u32>, f64), KMeansError> {
        self.predict(x, d, w)
    }
}

impl<A: Predict<f32> + Sync, B: Predict<f64> + Sync> Fit<A, B> {
    fn dtype(&self) -> Dtype {
        match self {
            Fit::F32(_) => Dtype::F32,
            Fit::F64(_) => Dtype::F64,
        }
    }

    /// Labels and weighted inertia of X (converted to the model's dtype), GIL released.
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Vec<u32>, f64)> {
        let m = matrix(x, Some(self.dtype()))?;
        let (n, d) = m.dims();
        let w = weights(sample_weight, n)?;
        let w = opt_slice(&w)?;
        let r = match (&m, self) {
            (Matrix::F32(a), Fit::F32(k)) => {
                let xs = slice(a)?;
                py.detach(|| k.nearest(xs, d, w))
            }
            (Matrix::F64(a), Fit::F64(k)) => {
                let xs = slice(a)?;
                py.detach(|| k.nearest(xs, d, w))
            }
            _ => unreachable!("X was converted to the model's dtype"),
        };
        r.map_err(to_py)
    }
}

/// What scikit-learn's `set_params` needs of an estimator; `set_all` applies all or nothing.
trait Params {
    type Config: Clone;
    fn config_mut(&mut self) -> &mut Self::Config;
    fn set_param(&mut self, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()>;
    fn check(&self) -> PyResult<()>;
}

fn set_all<T: Params>(me: &mut T, params: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let saved = me.config_mut().clone();
    let mut apply = || -> PyResult<()> {
        for (k, v) in params.into_iter().flat_map(|p| p.iter()) {
            me.set_param(&k.extract::<String>()?, &v)?;
        }
        me.check()
    };
    let r = apply();
    if r.is_err() {
        *me.config_mut() = saved;
    }
    r
}

#[derive(Clone, Copy, PartialEq)]
enum Dtype {
    F32,
    F64,
}

/// A 2-D C-contiguous float array borrowed from Python.
enum Matrix<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

impl Matrix<'_> {
    fn dims(&self) -> (usize, usize) {
        let s = match self {
            Matrix::F32(a) => a.shape(),
            Matrix::F64(a) => a.shape(),
        };
        (s[0], s[1])
    }
}

/// X as a C-contiguous 2-D array of `want` (or of its own dtype when that is float32/float64),
/// without a copy whenever it already is one.
fn matrix<'py>(x: &Bound<'py, PyAny>, want: Option<Dtype>) -> PyResult<Matrix<'py>> {
    if want != Some(Dtype::F64) {
        if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f32>>() {
            if a.is_c_contiguous() {
                return Ok(Matrix::F32(a));
            }
        }
    }
    if want != Some(Dtype::F32) {
        if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f64>>() {
            if a.is_c_contiguous() {
                return Ok(Matrix::F64(a));
            }
        }
    }
    let py = x.py();
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (x,))?;
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    if ndim != 2 {
        return Err(PyValueError::new_err(format!(
            "Expected a 2-D array (n_samples, n_features), got {ndim}-D; \
             reshape with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )));
    }
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "f" | "i" | "u" | "b") {
        return Err(PyTypeError::new_err(format!(
            "X must hold real numbers, got dtype {}",
            arr.getattr("dtype")?.str()?
        )));
    }
    let own_f32 = arr.getattr("dtype")?.eq(np.getattr("float32")?)?;
    let dtype = match want {
        Some(d) => d,
        None if own_f32 => Dtype::F32,
        None => Dtype::F64,
    };
    let name = if dtype == Dtype::F32 {
        "float32"
    } else {
        "float64"
    };
    let arr = np.call_method(
        "ascontiguousarray",
        (arr,),
        Some(&[("dtype", name)].into_py_dict(py)?),
    )?;
    Ok(match dtype {
        Dtype::F32 => Matrix::F32(arr.extract()?),
        Dtype::F64 => Matrix::F64(arr.extract()?),
    })
}

/// sample_weight as float64, one per row (a scalar is broadcast), or None.
fn weights<'py>(
    w: Option<&Bound<'py, PyAny>>,
    n: usize,
) -> PyResult<Option<PyReadonlyArray1<'py, f64>>> {
    let Some(w) = w else { return Ok(None) };
    if w.is_none() {
        return Ok(None);
    }
    let py = w.py();
    let np = py.import("numpy")?;
    let mut arr = np.call_method(
        "ascontiguousarray",
        (w,),
        Some(&[("dtype", "float64")].into_py_dict(py)?),
    )?;
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    if ndim == 0 {
        arr = np.call_method1("full", (n, arr))?;
    } else if ndim != 1 {
        return Err(PyValueError::new_err(format!(
            "sample_weight must be 1-D (one weight per row), got {ndim}-D"
        )));
    }
    Ok(Some(arr.extract()?))
}

/// The elements of a C-contiguous array, in place.
fn slice<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn opt_slice<'a, T: numpy::Element>(
    a: &'a Option<PyReadonlyArray1<'_, T>>,
) -> PyResult<Option<&'a [T]>> {
    a.as_ref().map(slice).transpose()
}

fn state_dict<'py, T: numpy::Element + Copy + for<'a> IntoPyObject<'py>>(
    py: Python<'py>,
    s: KMeansState<T>,
    dtype: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("dtype", dtype)?;
    d.set_item("n_features", s.n_features)?;
    d.set_item("centers", s.centers)?;
    d.set_item("counts", s.counts)?;
    d.set_item("rng_seed", pyo3::types::PyBytes::new(py, &s.rng_seed))?;
    d.set_item("rng_stream", s.rng_stream)?;
    d.set_item("rng_word_pos", s.rng_word_pos)?;
    d.set_item("ewa_inertia", s.ewa_inertia)?;
    d.set_item("ewa_inertia_min", s.ewa_inertia_min)?;
    d.set_item("no_improvement", s.no_improvement)?;
    d.set_item("since_reassign", s.since_reassign)?;
    d.set_item("batch_size", s.batch_size)?;
    d.set_item("n_steps", s.n_steps)?;
    d.set_item("n_iter", s.n_iter)?;
    d.set_item("labels", s.labels)?;
    d.set_item("inertia", s.inertia)?;
    Ok(d)
}

/// `init`: "k-means++", "random" or an (n_clusters, n_features) array.
fn parse_init(init: &Bound<'_, PyAny>, n_clusters: usize) -> PyResult<Init> {
    if let Ok(s) = init.cast::<PyString>() {
        return match s.to_str()? {
            "k-means++" => Ok(Init::KMeansPlusPlus),
            "random" => Ok(Init::Random),
            other => Err(PyValueError::new_err(format!(
                "init must be 'k-means++', 'random' or an array of shape \
                 (n_clusters, n_features), got {other:?}"
            ))),
        };
    }
    let m = matrix(init, Some(Dtype::F64))?;
    let (k, _) = m.dims();
    if k != n_clusters {
        return Err(PyValueError::new_err(format!(
            "init has {k} rows, but n_clusters is {n_clusters}"
        )));
    }
    let Matrix::F64(a) = m else { unreachable!() };
    Ok(Init::Given(
        a.as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .to_vec(),
    ))
}

/// `n_init`: "auto" (None) or an int >= 1.
fn parse_n_init(n_init: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    if let Ok(s) = n_init.cast::<PyString>() {
        if s.to_str()? == "auto" {
            return Ok(None);
        }
    }
    let n: usize = n_init
        .extract()
        .map_err(|_| PyValueError::new_err("n_init must be 'auto' or an int >= 1"))?;
    Ok(Some(n))
}

fn init_obj<'py>(py: Python<'py>, init: &Init, k: usize) -> PyResult<Bound<'py, PyAny>> {
    Ok(match init {
        Init::KMeansPlusPlus => PyString::new(py, "k-means++").into_any(),
        Init::Random => PyString::new(py, "random").into_any(),
        Init::Given(c) => PyArray1::from_slice(py, c)
            .reshape([k, c.len() / k])?
            .into_any(),
    })
}

fn n_init_obj<'py>(py: Python<'py>, n_init: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match n_init {
        None => PyString::new(py, "auto").into_any(),
        Some(n) => n.into_pyobject(py)?.into_any(),
    })
}

#[pyclass(module = "valuescope._core", name = "MiniBatchKMeans")]
pub struct PyMiniBatchKMeans {
    config: KMeansConfig,
    model: Option<Model>,
    labels: Option<Py<PyArray1<i32>>>,
}

impl Params for PyMiniBatchKMeans {
    type Config = KMeansConfig;
    fn config_mut(&mut self) -> &mut KMeansConfig {
        &mut self.config
    }
    fn set_param(&mut self, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_one(key, v)
    }
    fn check(&self) -> PyResult<()> {
        self.config.validate().map_err(to_py)
    }
}

impl PyMiniBatchKMeans {
    fn set_init(&mut self, init: &Bound<'_, PyAny>) -> PyResult<()> {
        self.config.init = parse_init(init, self.config.n_clusters)?;
        Ok(())
    }

    fn set_n_init(&mut self, n_init: &Bound<'_, PyAny>) -> PyResult<()> {
        self.config.n_init = parse_n_init(n_init)?;
        Ok(())
    }

    fn set_one(&mut self, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = &mut self.config;
        match key {
            "n_clusters" => c.n_clusters = whole(key, v.extract()?)?,
            "init" => return self.set_init(v),
            "max_iter" => c.max_iter = whole(key, v.extract()?)?,
            "batch_size" => c.batch_size = whole(key, v.extract()?)?,
            "compute_labels" => c.compute_labels = v.extract()?,
            "random_state" => c.random_state = whole_opt(key, v.extract()?)?,
            "tol" => c.tol = v.extract()?,
            "max_no_improvement" => c.max_no_improvement = whole_opt(key, v.extract()?)?,
            "init_size" => c.init_size = whole_opt(key, v.extract()?)?,
            "n_init" => return self.set_n_init(v),
            "reassignment_ratio" => c.reassignment_ratio = v.extract()?,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid parameter {key:?} for MiniBatchKMeans"
                )))
            }
        }
        Ok(())
    }

    fn model(&self) -> PyResult<&Model> {
        self.model
            .as_ref()
            .ok_or_else(|| to_py(KMeansError::NotFitted))
    }

    fn fitted_attr(&self, name: &str) -> PyResult<&Model> {
        self.model.as_ref().ok_or_else(|| {
            PyAttributeError::new_err(format!(
                "MiniBatchKMeans has no attribute {name:?} before fit or partial_fit"
            ))
        })
    }

    /// Runs fit or partial_fit with the GIL released, then caches the labels as numpy.
    fn train(
        slf: &Bound<'_, Self>,
        x: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
        partial: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        let mut me = slf.borrow_mut();
        let want = match (&me.model, partial) {
            (Some(Model::F32(_)), true) => Some(Dtype::F32),
            (Some(Model::F64(_)), true) => Some(Dtype::F64),
            _ => None,
        };
        let m = matrix(x, want)?;
        let (n, d) = m.dims();
        let w = weights(sample_weight, n)?;
        let w = opt_slice(&w)?;
        let config = me.config.clone();
        if !partial || me.model.is_none() {
            config.validate().map_err(to_py)?;
            me.model = Some(match m {
                Matrix::F32(_) => Model::F32(MiniBatchKMeans::new(config).map_err(to_py)?),
                Matrix::F64(_) => Model::F64(MiniBatchKMeans::new(config).map_err(to_py)?),
            });
        }
        let model = me.model.as_mut().expect("set above");
        let result = match (&m, model) {
            (Matrix::F32(a), Model::F32(k)) => {
                let xs = slice(a)?;
                py.detach(|| {
                    if partial {
                        k.partial_fit(xs, d, w)
                    } else {
                        k.fit(xs, d, w)
                    }
                })
            }
            (Matrix::F64(a), Model::F64(k)) => {
                let xs = slice(a)?;
                py.detach(|| {
                    if partial {
                        k.partial_fit(xs, d, w)
                    } else {
                        k.fit(xs, d, w)
                    }
                })
            }
            _ => unreachable!("X was converted to the model's dtype"),
        };
        if let Err(e) = result {
            if !partial {
                me.model = None;
                me.labels = None;
            }
            return Err(to_py(e));
        }
        let labels = match me.model.as_ref().expect("fitted") {
            Model::F32(k) => k.labels().to_vec(),
            Model::F64(k) => k.labels().to_vec(),
        };
        me.labels = if me.config.compute_labels {
            let v: Vec<i32> = labels.into_iter().map(|l| l as i32).collect();
            Some(PyArray1::from_vec(py, v).unbind())
        } else {
            None
        };
        Ok(())
    }

    fn predict_inner<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Vec<u32>, f64)> {
        self.model()?.predict(py, x, sample_weight)
    }
}

/// An integer parameter in range, or a ValueError naming it as scikit-learn's parameter checks
/// do (pyo3's conversion to an unsigned type raises OverflowError without the name).
fn whole<T: TryFrom<i128>>(name: &str, value: i128) -> PyResult<T> {
    T::try_from(value).map_err(|_| {
        PyValueError::new_err(format!(
            "invalid parameter: {name} must be a non-negative integer in range, got {value}"
        ))
    })
}

fn whole_opt<T: TryFrom<i128>>(name: &str, value: Option<i128>) -> PyResult<Option<T>> {
    value.map(|v| whole(name, v)).transpose()
}

#[pymethods]
impl PyMiniBatchKMeans {
    #[new]
    #[pyo3(
        signature = (n_clusters=8, *, init=None, max_iter=100, batch_size=1024, compute_labels=true,
                     random_state=None, tol=0.0, max_no_improvement=Some(10), init_size=None,
                     n_init=None, reassignment_ratio=0.01),
        text_signature = "(n_clusters=8, *, init='k-means++', max_iter=100, batch_size=1024, \
                          compute_labels=True, random_state=None, tol=0.0, max_no_improvement=10, \
                          init_size=None, n_init='auto', reassignment_ratio=0.01)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        n_clusters: i128,
        init: Option<&Bound<'_, PyAny>>,
        max_iter: i128,
        batch_size: i128,
        compute_labels: bool,
        random_state: Option<i128>,
        tol: f64,
        max_no_improvement: Option<i128>,
        init_size: Option<i128>,
        n_init: Option<&Bound<'_, PyAny>>,
        reassignment_ratio: f64,
    ) -> PyResult<Self> {
        let mut me = PyMiniBatchKMeans {
            config: KMeansConfig {
                n_clusters: whole("n_clusters", n_clusters)?,
                batch_size: whole("batch_size", batch_size)?,
                max_iter: whole("max_iter", max_iter)?,
                n_init: None,
                init: Init::KMeansPlusPlus,
                init_size: whole_opt("init_size", init_size)?,
                random_state: whole_opt("random_state", random_state)?,
                reassignment_ratio,
                max_no_improvement: whole_opt("max_no_improvement", max_no_improvement)?,
                tol,
                compute_labels,
            },
            model: None,
            labels: None,
        };
        if let Some(i) = init {
            me.set_init(i)?;
        }
        if let Some(n) = n_init {
            me.set_n_init(n)?;
        }
        me.config.validate().map_err(to_py)?;
        Ok(me)
    }

    /// Fits on X (n_samples, n_features); returns self.
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn fit<'py>(
        slf: Bound<'py, Self>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let _ = y;
        Self::train(&slf, X, sample_weight, false)?;
        Ok(slf)
    }

    /// One mini-batch step on all of X (the first call also initialises); returns self.
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn partial_fit<'py>(
        slf: Bound<'py, Self>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let _ = y;
        Self::train(&slf, X, sample_weight, true)?;
        Ok(slf)
    }

    /// Index of the nearest centre for each row of X (int32).
    #[allow(non_snake_case)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let (labels, _) = self.predict_inner(py, X, None)?;
        Ok(PyArray1::from_vec(
            py,
            labels.into_iter().map(|l| l as i32).collect(),
        ))
    }

    /// fit(X).labels_, computed even when compute_labels is off.
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn fit_predict<'py>(
        slf: Bound<'py, Self>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let _ = y;
        let py = slf.py();
        Self::train(&slf, X, sample_weight, false)?;
        let me = slf.borrow();
        match &me.labels {
            Some(l) => Ok(l.bind(py).clone()),
            None => me.predict(py, X),
        }
    }

    /// Minus the weighted inertia of X against the centres (higher is better).
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn score<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<f64> {
        let _ = y;
        Ok(-self.predict_inner(py, X, sample_weight)?.1)
    }

    #[pyo3(signature = (deep=true))]
    fn get_params<'py>(&self, py: Python<'py>, deep: bool) -> PyResult<Bound<'py, PyDict>> {
        let _ = deep;
        let c = &self.config;
        let d = PyDict::new(py);
        d.set_item("n_clusters", c.n_clusters)?;
        d.set_item("init", self.init(py)?)?;
        d.set_item("max_iter", c.max_iter)?;
        d.set_item("batch_size", c.batch_size)?;
        d.set_item("compute_labels", c.compute_labels)?;
        d.set_item("random_state", c.random_state)?;
        d.set_item("tol", c.tol)?;
        d.set_item("max_no_improvement", c.max_no_improvement)?;
        d.set_item("init_size", c.init_size)?;
        d.set_item("n_init", self.n_init(py)?)?;
        d.set_item("reassignment_ratio", c.reassignment_ratio)?;
        Ok(d)
    }

    /// Sets constructor parameters (takes effect at the next fit); returns self.
    #[pyo3(signature = (**params))]
    fn set_params<'py>(
        slf: Bound<'py, Self>,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        set_all(&mut *slf.borrow_mut(), params)?;
        Ok(slf)
    }

    #[getter]
    fn n_clusters(&self) -> usize {
        self.config.n_clusters
    }
    #[getter]
    fn init<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        init_obj(py, &self.config.init, self.config.n_clusters)
    }
    #[getter]
    fn max_iter(&self) -> usize {
        self.config.max_iter
    }
    #[getter]
    fn batch_size(&self) -> usize {
        self.config.batch_size
    }
    #[getter]
    fn compute_labels(&self) -> bool {
        self.config.compute_labels
    }
    #[getter]
    fn random_state(&self) -> Option<u64> {
        self.config.random_state
    }
    #[getter]
    fn tol(&self) -> f64 {
        self.config.tol
    }
    #[getter]
    fn max_no_improvement(&self) -> Option<usize> {
        self.config.max_no_improvement
    }
    #[getter]
    fn init_size(&self) -> Option<usize> {
        self.config.init_size
    }
    #[getter]
    fn n_init<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        n_init_obj(py, self.config.n_init)
    }
    #[getter]
    fn reassignment_ratio(&self) -> f64 {
        self.config.reassignment_ratio
    }

    /// (n_clusters, n_features), in the dtype X had at fit.
    #[getter]
    fn cluster_centers_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let k = self.config.n_clusters;
        Ok(match self.fitted_attr("cluster_centers_")? {
            Model::F32(m) => PyArray1::from_slice(py, m.centers())
                .reshape([k, m.n_features()])?
                .into_any(),
            Model::F64(m) => PyArray1::from_slice(py, m.centers())
                .reshape([k, m.n_features()])?
                .into_any(),
        })
    }

    /// Labels of the rows given to the last fit / partial_fit (int32).
    #[getter]
    fn labels_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        self.labels
            .as_ref()
            .map(|l| l.bind(py).clone())
            .ok_or_else(|| {
                PyAttributeError::new_err(
                    "MiniBatchKMeans has no labels_: not fitted, or compute_labels=False",
                )
            })
    }

    /// Weighted sum of squared distances of the last fit's rows to their nearest centre.
    #[getter]
    fn inertia_(&self) -> PyResult<f64> {
        if self.labels.is_none() {
            return Err(PyAttributeError::new_err(
                "MiniBatchKMeans has no inertia_: not fitted, or compute_labels=False",
            ));
        }
        Ok(match self.fitted_attr("inertia_")? {
            Model::F32(m) => m.inertia(),
            Model::F64(m) => m.inertia(),
        })
    }

    /// Mini-batch steps taken.
    #[getter]
    fn n_steps_(&self) -> PyResult<usize> {
        Ok(match self.fitted_attr("n_steps_")? {
            Model::F32(m) => m.n_steps(),
            Model::F64(m) => m.n_steps(),
        })
    }

    /// Passes over the data (steps x batch / n, rounded up) of the last fit.
    #[getter]
    fn n_iter_(&self) -> PyResult<usize> {
        Ok(match self.fitted_attr("n_iter_")? {
            Model::F32(m) => m.n_iter(),
            Model::F64(m) => m.n_iter(),
        })
    }

    #[getter]
    fn n_features_in_(&self) -> PyResult<usize> {
        Ok(match self.fitted_attr("n_features_in_")? {
            Model::F32(m) => m.n_features(),
            Model::F64(m) => m.n_features(),
        })
    }

    /// Pickle support: the parameters and, once fitted, the whole state (random stream too).
    fn __getstate__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("params", self.get_params(py, true)?)?;
        let state = match &self.model {
            None => None,
            Some(Model::F32(m)) => m
                .state()
                .map(|s| state_dict(py, s, "float32"))
                .transpose()?,
            Some(Model::F64(m)) => m
                .state()
                .map(|s| state_dict(py, s, "float64"))
                .transpose()?,
        };
        out.set_item("state", state)?;
        out.set_item("has_labels", self.labels.is_some())?;
        Ok(out)
    }

    fn __setstate__(&mut self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let item = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            state.get_item(k)?.ok_or_else(|| {
                PyValueError::new_err(format!("pickled MiniBatchKMeans lacks {k:?}"))
            })
        };
        let params = item("params")?;
        let params = params.cast::<PyDict>()?;
        for (k, v) in params.iter() {
            let key: String = k.extract()?;
            self.set_param(&key, &v)?;
        }
        self.config.validate().map_err(to_py)?;
        self.model = None;
        self.labels = None;
        let st = item("state")?;
        if st.is_none() {
            return Ok(());
        }
        let st = st.cast::<PyDict>()?;
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            st.get_item(k)?
                .ok_or_else(|| PyValueError::new_err(format!("pickled state lacks {k:?}")))
        };
        let dtype: String = get("dtype")?.extract()?;
        let labels: Vec<u32> = get("labels")?
            .extract::<Vec<i64>>()?
            .into_iter()
            .map(|l| l as u32)
            .collect();
        let seed: Vec<u8> = get("rng_seed")?.extract()?;
        let rng_seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| PyValueError::new_err("pickled rng_seed must be 32 bytes"))?;
        macro_rules! parts {
            ($t:ty) => {
                KMeansState::<$t> {
                    n_features: get("n_features")?.extract()?,
                    centers: get("centers")?.extract()?,
                    counts: get("counts")?.extract()?,
                    rng_seed,
                    rng_stream: get("rng_stream")?.extract()?,
                    rng_word_pos: get("rng_word_pos")?.extract()?,
                    ewa_inertia: get("ewa_inertia")?.extract()?,
                    ewa_inertia_min: get("ewa_inertia_min")?.extract()?,
                    no_improvement: get("no_improvement")?.extract()?,
                    since_reassign: get("since_reassign")?.extract()?,
                    batch_size: get("batch_size")?.extract()?,
                    n_steps: get("n_steps")?.extract()?,
                    n_iter: get("n_iter")?.extract()?,
                    labels: labels.clone(),
                    inertia: get("inertia")?.extract()?,
                }
            };
        }
        let config = self.config.clone();
        self.model = Some(match dtype.as_str() {
            "float32" => {
                Model::F32(MiniBatchKMeans::from_state(config, parts!(f32)).map_err(to_py)?)
            }
            "float64" => {
                Model::F64(MiniBatchKMeans::from_state(config, parts!(f64)).map_err(to_py)?)
            }
            other => return Err(PyValueError::new_err(format!("pickled dtype {other:?}"))),
        });
        if item("has_labels")?.extract()? {
            let v: Vec<i32> = labels.into_iter().map(|l| l as i32).collect();
            self.labels = Some(PyArray1::from_vec(py, v).unbind());
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        let c = &self.config;
        let mut s = format!("MiniBatchKMeans(n_clusters={}", c.n_clusters);
        if c.batch_size != 1024 {
            s += &format!(", batch_size={}", c.batch_size);
        }
        if let Some(r) = c.random_state {
            s += &format!(", random_state={r}");
        }
        s + ")"
    }
}

/// `valuescope._core.KMeans`: full-batch (Lloyd) k-means with scikit-learn's `KMeans` face.
#[pyclass(module = "valuescope._core", name = "KMeans")]
pub struct PyKMeans {
    config: LloydConfig,
    model: Option<FullModel>,
}

impl Params for PyKMeans {
    type Config = LloydConfig;
    fn config_mut(&mut self) -> &mut LloydConfig {
        &mut self.config
    }
    fn check(&self) -> PyResult<()> {
        self.config.validate().map_err(to_py)
    }
    fn set_param(&mut self, key: &str, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let c = &mut self.config;
        match key {
            "n_clusters" => c.n_clusters = whole(key, v.extract()?)?,
            "init" => c.init = parse_init(v, c.n_clusters)?,
            "n_init" => c.n_init = parse_n_init(v)?,
            "max_iter" => c.max_iter = whole(key, v.extract()?)?,
            "tol" => c.tol = v.extract()?,
            "random_state" => c.random_state = whole_opt(key, v.extract()?)?,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid parameter {key:?} for KMeans"
                )))
            }
        }
        Ok(())
    }
}

impl PyKMeans {
    fn fitted(&self, name: &str) -> PyResult<&FullModel> {
        self.model.as_ref().ok_or_else(|| {
            PyAttributeError::new_err(format!("KMeans has no attribute {name:?} before fit"))
        })
    }

    fn train(
        slf: &Bound<'_, Self>,
        x: &Bound<'_, PyAny>,
        sample_weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let mut me = slf.borrow_mut();
        let m = matrix(x, None)?;
        let (n, d) = m.dims();
        let w = weights(sample_weight, n)?;
        let w = opt_slice(&w)?;
        let config = me.config.clone();
        me.model = None;
        let model = match &m {
            Matrix::F32(a) => {
                let xs = slice(a)?;
                let mut k = KMeans::<f32>::new(config).map_err(to_py)?;
                py.detach(|| k.fit(xs, d, w)).map_err(to_py)?;
                FullModel::F32(k)
            }
            Matrix::F64(a) => {
                let xs = slice(a)?;
                let mut k = KMeans::<f64>::new(config).map_err(to_py)?;
                py.detach(|| k.fit(xs, d, w)).map_err(to_py)?;
                FullModel::F64(k)
            }
        };
        me.model = Some(model);
        Ok(())
    }

    fn predict_inner<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Vec<u32>, f64)> {
        self.model
            .as_ref()
            .ok_or_else(|| to_py(KMeansError::NotFitted))?
            .predict(py, x, sample_weight)
    }
}

fn i32_labels<'py>(py: Python<'py>, labels: &[u32]) -> Bound<'py, PyArray1<i32>> {
    PyArray1::from_vec(py, labels.iter().map(|&l| l as i32).collect())
}

#[pymethods]
impl PyKMeans {
    #[new]
    #[pyo3(
        signature = (n_clusters=8, *, init=None, n_init=None, max_iter=300, tol=1e-4,
                     random_state=None),
        text_signature = "(n_clusters=8, *, init='k-means++', n_init='auto', max_iter=300, \
                          tol=0.0001, random_state=None)"
    )]
    fn new(
        n_clusters: i128,
        init: Option<&Bound<'_, PyAny>>,
        n_init: Option<&Bound<'_, PyAny>>,
        max_iter: i128,
        tol: f64,
        random_state: Option<i128>,
    ) -> PyResult<Self> {
        let n_clusters = whole("n_clusters", n_clusters)?;
        let mut config = LloydConfig {
            max_iter: whole("max_iter", max_iter)?,
            tol,
            random_state: whole_opt("random_state", random_state)?,
            ..LloydConfig::new(n_clusters)
        };
        if let Some(i) = init {
            config.init = parse_init(i, n_clusters)?;
        }
        if let Some(n) = n_init {
            config.n_init = parse_n_init(n)?;
        }
        config.validate().map_err(to_py)?;
        Ok(PyKMeans {
            config,
            model: None,
        })
    }

    /// Fits on X (n_samples, n_features); returns self.
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn fit<'py>(
        slf: Bound<'py, Self>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let _ = y;
        Self::train(&slf, X, sample_weight)?;
        Ok(slf)
    }

    /// Index of the nearest centre for each row of X (int32).
    #[allow(non_snake_case)]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let (labels, _) = self.predict_inner(py, X, None)?;
        Ok(i32_labels(py, &labels))
    }

    /// fit(X).labels_.
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn fit_predict<'py>(
        slf: Bound<'py, Self>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let _ = y;
        Self::train(&slf, X, sample_weight)?;
        slf.borrow().labels_(slf.py())
    }

    /// Minus the weighted inertia of X against the centres (higher is better).
    #[pyo3(signature = (X, y=None, sample_weight=None))]
    #[allow(non_snake_case)]
    fn score<'py>(
        &self,
        py: Python<'py>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
        sample_weight: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<f64> {
        let _ = y;
        Ok(-self.predict_inner(py, X, sample_weight)?.1)
    }

    #[pyo3(signature = (deep=true))]
    fn get_params<'py>(&self, py: Python<'py>, deep: bool) -> PyResult<Bound<'py, PyDict>> {
        let _ = deep;
        let c = &self.config;
        let d = PyDict::new(py);
        d.set_item("n_clusters", c.n_clusters)?;
        d.set_item("init", init_obj(py, &c.init, c.n_clusters)?)?;
        d.set_item("n_init", n_init_obj(py, c.n_init)?)?;
        d.set_item("max_iter", c.max_iter)?;
        d.set_item("tol", c.tol)?;
        d.set_item("random_state", c.random_state)?;
        Ok(d)
    }

    /// Sets constructor parameters (takes effect at the next fit); returns self.
    #[pyo3(signature = (**params))]
    fn set_params<'py>(
        slf: Bound<'py, Self>,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        set_all(&mut *slf.borrow_mut(), params)?;
        Ok(slf)
    }

    #[getter]
    fn n_clusters(&self) -> usize {
        self.config.n_clusters
    }
    #[getter]
    fn init<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        init_obj(py, &self.config.init, self.config.n_clusters)
    }
    #[getter]
    fn n_init<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        n_init_obj(py, self.config.n_init)
    }
    #[getter]
    fn max_iter(&self) -> usize {
        self.config.max_iter
    }
    #[getter]
    fn tol(&self) -> f64 {
        self.config.tol
    }
    #[getter]
    fn random_state(&self) -> Option<u64> {
        self.config.random_state
    }

    /// (n_clusters, n_features), in the dtype X had at fit.
    #[getter]
    fn cluster_centers_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let k = self.config.n_clusters;
        Ok(match self.fitted("cluster_centers_")? {
            FullModel::F32(m) => PyArray1::from_slice(py, m.centers())
                .reshape([k, m.n_features()])?
                .into_any(),
            FullModel::F64(m) => PyArray1::from_slice(py, m.centers())
                .reshape([k, m.n_features()])?
                .into_any(),
        })
    }

    /// Labels of the rows given to the last fit (int32).
    #[getter]
    fn labels_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        Ok(match self.fitted("labels_")? {
            FullModel::F32(m) => i32_labels(py, m.labels()),
            FullModel::F64(m) => i32_labels(py, m.labels()),
        })
    }

    /// Weighted sum of squared distances of the last fit's rows to their centres.
    #[getter]
    fn inertia_(&self) -> PyResult<f64> {
        Ok(match self.fitted("inertia_")? {
            FullModel::F32(m) => m.inertia(),
            FullModel::F64(m) => m.inertia(),
        })
    }

    /// Lloyd iterations of the kept start.
    #[getter]
    fn n_iter_(&self) -> PyResult<usize> {
        Ok(match self.fitted("n_iter_")? {
            FullModel::F32(m) => m.n_iter(),
            FullModel::F64(m) => m.n_iter(),
        })
    }

    #[getter]
    fn n_features_in_(&self) -> PyResult<usize> {
        Ok(match self.fitted("n_features_in_")? {
            FullModel::F32(m) => m.n_features(),
            FullModel::F64(m) => m.n_features(),
        })
    }

    /// Pickle support: the parameters and, once fitted, the centres, labels and inertia.
    fn __getstate__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("params", self.get_params(py, true)?)?;
        let fitted = match &self.model {
            None => None,
            Some(m) => {
                let s = PyDict::new(py);
                match m {
                    FullModel::F32(k) => {
                        s.set_item("dtype", "float32")?;
                        s.set_item("n_features", k.n_features())?;
                        s.set_item("centers", k.centers().to_vec())?;
                        s.set_item("labels", k.labels().to_vec())?;
                        s.set_item("inertia", k.inertia())?;
                        s.set_item("n_iter", k.n_iter())?;
                    }
                    FullModel::F64(k) => {
                        s.set_item("dtype", "float64")?;
                        s.set_item("n_features", k.n_features())?;
                        s.set_item("centers", k.centers().to_vec())?;
                        s.set_item("labels", k.labels().to_vec())?;
                        s.set_item("inertia", k.inertia())?;
                        s.set_item("n_iter", k.n_iter())?;
                    }
                }
                Some(s)
            }
        };
        out.set_item("fitted", fitted)?;
        Ok(out)
    }

    fn __setstate__(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        fn item<'py>(d: &Bound<'py, PyDict>, k: &str) -> PyResult<Bound<'py, PyAny>> {
            d.get_item(k)?
                .ok_or_else(|| PyValueError::new_err(format!("pickled KMeans lacks {k:?}")))
        }
        let params = item(state, "params")?;
        for (k, v) in params.cast::<PyDict>()?.iter() {
            let key: String = k.extract()?;
            self.set_param(&key, &v)?;
        }
        self.config.validate().map_err(to_py)?;
        self.model = None;
        let fitted = item(state, "fitted")?;
        if fitted.is_none() {
            return Ok(());
        }
        let f = fitted.cast::<PyDict>()?;
        let dtype: String = item(f, "dtype")?.extract()?;
        let n_features: usize = item(f, "n_features")?.extract()?;
        let labels: Vec<u32> = item(f, "labels")?.extract()?;
        let inertia: f64 = item(f, "inertia")?.extract()?;
        let n_iter: usize = item(f, "n_iter")?.extract()?;
        let config = self.config.clone();
        self.model = Some(match dtype.as_str() {
            "float32" => FullModel::F32(
                KMeans::from_state(
                    config,
                    LloydState {
                        n_features,
                        centers: item(f, "centers")?.extract()?,
                        labels,
                        inertia,
                        n_iter,
                    },
                )
                .map_err(to_py)?,
            ),
            "float64" => FullModel::F64(
                KMeans::from_state(
                    config,
                    LloydState {
                        n_features,
                        centers: item(f, "centers")?.extract()?,
                        labels,
                        inertia,
                        n_iter,
                    },
                )
                .map_err(to_py)?,
            ),
            other => return Err(PyValueError::new_err(format!("pickled dtype {other:?}"))),
        });
        Ok(())
    }

    fn __repr__(&self) -> String {
        let c = &self.config;
        let mut s = format!("KMeans(n_clusters={}", c.n_clusters);
        if let Some(n) = c.n_init {
            s += &format!(", n_init={n}");
        }
        if let Some(r) = c.random_state {
            s += &format!(", random_state={r}");
        }
        s + ")"
    }
}
