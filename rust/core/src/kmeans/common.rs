//! What every k-means here shares: errors, the float types, the data view and weights, and
//! the nearest-centre assignment over a blocked matrix product.

use std::fmt::Debug;

use rayon::prelude::*;
use thiserror::Error;

/// Rows per block of the distance computation: big enough for the matrix product to run at
/// speed, small enough that a block of dot products (rows x k) stays in L2.
pub(super) const BLOCK_ROWS: usize = 256;

/// Largest k-means++ sample for which its Gram matrix is formed (8192^2 floats: 256 MiB at f32).
pub(super) const GRAM_MAX_ROWS: usize = 8192;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum KMeansError {
    #[error("invalid parameter: {0}")]
    Param(String),
    #[error("X has 0 samples; at least one row is needed")]
    Empty,
    #[error("X has 0 features")]
    NoFeatures,
    #[error("X contains NaN or infinity (first at row {row}, column {col})")]
    NotFinite { row: usize, col: usize },
    #[error("n_samples={n} should be >= n_clusters={k}")]
    TooFewSamples { n: usize, k: usize },
    #[error("X has {found} features, but the model was fitted with {expected}")]
    Features { expected: usize, found: usize },
    #[error("sample_weight: {0}")]
    Weights(String),
    #[error("init: {0}")]
    Init(String),
    #[error("this MiniBatchKMeans instance is not fitted yet; call fit or partial_fit first")]
    NotFitted,
}

/// The element type of the data: f32 or f64, each with its own matrix-product kernel.
pub trait Float:
    Copy
    + Send
    + Sync
    + Debug
    + Default
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + 'static
{
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn is_finite(self) -> bool;
    /// `c[m x n] = a[m x d] * bt[d x n]`, all row-major and contiguous. The right-hand side
    /// comes transposed so that packing it for the kernel reads whole rows (a strided gather
    /// there cost more than the product itself).
    fn dots(a: &[Self], bt: &[Self], d: usize, c: &mut [Self]);
}

macro_rules! impl_float {
    ($t:ty, $gemm:path) => {
        impl Float for $t {
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            fn dots(a: &[Self], bt: &[Self], d: usize, c: &mut [Self]) {
                let m = a.len() / d;
                let n = bt.len() / d;
                assert!(a.len() == m * d && bt.len() == n * d && c.len() == m * n);
                if m == 0 || n == 0 {
                    return;
                }
                // SAFETY: the asserts above bound every index the kernel touches: a is m x d
                // with strides (d, 1), bt is d x n with strides (n, 1), c is m x n.
                unsafe {
                    $gemm(
                        m,
                        d,
                        n,
                        1.0,
                        a.as_ptr(),
                        d as isize,
                        1,
                        bt.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            }
        }
    };
}

impl_float!(f32, matrixmultiply::sgemm);
impl_float!(f64, matrixmultiply::dgemm);

/// How the first centres are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Greedy k-means++ (2 + ln k candidates per centre, the one that lowers the potential most).
    KMeansPlusPlus,
    /// k distinct rows of the init sample, drawn by weight.
    Random,
    /// Given centres, row-major k x d.
    Given(Vec<f64>),
}

/// A borrowed row-major matrix, checked: n >= 1 rows, d >= 1 columns, all finite.
#[derive(Clone, Copy)]
pub(super) struct Data<'a, T> {
    pub x: &'a [T],
    pub d: usize,
}

impl<'a, T: Float> Data<'a, T> {
    pub fn new(x: &'a [T], d: usize) -> Result<Self, KMeansError> {
        if d == 0 {
            return Err(KMeansError::NoFeatures);
        }
        if x.is_empty() {
            return Err(KMeansError::Empty);
        }
        if !x.len().is_multiple_of(d) {
            return Err(KMeansError::Param(format!(
                "data length {} is not a multiple of the {} features",
                x.len(),
                d
            )));
        }
        // Parallel scan; the first offending row is reported whatever the thread count.
        let first_bad = x
            .par_chunks(BLOCK_ROWS * d)
            .enumerate()
            .filter_map(|(b, chunk)| {
                chunk
                    .iter()
                    .position(|v| !v.is_finite())
                    .map(|p| b * BLOCK_ROWS * d + p)
            })
            .min();
        if let Some(p) = first_bad {
            return Err(KMeansError::NotFinite {
                row: p / d,
                col: p % d,
            });
        }
        Ok(Data { x, d })
    }

    pub fn n(&self) -> usize {
        self.x.len() / self.d
    }

    pub fn row(&self, i: usize) -> &'a [T] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
}

pub(super) fn check_weights(w: Option<&[f64]>, n: usize) -> Result<Vec<f64>, KMeansError> {
    match w {
        None => Ok(vec![1.0; n]),
        Some(w) => {
            if w.len() != n {
                return Err(KMeansError::Weights(format!(
                    "expected {} weights (one per row), got {}",
                    n,
                    w.len()
                )));
            }
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(KMeansError::Weights(format!(
                    "weights must be finite and >= 0 (row {i} is {})",
                    w[i]
                )));
            }
            if w.iter().sum::<f64>() <= 0.0 {
                return Err(KMeansError::Weights("the weights sum to 0".into()));
            }
            Ok(w.to_vec())
        }
    }
}

pub(super) fn sq_norms<T: Float>(x: &[T], d: usize) -> Vec<T> {
    let mut out = vec![T::default(); x.len() / d];
    out.par_chunks_mut(BLOCK_ROWS)
        .zip(x.par_chunks(BLOCK_ROWS * d))
        .for_each(|(o, rows)| {
            for (v, r) in o.iter_mut().zip(rows.chunks_exact(d)) {
                *v = r.iter().fold(T::default(), |s, &a| s + a * a);
            }
        });
    out
}

