//! Initial centres: given, random rows, or greedy weighted k-means++.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::common::*;

/// Greedy weighted k-means++ over the rows of `x` (already the init sample).
pub(super) fn kmeans_plusplus<T: Float>(
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
pub(super) fn choice_without_replacement(w: &[f64], r: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
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
pub(super) fn random_rows<T: Float>(
    x: &[T],
    w: &[f64],
    d: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<T> {
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
pub(super) fn plusplus_init<T: Float>(
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
