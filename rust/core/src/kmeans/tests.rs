use super::common::*;
use super::lloyd::*;
use super::minibatch::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
