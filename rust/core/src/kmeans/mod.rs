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
//!
//! Also full-batch (Lloyd) k-means with scikit-learn's `KMeans` schedule. The modules, each
//! using only those after it: `minibatch`, `lloyd`, `init`, `common`. A fitted model's state
//! (`KMeansState`, `LloydState`) is plain data that serde can save and load.

pub mod common;
pub mod init;
pub mod lloyd;
pub mod minibatch;

pub use common::{Float, Init, KMeansError};
pub use lloyd::{KMeans, LloydConfig, LloydState};
pub use minibatch::{KMeansConfig, KMeansState, MiniBatchKMeans};

#[cfg(test)]
mod tests;
