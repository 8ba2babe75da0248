//! Mini-batch k-means with scikit-learn's `MiniBatchKMeans` schedule (see the module above).

use std::fmt::Debug;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use serde::{Deserialize, Serialize};

use super::common::*;
use super::init::*;

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

/// Everything a fitted model holds beyond its configuration, to save it and rebuild it exactly
/// (the random stream included, so that partial_fit continues as it would have).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
