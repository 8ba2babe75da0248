//! Full-batch k-means (Lloyd's algorithm), with the schedule of scikit-learn's `KMeans`.

use std::fmt::Debug;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::common::*;
use super::init::*;

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

/// What a fitted [`KMeans`] holds beyond its configuration, to save it and rebuild it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LloydState<T> {
    pub n_features: usize,
    pub centers: Vec<T>,
    pub labels: Vec<u32>,
    pub inertia: f64,
    pub n_iter: usize,
}

/// The outcome of one Lloyd run: centres, labels, inertia, iterations.
pub(super) type LloydRun<T> = (Vec<T>, Vec<u32>, f64, usize);

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

    /// A fitted model from its saved state, checked for consistency.
    pub fn from_state(config: LloydConfig, s: LloydState<T>) -> Result<Self, KMeansError> {
        let k = config.n_clusters;
        let bad = |m: &str| Err(KMeansError::Param(format!("inconsistent saved state: {m}")));
        if s.n_features == 0 || s.centers.len() != k * s.n_features {
            return bad("centres do not match n_clusters x n_features");
        }
        if s.labels.iter().any(|&l| l as usize >= k) {
            return bad("labels out of range");
        }
        let mut me = Self::new(config)?;
        me.d = s.n_features;
        me.centers = s.centers;
        me.labels = s.labels;
        me.inertia = s.inertia;
        me.n_iter = s.n_iter;
        Ok(me)
    }

    /// Everything a fitted model holds beyond its configuration; None before `fit`.
    pub fn state(&self) -> Option<LloydState<T>> {
        self.is_fitted().then(|| LloydState {
            n_features: self.d,
            centers: self.centers.clone(),
            labels: self.labels.clone(),
            inertia: self.inertia,
            n_iter: self.n_iter,
        })
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
pub(super) fn column_means<T: Float>(x: Data<'_, T>) -> Vec<f64> {
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
pub(super) fn lloyd<T: Float>(
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
pub(super) fn exact_inertia<T: Float>(
    x: &[T],
    w: &[f64],
    d: usize,
    labels: &[u32],
    centers: &[T],
) -> f64 {
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
pub(super) fn weighted_means<T: Float>(
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
