//! Mini-batch k-means (Sculley 2010), following the schedule scikit-learn's `MiniBatchKMeans`
//! runs, so that its results can be set beside scikit-learn's:
//!
//! - greedy, weighted k-means++ on a random sample of `init_size` rows (`n_init` tries, the one
//!   with the lowest inertia on a separate validation sample wins);
//! - each step draws `batch_size` rows with replacement, assigns them to the nearest centre and
//!   moves each centre to the weighted running mean of every point it was ever given (learning
//!   rate = batch weight / total weight, Sculley's 1/count);
//! - centres whose total weight falls below `reassignment_ratio` times the largest are moved onto
//!   points of the batch (drawn by weight), every `10 * k` sampled rows or whenever a centre has
//!   never been fed;
//! - early stop when the exponentially smoothed batch inertia has not improved for
//!   `max_no_improvement` steps, or when the centres moved less than `tol` (scaled by the mean
//!   feature variance).
//!
//! Squared distances are `|x|^2 - 2 x.c + |c|^2`, with `x.c` from a SIMD matrix product
//! (`matrixmultiply`, runtime-detected AVX-512/AVX2 kernels on stable Rust), rows split into
//! fixed blocks over rayon's pool. Block boundaries never depend on the thread count and every sum
//! is taken in a fixed order, so a seed gives the same result on any machine size.

use std::fmt::Debug;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use thiserror::Error;

/// Rows per block of the distance computation: big enough for the matrix product to run at
/// speed, small enough that a block of dot products (rows x k) stays in L2.
const BLOCK_ROWS: usize = 256;

/// Largest k-means++ sample for which its Gram matrix is formed (8192^2 floats: 256 MiB at f32).
const GRAM_MAX_ROWS: usize = 8192;

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

#[derive(Debug, Clone, PartialEq)]
pub struct KMeansConfig {
    pub n_clusters: usize,
    pub batch_size: usize,
    pub max_iter: usize,
    /// None: scikit-learn's "auto" (1 for k-means++ and given centres, 3 for random).
    pub n_init: Option<usize>,
    pub init: Init,
    /// None: 3 * batch_size, at least 3 * n_clusters, at most n_samples.
    pub init_size: Option<usize>,
    /// None: seeded from the operating system.
    pub random_state: Option<u64>,
    pub reassignment_ratio: f64,
    /// None: never stop on the smoothed inertia.
    pub max_no_improvement: Option<usize>,
    pub tol: f64,
    pub compute_labels: bool,
}

impl KMeansConfig {
    pub fn new(n_clusters: usize) -> Self {
        KMeansConfig {
            n_clusters,
            batch_size: 1024,
            max_iter: 100,
            n_init: None,
            init: Init::KMeansPlusPlus,
            init_size: None,
            random_state: None,
            reassignment_ratio: 0.01,
            max_no_improvement: Some(10),
            tol: 0.0,
            compute_labels: true,
        }
    }

    pub fn validate(&self) -> Result<(), KMeansError> {
        let bad = |m: String| Err(KMeansError::Param(m));
        check_common(
            self.n_clusters,
            self.max_iter,
            self.n_init,
            self.tol,
            &self.init,
        )?;
        if self.batch_size == 0 {
            return bad("batch_size must be >= 1".into());
        }
        if self.init_size == Some(0) {
            return bad("init_size must be >= 1".into());
        }
        if !(self.reassignment_ratio >= 0.0 && self.reassignment_ratio.is_finite()) {
            return bad(format!(
                "reassignment_ratio must be a finite number >= 0, got {}",
                self.reassignment_ratio
            ));
        }
        Ok(())
    }

    fn effective_n_init(&self) -> usize {
        match (self.n_init, &self.init) {
            (Some(n), Init::Given(_)) if n > 1 => 1,
            (Some(n), _) => n,
            (None, Init::Random) => 3,
            (None, _) => 1,
        }
    }
}

/// A borrowed row-major matrix, checked: n >= 1 rows, d >= 1 columns, all finite.
#[derive(Clone, Copy)]
struct Data<'a, T> {
    x: &'a [T],
    d: usize,
}

