"""Agreement of the value tree with the published one, on the 3,307 published values.

    python benches/taxonomy_agreement.py [--seeds 5] [--embedder minilm] [--top-level SEEDS]

Each value weighs as many conversations as its published frequency implies (pct_convos x
308,210). The tree is built bottom-up (266 -> 26 -> 5) by valuescope's Rust k-means (the
default: full-batch Lloyd k-means on levels of up to 4,096 points, i.e. on all three here),
unweighted and weighted by conversation counts; by the Rust mini-batch k-means on every level (the
previous default); and by scikit-learn's KMeans in the same scheme with the same number of
restarts per level (``taxonomy.restarts``). Seed s seeds level L with s + L in every tree. A
random tree with the published cluster sizes gives the floor. Reported: NMI and ARI per level
against the published level-1/2/3 assignments, mean +- standard deviation over the seeds.

``--top-level SEEDS`` instead isolates the top level: levels 1-2 are built once per seed
(0..SEEDS-1) with the default, then their 26 centroids are clustered into 5 by each k-means with
1 and 10 starts (restart seeds 100..119), and the weighted inertia reached and the level-3 NMI
are reported, means over all of those fits.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from valuescope import KMeans as VsKMeans
from valuescope import MiniBatchKMeans
from valuescope.taxonomy import tree as tx
from valuescope.taxonomy.embeddings import make_embedder

DATA = Path(__file__).resolve().parents[1] / "python" / "valuescope" / "data"


def published() -> tuple[list[str], list[int], dict[int, list[str]]]:
    rows = list(csv.DictReader((DATA / "values_tree.csv").open(encoding="utf-8")))
    by_id = {r["cluster_id"]: r for r in rows}
    leaves = [r for r in rows if r["level"] == "0"]
    freq = {r["value"]: float(r["pct_convos"]) for r in csv.DictReader(
        (DATA / "values_frequencies.csv").open(encoding="utf-8"))}  # fmt: skip

    def up(r: dict, level: int) -> str:
        while int(r["level"]) < level:
            r = by_id[r["parent_cluster_id"]]
        return r["cluster_id"]

    values = [r["cluster_id"] for r in leaves]
    counts = [max(1, round(freq[v] * 308_210 / 100)) for v in values]
    return values, counts, {lv: [up(r, lv) for r in leaves] for lv in (1, 2, 3)}


def scores(
    paths: dict[str, list[str]], values: list[str], truth: dict
) -> list[tuple[float, float]]:
    out = []
    for lv in (1, 2, 3):
        pred = [paths[v][lv - 1] for v in values]
        out.append((normalized_mutual_info_score(truth[lv], pred),
                    adjusted_rand_score(truth[lv], pred)))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--top-level", type=int, default=0, metavar="SEEDS")
    args = ap.parse_args()
    values, counts, truth = published()
    x = make_embedder(args.embedder).embed(values)
    if args.top_level:
        top_level(values, counts, truth, x, args.top_level)
        return
    rust = tx.kmeans_labels

    def sklearn_labels(x, k, w, seed):  # type: ignore[no-untyped-def]
        km = KMeans(k, n_init=tx.restarts(len(x)), random_state=seed)
        return km.fit(x, sample_weight=w).labels_

    def minibatch_labels(x, k, w, seed):  # type: ignore[no-untyped-def]
        km = MiniBatchKMeans(
            n_clusters=k,
            batch_size=min(len(x), 4096),
            n_init=tx.restarts(len(x)),
            max_iter=300,
            random_state=seed,
        )
        km.fit(np.ascontiguousarray(x, dtype=np.float32), sample_weight=w)
        return np.unique(km.labels_, return_inverse=True)[1]

    results: dict[str, list[list[tuple[float, float]]]] = {}
    for seed in range(args.seeds):
        for name, fn, weighted in (
            ("valuescope (Rust), unweighted (default)", rust, False),
            ("valuescope (Rust), weighted by conversation counts", rust, True),
            (
                "valuescope mini-batch on every level, unweighted (previous default)",
                minibatch_labels,
                False,
            ),
            ("scikit-learn KMeans, unweighted, same scheme", sklearn_labels, False),
        ):
            tx.kmeans_labels = fn
            nodes = tx.build_tree(values, counts, x, [266, 26, 5], weighted=weighted, seed=seed)
            results.setdefault(name, []).append(scores(tx.leaf_paths(nodes), values, truth))
        rng = np.random.default_rng(seed)
        shuffled = {lv: list(rng.permutation(truth[lv])) for lv in (1, 2, 3)}
        paths = {v: [shuffled[lv][i] for lv in (1, 2, 3)] for i, v in enumerate(values)}
        results.setdefault("random (published sizes)", []).append(scores(paths, values, truth))
    tx.kmeans_labels = rust
    print(
        f"| tree ({args.seeds} seeds, mean ± sd) "
        "| L1 NMI | L1 ARI | L2 NMI | L2 ARI | L3 NMI | L3 ARI |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        cells = []
        for lv in range(3):
            for m in (0, 1):
                xs = [r[lv][m] for r in runs]
                sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
                cells.append(f"{statistics.mean(xs):.3f} ± {sd:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    ours = results["valuescope (Rust), unweighted (default)"]
    theirs = results["scikit-learn KMeans, unweighted, same scheme"]
    # The two trees share seeds, not random streams: their runs are independent samples.
    print("\nNMI, valuescope minus scikit-learn (difference of means ± its standard error):")
    for lv in range(3 if args.seeds > 1 else 0):
        a = [r[lv][0] for r in ours]
        b = [r[lv][0] for r in theirs]
        se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
        print(f"  L{lv + 1}: {statistics.mean(a) - statistics.mean(b):+.4f} ± {se:.4f}")


def weighted_inertia(c: np.ndarray, votes: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for j in np.unique(labels):
        m = labels == j
        mu = np.average(c[m].astype(np.float64), axis=0, weights=votes[m])
        total += float((votes[m] * ((c[m] - mu) ** 2).sum(1)).sum())
    return total


def top_level(values: list[str], counts: list[int], truth: dict, x: np.ndarray, seeds: int) -> None:
    index = {v: i for i, v in enumerate(values)}
    fits: dict[str, list[tuple[float, float]]] = {}
    for seed in range(seeds):
        nodes = tx.build_tree(values, counts, x, [266, 26], seed=seed)
        level2 = [n for n in nodes if n.level == 2]
        c = np.stack([n.centroid for n in level2]).astype(np.float32)
        votes = np.array([len(n.members) for n in level2], dtype=np.float64)
        rows = [[index[m] for m in n.members] for n in level2]
        for n_init in (1, 10):
            for r in range(100, 120):
                for name, km in (
                    (
                        "valuescope KMeans (Lloyd; default)",
                        VsKMeans(5, n_init=n_init, random_state=r),
                    ),
                    (
                        "valuescope MiniBatchKMeans (previous default)",
                        MiniBatchKMeans(
                            5, batch_size=len(c), n_init=n_init, max_iter=300, random_state=r
                        ),
                    ),
                    ("scikit-learn KMeans", KMeans(5, n_init=n_init, random_state=r)),
                ):
                    labels = np.asarray(km.fit(c, sample_weight=votes).labels_)
                    pred = np.empty(len(values), dtype=np.int64)
                    for idx, lab in zip(rows, labels, strict=True):
                        pred[idx] = lab
                    fits.setdefault(f"{name}, n_init={n_init}", []).append(
                        (
                            weighted_inertia(c, votes, labels),
                            normalized_mutual_info_score(truth[3], pred),
                        )
                    )
    print(f"| top level, 26 -> 5 ({seeds} trees x 20 restart seeds) | inertia | L3 NMI |")
    print("|---|---|---|")
    for name, rows in sorted(fits.items(), key=lambda kv: kv[0].split(", ")[1]):
        a = np.array(rows)
        print(
            f"| {name} | {a[:, 0].mean():.1f} | {a[:, 1].mean():.3f} ± {a[:, 1].std(ddof=1):.3f} |"
        )


if __name__ == "__main__":
    main()