/// Nearest centre of every row and its squared distance (clamped at 0, as rounding in the
/// expanded form can go slightly negative). Ties go to the lower index, as numpy's argmin does.
pub(super) fn assign<T: Float>(
    x: &[T],
    x_norms: &[T],
    centers_t: &[T],
    c_norms: &[T],
    d: usize,
    labels: &mut [u32],
    dists: &mut [T],
) {
    let k = c_norms.len();
    let two = T::from_f64(2.0);
    let zero = T::default();
    labels
        .par_chunks_mut(BLOCK_ROWS)
        .zip(dists.par_chunks_mut(BLOCK_ROWS))
        .zip(x.par_chunks(BLOCK_ROWS * d))
        .zip(x_norms.par_chunks(BLOCK_ROWS))
        .for_each_init(
            || vec![zero; BLOCK_ROWS * k],
            |buf, (((lab, dist), rows), xn)| {
                let m = lab.len();
                let buf = &mut buf[..m * k];
                T::dots(rows, centers_t, d, buf);
                for i in 0..m {
                    let dot = &buf[i * k..(i + 1) * k];
                    let mut best = 0usize;
                    let mut best_v = c_norms[0] - two * dot[0];
                    for j in 1..k {
                        let v = c_norms[j] - two * dot[j];
                        if v < best_v {
                            best_v = v;
                            best = j;
                        }
                    }
                    lab[i] = best as u32;
                    let dd = xn[i] + best_v;
                    dist[i] = if dd > zero { dd } else { zero };
                }
            },
        );
}

/// The settings both k-means kinds share, checked alike (given centres included).
pub(super) fn check_common(
    n_clusters: usize,
    max_iter: usize,
    n_init: Option<usize>,
    tol: f64,
    init: &Init,
) -> Result<(), KMeansError> {
    let bad = |m: String| Err(KMeansError::Param(m));
    if n_clusters == 0 {
        return bad("n_clusters must be >= 1".into());
    }
    if max_iter == 0 {
        return bad("max_iter must be >= 1".into());
    }
    if n_init == Some(0) {
        return bad("n_init must be >= 1".into());
    }
    if !(tol >= 0.0 && tol.is_finite()) {
        return bad(format!("tol must be a finite number >= 0, got {tol}"));
    }
    if let Init::Given(c) = init {
        if c.is_empty() || !c.len().is_multiple_of(n_clusters) {
            return Err(KMeansError::Init(format!(
                "expected {n_clusters} rows of centres, got {} values",
                c.len()
            )));
        }
        if c.iter().any(|v| !v.is_finite()) {
            return Err(KMeansError::Init("centres contain NaN or infinity".into()));
        }
    }
    Ok(())
}

/// Nearest of `centers` (over `fitted_d` features) for each row of `x`, and the weighted inertia:
/// `predict` of both k-means kinds.
/// Labels and weighted inertia of `x` against `centers`.
pub(super) fn nearest<T: Float>(
    centers: &[T],
    fitted_d: usize,
    x: &[T],
    d: usize,
    weights: Option<&[f64]>,
) -> Result<(Vec<u32>, f64), KMeansError> {
    let data = Data::new(x, d)?;
    if d != fitted_d {
        return Err(KMeansError::Features {
            expected: fitted_d,
            found: d,
        });
    }
    let w = check_weights(weights, data.n())?;
    let norms = sq_norms(x, d);
    let (labels, _, inertia) = labels_inertia(x, &norms, &w, centers, d);
    Ok((labels, inertia))
}

pub(super) fn labels_inertia<T: Float>(
    x: &[T],
    x_norms: &[T],
    w: &[f64],
    centers: &[T],
    d: usize,
) -> (Vec<u32>, Vec<T>, f64) {
    let n = x_norms.len();
    let c_norms = sq_norms(centers, d);
    let centers_t = transpose(centers, d);
    let mut labels = vec![0u32; n];
    let mut dists = vec![T::default(); n];
    assign(x, x_norms, &centers_t, &c_norms, d, &mut labels, &mut dists);
    let inertia = dists.iter().zip(w).map(|(&a, &b)| a.to_f64() * b).sum();
    (labels, dists, inertia)
}

/// `a` (rows x d, row-major) as d x rows, row-major.
pub(super) fn transpose<T: Float>(a: &[T], d: usize) -> Vec<T> {
    let rows = a.len() / d;
    let mut t = vec![T::default(); a.len()];
    for (i, row) in a.chunks_exact(d).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * rows + i] = v;
        }
    }
    t
}

/// Index `i` with `cum[i-1] < r <= cum[i]` (numpy's searchsorted, side='left'), clipped.
pub(super) fn search(cum: &[f64], r: f64) -> usize {
    cum.partition_point(|&c| c < r).min(cum.len() - 1)
}

pub(super) fn cumsum(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut s = 0.0;
    v.map(|a| {
        s += a;
        s
    })
    .collect()
}

/// Mean over features of the (population) variance, which scales `tol` as scikit-learn does.
pub(super) fn mean_variance<T: Float>(x: Data<'_, T>) -> f64 {
    let n = x.n() as f64;
    let d = x.d;
    let mut mean = vec![0.0f64; d];
    for i in 0..x.n() {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += v.to_f64();
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f64; d];
    for i in 0..x.n() {
        for ((s, &v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
            let t = v.to_f64() - m;
            *s += t * t;
        }
    }
    var.iter().sum::<f64>() / (n * d as f64)
}