impl<'a, T: Float> Data<'a, T> {
    fn new(x: &'a [T], d: usize) -> Result<Self, KMeansError> {
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

    fn n(&self) -> usize {
        self.x.len() / self.d
    }

    fn row(&self, i: usize) -> &'a [T] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
}

fn check_weights(w: Option<&[f64]>, n: usize) -> Result<Vec<f64>, KMeansError> {
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

fn sq_norms<T: Float>(x: &[T], d: usize) -> Vec<T> {
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
fn assign<T: Float>(
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

/// Labels and weighted inertia of `x` against `centers`.
/// The settings both k-means kinds share, checked alike (given centres included).
fn check_common(
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
fn nearest<T: Float>(
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

fn labels_inertia<T: Float>(
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
fn transpose<T: Float>(a: &[T], d: usize) -> Vec<T> {
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
fn search(cum: &[f64], r: f64) -> usize {
    cum.partition_point(|&c| c < r).min(cum.len() - 1)
}

fn cumsum(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut s = 0.0;
    v.map(|a| {
        s += a;
        s
    })
    .collect()
}

/// Greedy weighted k-means++ over the rows of `x` (already the init sample).
fn kmeans_plusplus<T: Float>(
    x: &[T],
    x_norms: &[T],
    w: &[f64],
    d: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<T> {
    let m = x_norms.len();
    let trials = 2 + (k as f64).ln() as usize;
    let mut centers = Vec::with_capacity(k * d);
    let wcum = cumsum(w.iter().copied());
    let first = search(&wcum, rng.random::<f64>() * wcum[m - 1]);
    centers.extend_from_slice(&x[first * d..(first + 1) * d]);

    // Dot products of candidate rows with every row. With many centres, one Gram matrix of
    // the sample (a single large, efficient product) answers all of them by lookup; otherwise
    // each block of rows is transposed once (d x rows) so that the few candidates multiply it
    // from the left and the kernel packs contiguous rows (with the sample on the left it would
    // gather each of its elements again for every centre).
    let use_gram = m <= GRAM_MAX_ROWS && 2 * k * trials >= m;
    let gram: Vec<T> = if use_gram {
        let xt = transpose(x, d);
        let mut g = vec![T::default(); m * m];
        g.par_chunks_mut(BLOCK_ROWS * m)
            .zip(x.par_chunks(BLOCK_ROWS * d))
            .for_each(|(gb, rows)| T::dots(rows, &xt, d, gb));
        g
    } else {
        Vec::new()
    };
    let blocks_t: Vec<Vec<T>> = if use_gram {
        Vec::new()
    } else {
        x.par_chunks(BLOCK_ROWS * d)
            .map(|rows| transpose(rows, d))
            .collect()
    };
    let n_blocks = m.div_ceil(BLOCK_ROWS);

    // Squared distances from every row to a set of candidate rows, min'ed with `closest`.
    let dist_to = |cand: &[usize], closest: Option<&[f64]>| -> Vec<f64> {
        let c: Vec<T> = if use_gram {
            Vec::new()
        } else {
            cand.iter()
                .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
                .collect()
        };
        let cn: Vec<f64> = cand.iter().map(|&i| x_norms[i].to_f64()).collect();
        let t = cand.len();
        let mut out = vec![0.0f64; m * t];
        out.par_chunks_mut(BLOCK_ROWS * t)
            .zip(0..n_blocks)
            .for_each_init(
                || vec![T::default(); BLOCK_ROWS * t],
                |buf, (o, b)| {
                    let r = o.len() / t;
                    let first = b * BLOCK_ROWS;
                    let buf = &mut buf[..r * t];
                    // buf is t x r: candidate j against row first + i at j * r + i.
                    if use_gram {
                        for (j, &ci) in cand.iter().enumerate() {
                            buf[j * r..(j + 1) * r]
                                .copy_from_slice(&gram[ci * m + first..ci * m + first + r]);
                        }
                    } else {
                        T::dots(&c, &blocks_t[b], d, buf);
                    }
                    for i in 0..r {
                        let row = first + i;
                        let xn = x_norms[row].to_f64();
                        for j in 0..t {
                            let v = (xn - 2.0 * buf[j * r + i].to_f64() + cn[j]).max(0.0);
                            o[i * t + j] = match closest {
                                Some(cl) => v.min(cl[row]),
                                None => v,
                            };
                        }
                    }
                },
            );
        out
    };

    let mut closest = dist_to(&[first], None);
    for _ in 1..k {
        let cum = cumsum(closest.iter().zip(w).map(|(a, b)| a * b));
        let total = cum[m - 1];
        let cand: Vec<usize> = (0..trials)
            .map(|_| search(&cum, rng.random::<f64>() * total))
            .collect();
        let cand_d = dist_to(&cand, Some(&closest));
        let mut pots = vec![0.0f64; trials];
        for i in 0..m {
            for (j, p) in pots.iter_mut().enumerate() {
                *p += w[i] * cand_d[i * trials + j];
            }
        }
        let mut best = 0;
        for j in 1..trials {
            if pots[j] < pots[best] {
                best = j;
            }
        }
        // With every weighted distance 0 (fewer distinct points than k) the draws all land on
        // row 0; that still yields k (duplicate) centres, as scikit-learn does.
        for i in 0..m {
            closest[i] = cand_d[i * trials + best];
        }
        let c = cand[best];
        centers.extend_from_slice(&x[c * d..(c + 1) * d]);
    }
    centers
}

/// Weighted sampling of `r` distinct indices of `w` (positive weights only), sequentially.
fn choice_without_replacement(w: &[f64], r: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut w = w.to_vec();
    let mut out = Vec::with_capacity(r);
    for _ in 0..r {
        let cum = cumsum(w.iter().copied());
        let total = *cum.last().unwrap();
        if total <= 0.0 {
            break;
        }
        let mut i = search(&cum, rng.random::<f64>() * total);
        // Never land on a zero-weight (or already drawn) row through a boundary draw.
        while w[i] <= 0.0 {
            i = (i + 1) % w.len();
        }
        w[i] = 0.0;
        out.push(i);
    }
    out
}

/// k distinct rows of `x` drawn by weight; if fewer than k rows weigh anything, the rest are
/// drawn uniformly among the weightless ones.
fn random_rows<T: Float>(x: &[T], w: &[f64], d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<T> {
    let mut picks = choice_without_replacement(w, k, rng);
    if picks.len() < k {
        let mut rest: Vec<usize> = (0..w.len()).filter(|&i| w[i] <= 0.0).collect();
        for i in 0..k - picks.len() {
            let j = i + rng.random_range(0..(rest.len() - i) as u64) as usize;
            rest.swap(i, j);
            picks.push(rest[i]);
        }
    }
    picks
        .iter()
        .flat_map(|&i| x[i * d..(i + 1) * d].iter().copied())
        .collect()
}

/// k-means++ over the rows of `x`; rows that all weigh 0 are taken as equally weighted.
fn plusplus_init<T: Float>(
    x: &[T],
    x_norms: &[T],
    w: &[f64],
    d: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<T> {
    if w.iter().any(|&v| v > 0.0) {
        kmeans_plusplus(x, x_norms, w, d, k, rng)
    } else {
        kmeans_plusplus(x, x_norms, &vec![1.0; x_norms.len()], d, k, rng)
    }
}

/// Everything a fitted model holds beyond its configuration, to save it and rebuild it exactly
/// (the random stream included, so that partial_fit continues as it would have).
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansState<T> {
    pub n_features: usize,
    pub centers: Vec<T>,
    pub counts: Vec<f64>,
    pub rng_seed: [u8; 32],
    pub rng_stream: u64,
    pub rng_word_pos: u128,
    pub ewa_inertia: Option<f64>,
    pub ewa_inertia_min: Option<f64>,
    pub no_improvement: usize,
    pub since_reassign: usize,
    pub batch_size: usize,
    pub n_steps: usize,
    pub n_iter: usize,
    pub labels: Vec<u32>,
    pub inertia: f64,
}

/// A mini-batch k-means model over element type `T` (f32 or f64).
#[derive(Debug, Clone)]
pub struct MiniBatchKMeans<T: Float> {
    config: KMeansConfig,
    rng: ChaCha8Rng,
    d: usize,
    centers: Vec<T>,
    counts: Vec<f64>,
    // Convergence bookkeeping, as in scikit-learn.
    ewa_inertia: Option<f64>,
    ewa_inertia_min: Option<f64>,
    no_improvement: usize,
    since_reassign: usize,
    batch_size: usize,
    n_steps: usize,
    n_iter: usize,
    labels: Vec<u32>,
    inertia: f64,
}

impl<T: Float> MiniBatchKMeans<T> {
    pub fn new(config: KMeansConfig) -> Result<Self, KMeansError> {
        config.validate()?;
        let rng = match config.random_state {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        Ok(MiniBatchKMeans {
            config,
            rng,
            d: 0,
            centers: Vec::new(),
            counts: Vec::new(),
            ewa_inertia: None,
            ewa_inertia_min: None,
            no_improvement: 0,
            since_reassign: 0,
            batch_size: 0,
            n_steps: 0,
            n_iter: 0,
            labels: Vec::new(),
            inertia: 0.0,
        })
    }

    pub fn config(&self) -> &KMeansConfig {
        &self.config
    }

    /// The fitted state (None before the first fit / partial_fit).
    pub fn state(&self) -> Option<KMeansState<T>> {
        if !self.is_fitted() {
            return None;
        }
        Some(KMeansState {
            n_features: self.d,
            centers: self.centers.clone(),
            counts: self.counts.clone(),
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos(),
            ewa_inertia: self.ewa_inertia,
            ewa_inertia_min: self.ewa_inertia_min,
            no_improvement: self.no_improvement,
            since_reassign: self.since_reassign,
            batch_size: self.batch_size,
            n_steps: self.n_steps,
            n_iter: self.n_iter,
            labels: self.labels.clone(),
            inertia: self.inertia,
        })
    }

    /// Rebuilds a model saved with `state`, checking that the pieces fit together.
    pub fn from_state(config: KMeansConfig, s: KMeansState<T>) -> Result<Self, KMeansError> {
        let k = config.n_clusters;
        let bad = |m: &str| Err(KMeansError::Param(format!("inconsistent saved state: {m}")));
        if s.n_features == 0 || s.centers.len() != k * s.n_features {
            return bad("centres do not match n_clusters x n_features");
        }
        if s.counts.len() != k {
            return bad("one count per centre expected");
        }
        if s.labels.iter().any(|&l| l as usize >= k) {
            return bad("labels out of range");
        }
        let mut me = Self::new(config)?;
        me.rng = ChaCha8Rng::from_seed(s.rng_seed);
        me.rng.set_stream(s.rng_stream);
        me.rng.set_word_pos(s.rng_word_pos);
        me.d = s.n_features;
        me.centers = s.centers;
        me.counts = s.counts;
        me.ewa_inertia = s.ewa_inertia;
        me.ewa_inertia_min = s.ewa_inertia_min;
        me.no_improvement = s.no_improvement;
        me.since_reassign = s.since_reassign;
        me.batch_size = s.batch_size;
        me.n_steps = s.n_steps;
        me.n_iter = s.n_iter;
        me.labels = s.labels;
        me.inertia = s.inertia;
        Ok(me)
    }
    pub fn is_fitted(&self) -> bool {
        !self.centers.is_empty()
    }
    /// Row-major k x d.
    pub fn centers(&self) -> &[T] {
        &self.centers
    }
    pub fn n_features(&self) -> usize {
        self.d
    }
    /// Labels of the rows of the last fit / partial_fit (empty if compute_labels is off).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
    /// Weighted sum of squared distances of those rows to their centres.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }
    pub fn n_steps(&self) -> usize {
        self.n_steps
    }
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }
    /// Total sample weight each centre has absorbed.
    pub fn counts(&self) -> &[f64] {
        &self.counts
    }

    fn init_size(&self, n: usize) -> usize {
        let k = self.config.n_clusters;
        let mut s = self.config.init_size.unwrap_or(3 * self.config.batch_size);
        if s < k {
            s = 3 * k;
        }
        s.min(n)
    }

    fn gather(x: Data<'_, T>, norms: &[T], w: &[f64], idx: &[usize]) -> (Vec<T>, Vec<T>, Vec<f64>) {
        let mut xs = Vec::with_capacity(idx.len() * x.d);
        for &i in idx {
            xs.extend_from_slice(x.row(i));
        }
        let ns = idx.iter().map(|&i| norms[i]).collect();
        let ws = idx.iter().map(|&i| w[i]).collect();
        (xs, ns, ws)
    }

    fn draw(&mut self, n: usize, size: usize) -> Vec<usize> {
        (0..size)
            .map(|_| self.rng.random_range(0..n as u64) as usize)
            .collect()
    }

    fn init_centers(&mut self, x: Data<'_, T>, norms: &[T], w: &[f64]) -> Vec<T> {
        let n = x.n();
        let k = self.config.n_clusters;
        let d = x.d;
        let init_size = self.init_size(n);
        let sample: Option<(Vec<T>, Vec<T>, Vec<f64>)> = if init_size < n {
            let idx = self.draw(n, init_size);
            Some(Self::gather(x, norms, w, &idx))
        } else {
            None
        };
        let (sx, sn, sw) = match &sample {
            Some((a, b, c)) => (a.as_slice(), b.as_slice(), c.as_slice()),
            None => (x.x, norms, w),
        };
        match &self.config.init {
            Init::Given(c) => c.iter().map(|&v| T::from_f64(v)).collect(),
            Init::Random => random_rows(sx, sw, d, k, &mut self.rng),
            Init::KMeansPlusPlus => plusplus_init(sx, sn, sw, d, k, &mut self.rng),
        }
    }

    fn reset(&mut self, d: usize, centers: Vec<T>, batch_size: usize) {
        self.d = d;
        self.centers = centers;
        self.counts = vec![0.0; self.config.n_clusters];
        self.ewa_inertia = None;
        self.ewa_inertia_min = None;
        self.no_improvement = 0;
        self.since_reassign = 0;
        self.batch_size = batch_size;
        self.n_steps = 0;
        self.n_iter = 0;
    }

    fn check_init_shape(&self, d: usize) -> Result<(), KMeansError> {
        if let Init::Given(c) = &self.config.init {
            if c.len() != self.config.n_clusters * d {
                return Err(KMeansError::Init(format!(
                    "expected shape ({}, {}), got {} values",
                    self.config.n_clusters,
                    d,
                    c.len()
                )));
            }
        }
        Ok(())
    }

    /// Fits from scratch on `x` (row-major, `d` columns), with optional non-negative weights.
    pub fn fit(&mut self, x: &[T], d: usize, weights: Option<&[f64]>) -> Result<(), KMeansError> {
        let data = Data::new(x, d)?;
        let n = data.n();
        let k = self.config.n_clusters;
        if n < k {
            return Err(KMeansError::TooFewSamples { n, k });
        }
        self.check_init_shape(d)?;
        let w = check_weights(weights, n)?;
        let norms = sq_norms(x, d);
        let batch = self.config.batch_size.min(n);
        let tol = if self.config.tol > 0.0 {
            mean_variance(data) * self.config.tol
        } else {
            0.0
        };

        // The candidate inits are scored on a sample of their own.
        let n_init = self.config.effective_n_init();
        let mut best: Option<(Vec<T>, f64)> = None;
        let valid = if n_init > 1 {
            let idx = self.draw(n, self.init_size(n));
            Some(Self::gather(data, &norms, &w, &idx))
        } else {
            None
        };
        for _ in 0..n_init {
            let c = self.init_centers(data, &norms, &w);
            let score = match &valid {
                Some((vx, vn, vw)) => labels_inertia(vx, vn, vw, &c, d).2,
                None => 0.0,
            };
            if best.as_ref().is_none_or(|(_, s)| score < *s) {
                best = Some((c, score));
            }
        }
        let (centers, _) = best.expect("n_init >= 1");
        self.reset(d, centers, batch);

        let n_steps = (self.config.max_iter * n) / batch;
        let mut done = 0;
        for step in 0..n_steps {
            let idx = self.draw(n, batch);
            let (bx, bn, bw) = Self::gather(data, &norms, &w, &idx);
            let reassign = self.random_reassign();
            let old = if tol > 0.0 {
                Some(self.centers.clone())
            } else {
                None
            };
            let batch_inertia = self.step(&bx, &bn, &bw, reassign);
            let shift = match old {
                Some(o) => o
                    .iter()
                    .zip(&self.centers)
                    .map(|(&a, &b)| {
                        let t = a.to_f64() - b.to_f64();
                        t * t
                    })
                    .sum(),
                None => 0.0,
            };
            done = step + 1;
            if self.converged(step, n, tol, shift, batch_inertia) {
                break;
            }
        }
        self.n_steps = done;
        self.n_iter = (done * batch).div_ceil(n);
        if self.config.compute_labels {
            let (labels, _, inertia) = labels_inertia(x, &norms, &w, &self.centers, d);
            self.labels = labels;
            self.inertia = inertia;
        } else {
            self.labels.clear();
            self.inertia = 0.0;
        }
        Ok(())
    }

    /// One mini-batch step on all of `x`; the first call initialises the centres from it.
    pub fn partial_fit(
        &mut self,
        x: &[T],
        d: usize,
        weights: Option<&[f64]>,
    ) -> Result<(), KMeansError> {
        let data = Data::new(x, d)?;
        let n = data.n();
        let w = check_weights(weights, n)?;
        let norms = sq_norms(x, d);
        if !self.is_fitted() {
            let k = self.config.n_clusters;
            if n < k {
                return Err(KMeansError::TooFewSamples { n, k });
            }
            self.check_init_shape(d)?;
            let c = self.init_centers(data, &norms, &w);
            self.reset(d, c, self.config.batch_size.min(n));
        } else if d != self.d {
            return Err(KMeansError::Features {
                expected: self.d,
                found: d,
            });
        }
        self.batch_size = self.config.batch_size.min(n);
        let reassign = self.random_reassign();
        self.step(x, &norms, &w, reassign);
        self.n_steps += 1;
        if self.config.compute_labels {
            let (labels, _, inertia) = labels_inertia(x, &norms, &w, &self.centers, d);
            self.labels = labels;
            self.inertia = inertia;
        }
        Ok(())
    }

    /// Nearest centre of each row, and the weighted inertia.
    pub fn predict(
        &self,
        x: &[T],
        d: usize,
        weights: Option<&[f64]>,
    ) -> Result<(Vec<u32>, f64), KMeansError> {
        if !self.is_fitted() {
            return Err(KMeansError::NotFitted);
        }
        nearest(&self.centers, self.d, x, d, weights)
    }

    fn random_reassign(&mut self) -> bool {
        self.since_reassign += self.batch_size;
        if self.counts.contains(&0.0) || self.since_reassign >= 10 * self.config.n_clusters {
            self.since_reassign = 0;
            true
        } else {
            false
        }
    }

    /// Assigns the batch, moves the centres, reassigns starved ones; returns the batch's
    /// weighted inertia against the centres it started from.
    fn step(&mut self, bx: &[T], bn: &[T], bw: &[f64], reassign: bool) -> f64 {
        let d = self.d;
        let k = self.config.n_clusters;
        let (labels, _, inertia) = labels_inertia(bx, bn, bw, &self.centers, d);

        // Rows of each cluster in batch order (counting sort), so each centre's update sums in a
        // fixed order whichever thread does it.
        let mut start = vec![0usize; k + 1];
        for &l in &labels {
            start[l as usize + 1] += 1;
        }
        for c in 0..k {
            start[c + 1] += start[c];
        }
        let mut order = vec![0usize; labels.len()];
        let mut fill = start.clone();
        for (i, &l) in labels.iter().enumerate() {
            order[fill[l as usize]] = i;
            fill[l as usize] += 1;
        }
        self.centers
            .par_chunks_mut(d)
            .zip(self.counts.par_iter_mut())
            .enumerate()
            .for_each_init(
                || vec![0.0f64; d],
                |acc, (c, (centre, count))| {
                    let members = &order[start[c]..start[c + 1]];
                    let wsum: f64 = members.iter().map(|&i| bw[i]).sum();
                    if wsum <= 0.0 {
                        return;
                    }
                    for (a, &v) in acc.iter_mut().zip(centre.iter()) {
                        *a = v.to_f64() * *count;
                    }
                    for &i in members {
                        let wi = bw[i];
                        for (a, &v) in acc.iter_mut().zip(&bx[i * d..(i + 1) * d]) {
                            *a += wi * v.to_f64();
                        }
                    }
                    *count += wsum;
                    let inv = 1.0 / *count;
                    for (v, &a) in centre.iter_mut().zip(acc.iter()) {
                        *v = T::from_f64(a * inv);
                    }
                },
            );

        if reassign && self.config.reassignment_ratio > 0.0 {
            self.reassign_starved(bx, bw);
        }
        inertia
    }

    fn reassign_starved(&mut self, bx: &[T], bw: &[f64]) {
        let d = self.d;
        let b = bw.len();
        let max = self.counts.iter().cloned().fold(0.0f64, f64::max);
        let limit = self.config.reassignment_ratio * max;
        let mut starved: Vec<bool> = self.counts.iter().map(|&c| c < limit).collect();
        let n_starved = starved.iter().filter(|&&s| s).count();
        let cap = b / 2;
        if n_starved > cap {
            // Too many to refill from one batch: only the `cap` lightest centres move.
            let mut by_count: Vec<usize> = (0..self.counts.len()).collect();
            by_count.sort_by(|&a, &b| self.counts[a].total_cmp(&self.counts[b]));
            for &c in &by_count[cap..] {
                starved[c] = false;
            }
        }
        let targets: Vec<usize> = (0..starved.len()).filter(|&c| starved[c]).collect();
        if targets.is_empty() {
            return;
        }
        let picks = choice_without_replacement(bw, targets.len(), &mut self.rng);
        let floor = self
            .counts
            .iter()
            .zip(&starved)
            .filter(|(_, &s)| !s)
            .map(|(&c, _)| c)
            .fold(f64::INFINITY, f64::min);
        for (&c, &p) in targets.iter().zip(&picks) {
            self.centers[c * d..(c + 1) * d].copy_from_slice(&bx[p * d..(p + 1) * d]);
            // A moved centre starts with the lightest surviving weight, so it can still move.
            self.counts[c] = floor;
        }
    }

    fn converged(
        &mut self,
        step: usize,
        n: usize,
        tol: f64,
        shift: f64,
        batch_inertia: f64,
    ) -> bool {
        let b = self.batch_size as f64;
        let inertia = batch_inertia / b;
        // The first step only measures the initial centres.
        if step == 0 {
            return false;
        }
        let alpha = (b * 2.0 / (n as f64 + 1.0)).min(1.0);
        let ewa = match self.ewa_inertia {
            None => inertia,
            Some(e) => e * (1.0 - alpha) + inertia * alpha,
        };
        self.ewa_inertia = Some(ewa);
        if tol > 0.0 && shift <= tol {
            return true;
        }
        match self.ewa_inertia_min {
            Some(m) if ewa >= m => self.no_improvement += 1,
            _ => {
                self.no_improvement = 0;
                self.ewa_inertia_min = Some(ewa);
            }
        }
        matches!(self.config.max_no_improvement, Some(m) if self.no_improvement >= m)
    }
}

/// Mean over features of the (population) variance, which scales `tol` as scikit-learn does.
fn mean_variance<T: Float>(x: Data<'_, T>) -> f64 {
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

// ---------------------------------------------------------------------------------------------
// Full-batch k-means (Lloyd's algorithm), with the schedule of scikit-learn's `KMeans`.

/// Settings of [`KMeans`], scikit-learn's `KMeans(algorithm="lloyd")` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LloydConfig {
    pub n_clusters: usize,
    pub init: Init,
    /// None: scikit-learn's "auto" (1 for k-means++ and given centres, 10 for random).
    pub n_init: Option<usize>,
    pub max_iter: usize,
    /// Stop when the squared centre shift, summed over centres, is at most `tol` times the mean
    /// feature variance of the data.
    pub tol: f64,
    /// None: seeded from the operating system.
    pub random_state: Option<u64>,
}

impl LloydConfig {
    pub fn new(n_clusters: usize) -> Self {
        LloydConfig {
            n_clusters,
            init: Init::KMeansPlusPlus,
            n_init: None,
            max_iter: 300,
            tol: 1e-4,
            random_state: None,
        }
    }

    pub fn validate(&self) -> Result<(), KMeansError> {
        check_common(
            self.n_clusters,
            self.max_iter,
            self.n_init,
            self.tol,
            &self.init,
        )
    }

    fn effective_n_init(&self) -> usize {
        match (self.n_init, &self.init) {
            (_, Init::Given(_)) => 1,
            (Some(n), _) => n,
            (None, Init::Random) => 10,
            (None, _) => 1,
        }
    }
}

/// Full-batch weighted k-means: every iteration assigns all rows to their nearest centre and
/// moves each centre to the weighted mean of its rows, until the assignment no longer changes,
/// the centres move less than `tol`, or `max_iter` passes. Each of `n_init` starts runs to
/// convergence and the one with the lowest final inertia is kept (scikit-learn's `KMeans`).
/// A centre left without weight is moved onto the row farthest from its own centre.
///
/// The data are centred on their mean before the distances are taken (the expanded form
/// `|x|^2 - 2 x.c + |c|^2` loses less precision near the origin), as scikit-learn does.
#[derive(Debug, Clone)]
pub struct KMeans<T: Float> {
    config: LloydConfig,
    d: usize,
    centers: Vec<T>,
    labels: Vec<u32>,
    inertia: f64,
    n_iter: usize,
}

/// The outcome of one Lloyd run: centres, labels, inertia, iterations.
type LloydRun<T> = (Vec<T>, Vec<u32>, f64, usize);

impl<T: Float> KMeans<T> {
    pub fn new(config: LloydConfig) -> Result<Self, KMeansError> {
        config.validate()?;
        Ok(KMeans {
            config,
            d: 0,
            centers: Vec::new(),
            labels: Vec::new(),
            inertia: 0.0,
            n_iter: 0,
        })
    }

    /// A fitted model from its parts (to unpickle one), checked for consistency.
    pub fn from_parts(
        config: LloydConfig,
        n_features: usize,
        centers: Vec<T>,
        labels: Vec<u32>,
        inertia: f64,
        n_iter: usize,
    ) -> Result<Self, KMeansError> {
        let k = config.n_clusters;
        let bad = |m: &str| Err(KMeansError::Param(format!("inconsistent saved state: {m}")));
        if n_features == 0 || centers.len() != k * n_features {
            return bad("centres do not match n_clusters x n_features");
        }
        if labels.iter().any(|&l| l as usize >= k) {
            return bad("labels out of range");
        }
        let mut me = Self::new(config)?;
        me.d = n_features;
        me.centers = centers;
        me.labels = labels;
        me.inertia = inertia;
        me.n_iter = n_iter;
        Ok(me)
    }

    pub fn config(&self) -> &LloydConfig {
        &self.config
    }
    pub fn is_fitted(&self) -> bool {
        !self.centers.is_empty()
    }
    /// Row-major k x d.
    pub fn centers(&self) -> &[T] {
        &self.centers
    }
    pub fn n_features(&self) -> usize {
        self.d
    }
    /// Labels of the rows of the last fit.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
    /// Weighted sum of squared distances of those rows to their centres.
    pub fn inertia(&self) -> f64 {
        self.inertia
    }
    /// Lloyd iterations of the kept run.
    pub fn n_iter(&self) -> usize {
        self.n_iter
    }

    /// Fits on `x` (row-major, `d` columns), with optional non-negative weights.
    pub fn fit(&mut self, x: &[T], d: usize, weights: Option<&[f64]>) -> Result<(), KMeansError> {
        let data = Data::new(x, d)?;
        let n = data.n();
        let k = self.config.n_clusters;
        if n < k {
            return Err(KMeansError::TooFewSamples { n, k });
        }
        if let Init::Given(c) = &self.config.init {
            if c.len() != k * d {
                return Err(KMeansError::Init(format!(
                    "expected shape ({k}, {d}), got {} values",
                    c.len()
                )));
            }
        }
        let w = check_weights(weights, n)?;
        let tol = mean_variance(data) * self.config.tol;
        let mean = column_means(data);
        let xc: Vec<T> = x
            .chunks_exact(d)
            .flat_map(|r| {
                r.iter()
                    .zip(&mean)
                    .map(|(&v, m)| T::from_f64(v.to_f64() - m))
            })
            .collect();
        let norms = sq_norms(&xc, d);
        let mut rng = match self.config.random_state {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => rand::make_rng(),
        };
        let mut best: Option<LloydRun<T>> = None;
        for _ in 0..self.config.effective_n_init() {
            let start: Vec<T> = match &self.config.init {
                Init::Given(c) => c
                    .chunks_exact(d)
                    .flat_map(|r| r.iter().zip(&mean).map(|(&v, m)| T::from_f64(v - m)))
                    .collect(),
                Init::Random => random_rows(&xc, &w, d, k, &mut rng),
                Init::KMeansPlusPlus => plusplus_init(&xc, &norms, &w, d, k, &mut rng),
            };
            let run = lloyd(&xc, &norms, &w, d, start, self.config.max_iter, tol);
            if best.as_ref().is_none_or(|b| run.2 < b.2) {
                best = Some(run);
            }
        }
        let (centers, labels, inertia, n_iter) = best.expect("n_init >= 1");
        self.d = d;
        self.centers = centers
            .chunks_exact(d)
            .flat_map(|r| {
                r.iter()
                    .zip(&mean)
                    .map(|(&v, m)| T::from_f64(v.to_f64() + m))
            })
            .collect();
        self.labels = labels;
        self.inertia = inertia;
        self.n_iter = n_iter;
        Ok(())
    }

    /// Nearest centre of each row, and the weighted inertia.
    pub fn predict(
        &self,
        x: &[T],
        d: usize,
        weights: Option<&[f64]>,
    ) -> Result<(Vec<u32>, f64), KMeansError> {
        if !self.is_fitted() {
            return Err(KMeansError::NotFitted);
        }
        nearest(&self.centers, self.d, x, d, weights)
    }
}

/// Per-feature means, summed in row order.
fn column_means<T: Float>(x: Data<'_, T>) -> Vec<f64> {
    let mut mean = vec![0.0f64; x.d];
    for i in 0..x.n() {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += v.to_f64();
        }
    }
    let n = x.n() as f64;
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}

/// One Lloyd run from `centers`.
fn lloyd<T: Float>(
    x: &[T],
    norms: &[T],
    w: &[f64],
    d: usize,
    mut centers: Vec<T>,
    max_iter: usize,
    tol: f64,
) -> LloydRun<T> {
    let n = norms.len();
    let mut labels = vec![0u32; n];
    let mut dists = vec![T::default(); n];
    let mut previous: Option<Vec<u32>> = None;
    let mut strict = false;
    let mut iters = 0;
    while iters < max_iter {
        iters += 1;
        let c_norms = sq_norms(&centers, d);
        let centers_t = transpose(&centers, d);
        assign(x, norms, &centers_t, &c_norms, d, &mut labels, &mut dists);
        let moved = weighted_means(x, w, d, &labels, &dists, &centers);
        let shift: f64 = moved
            .iter()
            .zip(&centers)
            .map(|(&a, &b)| {
                let t = a.to_f64() - b.to_f64();
                t * t
            })
            .sum();
        centers = moved;
        if previous.as_deref() == Some(&labels[..]) {
            // Same assignment twice: the centres just recomputed are the ones assigned to.
            strict = true;
            break;
        }
        if shift <= tol {
            break;
        }
        previous = Some(labels.clone());
    }
    if !strict {
        let c_norms = sq_norms(&centers, d);
        let centers_t = transpose(&centers, d);
        assign(x, norms, &centers_t, &c_norms, d, &mut labels, &mut dists);
    }
    let inertia = exact_inertia(x, w, d, &labels, &centers);
    (centers, labels, inertia, iters)
}

/// Weighted sum of squared distances, each taken directly (not in the expanded form), so that
/// the runs of `n_init` are compared without its rounding.
fn exact_inertia<T: Float>(x: &[T], w: &[f64], d: usize, labels: &[u32], centers: &[T]) -> f64 {
    let mut per_block = vec![0.0f64; labels.len().div_ceil(BLOCK_ROWS)];
    per_block
        .par_iter_mut()
        .zip(x.par_chunks(BLOCK_ROWS * d))
        .zip(labels.par_chunks(BLOCK_ROWS))
        .zip(w.par_chunks(BLOCK_ROWS))
        .for_each(|(((out, rows), lab), wb)| {
            *out = rows
                .chunks_exact(d)
                .zip(lab)
                .zip(wb)
                .map(|((r, &l), &wi)| {
                    let c = &centers[l as usize * d..(l as usize + 1) * d];
                    let s: f64 = r
                        .iter()
                        .zip(c)
                        .map(|(&a, &b)| {
                            let t = a.to_f64() - b.to_f64();
                            t * t
                        })
                        .sum();
                    wi * s
                })
                .sum();
        });
    per_block.iter().sum()
}

/// New centres: the weighted mean of each centre's rows. Centres that received no weight take,
/// one each, the rows farthest from their own centre (farthest first, ties to the lower row),
/// which leave the cluster they were in (scikit-learn's relocation of empty clusters).
fn weighted_means<T: Float>(
    x: &[T],
    w: &[f64],
    d: usize,
    labels: &[u32],
    dists: &[T],
    old: &[T],
) -> Vec<T> {
    let k = old.len() / d;
    // Rows of each centre in row order (counting sort), so every sum runs in a fixed order.
    let mut start = vec![0usize; k + 1];
    for &l in labels {
        start[l as usize + 1] += 1;
    }
    for c in 0..k {
        start[c + 1] += start[c];
    }
    let mut order = vec![0usize; labels.len()];
    let mut fill = start.clone();
    for (i, &l) in labels.iter().enumerate() {
        order[fill[l as usize]] = i;
        fill[l as usize] += 1;
    }
    let mut sums = vec![0.0f64; k * d];
    let mut wsum = vec![0.0f64; k];
    sums.par_chunks_mut(d)
        .zip(wsum.par_iter_mut())
        .enumerate()
        .for_each(|(c, (acc, ws))| {
            for &i in &order[start[c]..start[c + 1]] {
                let wi = w[i];
                *ws += wi;
                for (a, &v) in acc.iter_mut().zip(&x[i * d..(i + 1) * d]) {
                    *a += wi * v.to_f64();
                }
            }
        });
    let empty: Vec<usize> = (0..k).filter(|&c| wsum[c] <= 0.0).collect();
    let mut relocated: Vec<Option<usize>> = vec![None; k];
    if !empty.is_empty() {
        let mut far: Vec<usize> = (0..labels.len()).collect();
        far.sort_by(|&a, &b| {
            dists[b]
                .to_f64()
                .total_cmp(&dists[a].to_f64())
                .then(a.cmp(&b))
        });
        for (&c, &r) in empty.iter().zip(&far) {
            let wr = w[r];
            let from = labels[r] as usize;
            let row = &x[r * d..(r + 1) * d];
            for j in 0..d {
                let v = row[j].to_f64() * wr;
                sums[from * d + j] -= v;
                sums[c * d + j] = v;
            }
            wsum[c] = wr;
            wsum[from] -= wr;
            relocated[c] = Some(r);
        }
    }
    let mut out = Vec::with_capacity(k * d);
    for c in 0..k {
        if wsum[c] > 0.0 {
            let inv = 1.0 / wsum[c];
            out.extend(
                sums[c * d..(c + 1) * d]
                    .iter()
                    .map(|&s| T::from_f64(s * inv)),
            );
        } else if let Some(r) = relocated[c] {
            // It took a row of weight 0: the centre sits on that row.
            out.extend_from_slice(&x[r * d..(r + 1) * d]);
        } else {
            // Its only weight went to a relocated centre: it stays put for this iteration.
            out.extend_from_slice(&old[c * d..(c + 1) * d]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per` points around each of `centres`, uniform noise of half-width `spread`.
    fn blobs(centres: &[Vec<f64>], per: usize, spread: f64, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::new();
        let mut truth = Vec::new();
        for i in 0..per * centres.len() {
            let c = i % centres.len();
            for &v in &centres[c] {
                x.push(v + (rng.random::<f64>() - 0.5) * 2.0 * spread);
            }
            truth.push(c);
        }
        (x, truth)
    }

    fn grid_centres(k: usize, d: usize) -> Vec<Vec<f64>> {
        (0..k)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        if j == i % d {
                            10.0 * (1 + i / d) as f64
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Same partition up to renaming of the labels.
    fn same_partition(a: &[u32], b: &[usize]) -> bool {
        let mut map = std::collections::HashMap::new();
        let mut back = std::collections::HashMap::new();
        a.iter()
            .zip(b)
            .all(|(&x, &y)| *map.entry(x).or_insert(y) == y && *back.entry(y).or_insert(x) == x)
    }

    fn config(k: usize, seed: u64) -> KMeansConfig {
        KMeansConfig {
            random_state: Some(seed),
            batch_size: 64,
            ..KMeansConfig::new(k)
        }
    }

    #[test]
    fn kmeans_recovers_separated_blobs() {
        let (x, truth) = blobs(&grid_centres(6, 5), 200, 1.0, 1);
        for seed in 0..5 {
            let mut m = MiniBatchKMeans::<f64>::new(config(6, seed)).unwrap();
            m.fit(&x, 5, None).unwrap();
            assert!(same_partition(m.labels(), &truth), "seed {seed}");
            assert!(m.n_steps() >= 2);
        }
    }

    #[test]
    fn kmeans_f32_matches_f64_partition() {
        let (x, truth) = blobs(&grid_centres(4, 3), 100, 1.0, 2);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let mut m = MiniBatchKMeans::<f32>::new(config(4, 0)).unwrap();
        m.fit(&x32, 3, None).unwrap();
        assert!(same_partition(m.labels(), &truth));
        let (p, inertia) = m.predict(&x32, 3, None).unwrap();
        assert_eq!(p, m.labels());
        assert!((inertia - m.inertia()).abs() < 1e-6 * inertia.max(1.0));
    }

    #[test]
    fn kmeans_deterministic_for_a_seed() {
        let (x, _) = blobs(&grid_centres(8, 4), 150, 4.0, 3);
        let run = |seed| {
            let mut m = MiniBatchKMeans::<f64>::new(config(8, seed)).unwrap();
            m.fit(&x, 4, None).unwrap();
            (m.centers().to_vec(), m.labels().to_vec(), m.n_steps())
        };
        assert_eq!(run(7), run(7));
        // The same seed must also not depend on how many threads rayon has.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(pool.install(|| run(7)), run(7));
        assert_ne!(run(7).0, run(8).0);
    }

    #[test]
    fn kmeans_weights_pull_a_centre() {
        // One partial_fit step from fresh counts puts a lone centre on the weighted mean exactly.
        let x: Vec<f64> = vec![0.0, 1.0, 2.0, 10.0];
        let centre = |w: &[f64]| {
            let mut m = MiniBatchKMeans::<f64>::new(config(1, 0)).unwrap();
            m.partial_fit(&x, 1, Some(w)).unwrap();
            (m.centers()[0], m.inertia())
        };
        assert!((centre(&[1.0; 4]).0 - 3.25).abs() < 1e-12);
        let (heavy, _) = centre(&[1.0, 1.0, 1.0, 100.0]);
        assert!((heavy - 1003.0 / 103.0).abs() < 1e-12, "{heavy}");
        // Zero weight: the point does not count at all, neither in the centre nor the inertia.
        let (c, inertia) = centre(&[1.0, 1.0, 1.0, 0.0]);
        assert!((c - 1.0).abs() < 1e-12 && (inertia - 2.0).abs() < 1e-12);
        // Through fit (sampled batches) a heavy point still drags the centre most of the way.
        let mut m = MiniBatchKMeans::<f64>::new(config(1, 0)).unwrap();
        m.fit(&x, 1, Some(&[1.0, 1.0, 1.0, 100.0])).unwrap();
        assert!(m.centers()[0] > 8.0, "{}", m.centers()[0]);
        m.fit(&x, 1, Some(&[1.0, 1.0, 1.0, 0.0])).unwrap();
        assert!(m.centers()[0] <= 2.0);
    }

    #[test]
    fn kmeans_weights_equal_repetition() {
        // Weight 3 on a row behaves like the row three times (same partition, same centres).
        let (x, truth) = blobs(&grid_centres(3, 2), 50, 1.0, 4);
        let w: Vec<f64> = (0..truth.len()).map(|i| 1.0 + (i % 3) as f64).collect();
        let mut m = MiniBatchKMeans::<f64>::new(config(3, 1)).unwrap();
        m.fit(&x, 2, Some(&w)).unwrap();
        assert!(same_partition(m.labels(), &truth));
        let expect: f64 = (0..truth.len())
            .map(|i| {
                let c = &m.centers()[m.labels()[i] as usize * 2..][..2];
                w[i] * ((x[2 * i] - c[0]).powi(2) + (x[2 * i + 1] - c[1]).powi(2))
            })
            .sum();
        assert!((m.inertia() - expect).abs() < 1e-6 * expect);
    }

    #[test]
    fn kmeans_errors() {
        let mut m = MiniBatchKMeans::<f64>::new(config(3, 0)).unwrap();
        assert_eq!(m.fit(&[], 2, None), Err(KMeansError::Empty));
        assert_eq!(
            m.fit(&[0.0, 1.0, 2.0, 3.0], 2, None),
            Err(KMeansError::TooFewSamples { n: 2, k: 3 })
        );
        assert_eq!(
            m.fit(&[0.0, 1.0, 2.0, f64::NAN, 4.0, 5.0], 2, None),
            Err(KMeansError::NotFinite { row: 1, col: 1 })
        );
        assert_eq!(
            m.fit(&[0.0, 1.0, f64::INFINITY], 1, None),
            Err(KMeansError::NotFinite { row: 2, col: 0 })
        );
        assert!(matches!(
            m.fit(&[0.0, 1.0, 2.0], 1, Some(&[1.0, -1.0, 1.0])),
            Err(KMeansError::Weights(_))
        ));
        assert_eq!(m.predict(&[0.0], 1, None), Err(KMeansError::NotFitted));
        assert!(MiniBatchKMeans::<f64>::new(KMeansConfig::new(0)).is_err());
        m.fit(&[0.0, 1.0, 2.0], 1, None).unwrap();
        assert_eq!(
            m.predict(&[0.0, 1.0], 2, None),
            Err(KMeansError::Features {
                expected: 1,
                found: 2
            })
        );
    }

    #[test]
    fn kmeans_k_equals_n_and_duplicates() {
        // k == n: every point its own centre, inertia 0.
        // (No reassignment: it may legitimately move a centre onto an occupied point.)
        let x = vec![0.0, 5.0, 9.0];
        let mut cfg = config(3, 0);
        cfg.reassignment_ratio = 0.0;
        let mut m = MiniBatchKMeans::<f64>::new(cfg).unwrap();
        m.fit(&x, 1, None).unwrap();
        assert!(m.inertia() < 1e-12);
        // Fewer distinct points than k still gives k finite centres.
        let x = vec![1.0; 10];
        let mut m = MiniBatchKMeans::<f64>::new(config(3, 0)).unwrap();
        m.fit(&x, 1, None).unwrap();
        assert!(m.centers().iter().all(|v| v.is_finite()));
        assert!(m.inertia() < 1e-12);
    }

    #[test]
    fn kmeans_partial_fit_converges() {
        let (x, truth) = blobs(&grid_centres(4, 4), 100, 1.0, 5);
        let mut m = MiniBatchKMeans::<f64>::new(config(4, 3)).unwrap();
        for _ in 0..20 {
            for chunk in x.chunks(4 * 100) {
                m.partial_fit(chunk, 4, None).unwrap();
            }
        }
        assert_eq!(m.n_steps(), 80);
        let (labels, _) = m.predict(&x, 4, None).unwrap();
        assert!(same_partition(&labels, &truth));
    }

    #[test]
    fn kmeans_reassigns_starved_centres() {
        // Two centres given far from the data never win a point; reassignment must move them
        // onto it, after which every centre is fed.
        let (x, _) = blobs(&grid_centres(3, 2), 100, 0.5, 6);
        let mut cfg = config(3, 0);
        cfg.init = Init::Given(vec![10.0, 0.0, 1000.0, 1000.0, -1000.0, -1000.0]);
        let mut m = MiniBatchKMeans::<f64>::new(cfg.clone()).unwrap();
        m.fit(&x, 2, None).unwrap();
        assert!(
            m.centers().iter().all(|v| v.abs() < 30.0),
            "{:?}",
            m.centers()
        );
        assert!(m.counts().iter().all(|&c| c > 0.0));
        // Without reassignment they stay where they were put.
        cfg.reassignment_ratio = 0.0;
        let mut m = MiniBatchKMeans::<f64>::new(cfg).unwrap();
        m.fit(&x, 2, None).unwrap();
        assert_eq!(&m.centers()[2..], &[1000.0, 1000.0, -1000.0, -1000.0]);
    }

    #[test]
    fn kmeans_state_round_trip_continues_identically() {
        let (x, _) = blobs(&grid_centres(4, 3), 100, 2.0, 8);
        let mut a = MiniBatchKMeans::<f32>::new(config(4, 5)).unwrap();
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        a.partial_fit(&x32[..600], 3, None).unwrap();
        let mut b = MiniBatchKMeans::from_state(a.config().clone(), a.state().unwrap()).unwrap();
        a.partial_fit(&x32[600..], 3, None).unwrap();
        b.partial_fit(&x32[600..], 3, None).unwrap();
        assert_eq!(a.state(), b.state());
        let mut s = a.state().unwrap();
        s.counts.pop();
        assert!(MiniBatchKMeans::from_state(a.config().clone(), s).is_err());
    }

    #[test]
    fn kmeans_zero_weight_rows_never_become_centres() {
        let mut x = vec![0.0, 100.0, 200.0];
        x.extend(std::iter::repeat_n(50.0, 50));
        let mut w = vec![1.0; 3];
        w.extend(std::iter::repeat_n(0.0, 50));
        for init in [Init::Random, Init::KMeansPlusPlus] {
            for seed in 0..5 {
                let mut cfg = config(3, seed);
                cfg.init = init.clone();
                // (Reassignment could legitimately stack two centres when a batch misses a row.)
                cfg.reassignment_ratio = 0.0;
                let mut m = MiniBatchKMeans::<f64>::new(cfg).unwrap();
                m.fit(&x, 1, Some(&w)).unwrap();
                let mut c = m.centers().to_vec();
                c.sort_by(f64::total_cmp);
                assert_eq!(c, vec![0.0, 100.0, 200.0], "{init:?} seed {seed}");
            }
        }
    }

    #[test]
    fn kmeans_tol_stops_early() {
        let (x, _) = blobs(&grid_centres(3, 2), 200, 1.0, 7);
        let mut cfg = config(3, 0);
        cfg.max_no_improvement = None;
        cfg.max_iter = 50;
        let mut m = MiniBatchKMeans::<f64>::new(cfg.clone()).unwrap();
        m.fit(&x, 2, None).unwrap();
        assert_eq!(m.n_steps(), 50 * 600 / 64);
        cfg.tol = 1e-3;
        let mut m = MiniBatchKMeans::<f64>::new(cfg).unwrap();
        m.fit(&x, 2, None).unwrap();
        assert!(m.n_steps() < 50 * 600 / 64);
    }

    fn lloyd_config(k: usize, seed: u64) -> LloydConfig {
        LloydConfig {
            random_state: Some(seed),
            ..LloydConfig::new(k)
        }
    }

    #[test]
    fn lloyd_recovers_separated_blobs() {
        let (x, truth) = blobs(&grid_centres(6, 5), 100, 1.0, 11);
        for seed in 0..5 {
            let mut m = KMeans::<f64>::new(lloyd_config(6, seed)).unwrap();
            m.fit(&x, 5, None).unwrap();
            assert!(same_partition(m.labels(), &truth), "seed {seed}");
            let (pred, inertia) = m.predict(&x, 5, None).unwrap();
            assert_eq!(pred, m.labels());
            assert!((inertia - m.inertia()).abs() <= 1e-9 * inertia);
        }
    }

    #[test]
    fn lloyd_centres_are_weighted_means_and_weights_act_as_repetition() {
        // From the same given start, integer weights and repeated rows give the same centres.
        let (x, _) = blobs(&grid_centres(3, 2), 40, 2.0, 12);
        let w: Vec<f64> = (0..x.len() / 2).map(|i| (1 + i % 3) as f64).collect();
        let mut rep = Vec::new();
        for (row, &wi) in x.chunks_exact(2).zip(&w) {
            for _ in 0..wi as usize {
                rep.extend_from_slice(row);
            }
        }
        let mut cfg = lloyd_config(3, 0);
        cfg.init = Init::Given(x[..6].to_vec());
        let mut a = KMeans::<f64>::new(cfg.clone()).unwrap();
        a.fit(&x, 2, Some(&w)).unwrap();
        let mut b = KMeans::<f64>::new(cfg).unwrap();
        b.fit(&rep, 2, None).unwrap();
        for (p, q) in a.centers().iter().zip(b.centers()) {
            assert!((p - q).abs() < 1e-9);
        }
        assert!((a.inertia() - b.inertia()).abs() < 1e-9 * a.inertia());
        // Each centre is the weighted mean of its rows.
        for c in 0..3 {
            let (mut s, mut ws) = ([0.0; 2], 0.0);
            for (i, row) in x.chunks_exact(2).enumerate() {
                if a.labels()[i] as usize == c {
                    s[0] += w[i] * row[0];
                    s[1] += w[i] * row[1];
                    ws += w[i];
                }
            }
            assert!((a.centers()[2 * c] - s[0] / ws).abs() < 1e-9);
            assert!((a.centers()[2 * c + 1] - s[1] / ws).abs() < 1e-9);
        }
    }

    #[test]
    fn lloyd_relocates_empty_centres() {
        // Two centres start far from all rows and win none: each takes the row farthest from its
        // centre, and the fit ends with every cluster used, every centre among the data.
        // (tests/test_kmeans.py holds the relocation to scikit-learn's, row for row.)
        let (x, _) = blobs(&grid_centres(4, 2), 50, 0.5, 13);
        let mut cfg = lloyd_config(4, 0);
        let mut start = x[..4].to_vec();
        start.extend_from_slice(&[1e4, 1e4, -1e4, -1e4]);
        cfg.init = Init::Given(start);
        let mut m = KMeans::<f64>::new(cfg).unwrap();
        m.fit(&x, 2, None).unwrap();
        let used: std::collections::HashSet<u32> = m.labels().iter().copied().collect();
        assert_eq!(used.len(), 4);
        assert!(m.centers().iter().all(|v| v.abs() < 100.0));
    }

    #[test]
    fn lloyd_keeps_the_best_start_and_is_deterministic() {
        let (x, _) = blobs(&grid_centres(8, 3), 30, 6.0, 14);
        for seed in 0..4 {
            let mut one = KMeans::<f32>::new(lloyd_config(8, seed)).unwrap();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            one.fit(&xf, 3, None).unwrap();
            let mut cfg = lloyd_config(8, seed);
            cfg.n_init = Some(6);
            let mut six = KMeans::<f32>::new(cfg.clone()).unwrap();
            six.fit(&xf, 3, None).unwrap();
            // The first of six starts is the single start: the best of six is no worse.
            assert!(six.inertia() <= one.inertia());
            let mut again = KMeans::<f32>::new(cfg).unwrap();
            again.fit(&xf, 3, None).unwrap();
            assert_eq!(again.centers(), six.centers());
            assert_eq!(again.labels(), six.labels());
        }
    }

    #[test]
    fn lloyd_errors() {
        let x = vec![0.0, 1.0, 2.0];
        assert!(matches!(
            KMeans::<f64>::new(lloyd_config(4, 0))
                .unwrap()
                .fit(&x, 1, None),
            Err(KMeansError::TooFewSamples { n: 3, k: 4 })
        ));
        assert!(matches!(
            KMeans::<f64>::new(lloyd_config(2, 0))
                .unwrap()
                .fit(&[0.0, f64::NAN, 1.0], 1, None),
            Err(KMeansError::NotFinite { row: 1, col: 0 })
        ));
        let mut cfg = lloyd_config(2, 0);
        cfg.n_init = Some(0);
        assert!(matches!(
            KMeans::<f64>::new(cfg),
            Err(KMeansError::Param(_))
        ));
        let mut cfg = lloyd_config(2, 0);
        cfg.init = Init::Given(vec![0.0; 3]);
        // refused when built (as MiniBatchKMeans does) or at the latest when fitted
        assert!(matches!(
            KMeans::<f64>::new(cfg).and_then(|mut k| k.fit(&x, 1, None)),
            Err(KMeansError::Init(_))
        ));
        assert!(matches!(
            KMeans::<f64>::new(lloyd_config(2, 0))
                .unwrap()
                .predict(&x, 1, None),
            Err(KMeansError::NotFitted)
        ));
        // k == n: every row its own centre.
        let mut m = KMeans::<f64>::new(lloyd_config(3, 0)).unwrap();
        m.fit(&x, 1, None).unwrap();
        assert!(m.inertia() < 1e-12);
    }
}
