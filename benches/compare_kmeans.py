"""valuescope.MiniBatchKMeans against scikit-learn's, fit time and inertia, same settings.

    python benches/compare_kmeans.py                       # the default cases below
    python benches/compare_kmeans.py --case 200000x384:500 --seeds 3
    python benches/compare_kmeans.py --threads 1     # both on one core (rayon and OpenMP/BLAS)

Data: unit-normalised points around random directions (embedding-like, float32). Both sides get
batch_size=1024, n_init=1, the same max_iter / max_no_improvement defaults and the same seeds
(different random streams, so step counts differ); each fit is timed once per seed, the two
libraries alternating so that load on the machine hits both alike. Reported: median fit seconds,
their ratio (sklearn / ours, > 1 means ours is faster), and the ratio of mean inertias
(ours / sklearn, < 1 means ours found tighter clusters).

Measured here (2 shared cores, AMD EPYC with AVX-512, load average 6-12 from other work;
scikit-learn 1.9.1 with OpenBLAS's Haswell kernels; 3 seeds, 1 for 1M):

    --threads 1            ours      sklearn    speedup  inertia ours/sklearn
    3300x384, k=266        0.222s     0.773s     3.48x    0.9995
    100000x384, k=50       0.407s     0.790s     1.94x    1.0004
    200000x384, k=500      1.714s     3.601s     2.10x    0.9891
    1000000x384, k=1000   32.2s      91.9s       2.85x    0.9952

With both cores (the default) scikit-learn's OpenMP threads slowed it 10-50x on this loaded
machine (e.g. 200000x384, k=500: ours 1.58s, sklearn 35.3s), so the one-thread figures are the
fair ones here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

DEFAULT_CASES = ["3300x384:266", "100000x384:50", "200000x384:500"]


def embedding_like(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((max(8, n // 200), d), dtype=np.float32)
    x = topics[rng.integers(0, len(topics), n)]
    x += rng.standard_normal((n, d), dtype=np.float32) * 0.6
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def run(case: str, seeds: int) -> dict[str, float]:
    from sklearn.cluster import MiniBatchKMeans as Sk
    from valuescope import MiniBatchKMeans as Ours

    shape, k = case.split(":")
    n, d = (int(v) for v in shape.split("x"))
    x = embedding_like(n, d)
    ours_t, sk_t, ours_i, sk_i, ours_s, sk_s = [], [], [], [], [], []
    for s in range(seeds):
        t = time.perf_counter()
        m = Ours(int(k), batch_size=1024, n_init=1, random_state=s).fit(x)
        ours_t.append(time.perf_counter() - t)
        ours_i.append(m.inertia_)
        ours_s.append(m.n_steps_)
        t = time.perf_counter()
        m = Sk(int(k), batch_size=1024, n_init=1, random_state=s).fit(x)
        sk_t.append(time.perf_counter() - t)
        sk_i.append(m.inertia_)
        sk_s.append(m.n_steps_)
    out = {
        "ours_s": statistics.median(ours_t),
        "sklearn_s": statistics.median(sk_t),
        "inertia_ratio": statistics.mean(ours_i) / statistics.mean(sk_i),
        "ours_steps": statistics.mean(ours_s),
        "sklearn_steps": statistics.mean(sk_s),
    }
    out["speedup"] = out["sklearn_s"] / out["ours_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", help="NxD:K (repeatable)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, help="limit both sides to this many threads (default: all cores)"
    )
    args = ap.parse_args()
    if args.threads:
        # Read by rayon when its pool first starts, so before valuescope does any work.
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    import sklearn
    import threadpoolctl

    blas = [i.get("architecture") for i in threadpoolctl.threadpool_info()]
    print(
        f"scikit-learn {sklearn.__version__}; threadpools: {blas}; threads: "
        f"{args.threads or os.cpu_count()}; load average {os.getloadavg()[0]:.1f}"
    )
    for case in args.case or DEFAULT_CASES:
        with threadpoolctl.threadpool_limits(args.threads):
            r = run(case, args.seeds)
        print(
            f"{case:>18}  ours {r['ours_s']:7.3f}s ({r['ours_steps']:.0f} steps)  "
            f"sklearn {r['sklearn_s']:7.3f}s ({r['sklearn_steps']:.0f} steps)  "
            f"speedup {r['speedup']:5.2f}x  inertia ours/sklearn {r['inertia_ratio']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
