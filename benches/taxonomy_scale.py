"""The taxonomy stage at paper scale: a synthetic corpus with free-text tasks (planted categories
kept apart), through ``valuescope taxonomy``, per task embedder.

    python benches/taxonomy_scale.py                        # 308,210 conversations, minilm-static
    python benches/taxonomy_scale.py --n 20000 --task-embedders minilm,minilm-static

Each run is its own process (peak RSS is that process's), with a fresh, empty embedding cache
unless ``--warm`` (so the times include embedding the values and building the static token
table). Reported per run: wall time per stage (embedding values, embedding tasks, clustering values
and tasks, naming task clusters, reading the input and writing the outputs), the whole
``run_taxonomy`` call, peak RSS, and the task clusters against the planted categories: NMI
(scikit-learn) and Clio's reconstruction accuracy, the share of conversations whose task
cluster's majority category is their own (a conversation left without a cluster counts as a
cluster of its own kind: "none").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

N_PAPER = 308_210
STAGES = (
    "read values",
    "embed values",
    "cluster values",
    "read tasks",
    "embed tasks",
    "cluster tasks",
    "name tasks",
    "write",
)


def child(args: argparse.Namespace) -> None:
    """One taxonomy run; prints a JSON line with the stage times."""
    from valuescope.taxonomy.options import TaxonomyOptions
    from valuescope.taxonomy.run import run_taxonomy

    stages: dict[str, float] = {}
    opts = TaxonomyOptions(
        levels=args.levels,
        embedder=args.embedder,
        task_embedder=args.task_embedder,
        cache_dir=Path(args.cache),
        seed=args.seed,
    )
    t0 = time.perf_counter()
    s = run_taxonomy([args.corpus], args.out, opts, stages=stages)
    wall = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "wall": wall,
                "stages": stages,
                "n_task_clusters": s.n_task_clusters,
                "levels": s.levels,
                "n_values": s.n_values,
            }
        )
    )


def reconstruction(out: Path, truth_csv: Path) -> dict[str, float]:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    from sklearn.metrics import normalized_mutual_info_score

    got = pq.read_table(
        out / "features_clustered.parquet", columns=["conversation_id", "task_cluster"]
    )
    truth = pcsv.read_csv(truth_csv)
    want = dict(
        zip(truth["conversation_id"].to_pylist(), truth["task_category"].to_pylist(), strict=True)
    )
    ids = got["conversation_id"].to_pylist()
    pred = [c if c is not None else "none" for c in got["task_cluster"].to_pylist()]
    true = [want[i] for i in ids]
    majority: dict[str, str] = {}
    by_cluster: dict[str, Counter[str]] = {}
    for p, t in zip(pred, true, strict=True):
        by_cluster.setdefault(p, Counter())[t] += 1
    for p, cnt in by_cluster.items():
        majority[p] = cnt.most_common(1)[0][0]
    acc = sum(majority[p] == t for p, t in zip(pred, true, strict=True)) / len(true)
    return {
        "nmi": float(normalized_mutual_info_score(true, pred)),
        "accuracy": acc,
        "distinct_tasks": len(
            set(
                pq.read_table(out / "features_clustered.parquet", columns=["task"])[
                    "task"
                ].to_pylist()
            )
        ),
    }


def run_one(args: argparse.Namespace, corpus: Path, task_embedder: str, work: Path) -> dict:
    out = work / f"out-{task_embedder}"
    cache = Path(args.cache) if args.warm and args.cache else Path(tempfile.mkdtemp(dir=work))
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--embedder",
        args.embedder,
        "--task-embedder",
        task_embedder,
        "--levels",
        args.levels,
        "--seed",
        str(args.seed),
    ]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    assert proc.stdout is not None
    lines = proc.stdout.read().strip().splitlines()
    if status != 0 or not lines:
        raise SystemExit(f"{task_embedder}: the taxonomy run failed (status {status})")
    res = json.loads(lines[-1])
    res.update(
        task_embedder=task_embedder,
        process_s=elapsed,
        peak_rss_mb=usage.ru_maxrss / 1024,
        load=(load0 + os.getloadavg()[0]) / 2,
    )
    res.update(reconstruction(out, corpus.with_name(corpus.stem + ".task_truth.csv")))
    return res


def table(results: list[dict]) -> str:
    head = ["task embedder", "distinct tasks", "k"]
    head += list(STAGES)
    head += [
        "run_taxonomy (s)",
        "process (s)",
        "peak RSS (MB)",
        "task NMI",
        "reconstruction",
        "load",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r["task_embedder"], f"{r['distinct_tasks']:,}", str(r["n_task_clusters"])]
        row += [f"{r['stages'].get(key, 0.0):.1f}" for key in STAGES]
        row += [
            f"{r['wall']:.1f}",
            f"{r['process_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['nmi']:.3f}",
            f"{100 * r['accuracy']:.1f}%",
            f"{r['load']:.1f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=N_PAPER)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task-embedders", default="minilm-static")
    ap.add_argument("--embedder", default="minilm", help="for the values")
    ap.add_argument("--levels", default="auto")
    ap.add_argument("--work", type=Path, default=None, help="keep the corpus and outputs here")
    ap.add_argument("--warm", action="store_true", help="reuse --cache instead of a fresh one")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--task-embedder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    from valuescope.synth import write_corpus

    work = args.work or Path(tempfile.mkdtemp(prefix="taxonomy-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"synth-{args.n}-{args.seed}.parquet"
    if not corpus.exists():
        t0 = time.perf_counter()
        write_corpus(corpus, args.n, seed=args.seed, progress=False, task_texts=True)
        print(
            f"synth: {args.n:,} conversations in {time.perf_counter() - t0:.1f} s", file=sys.stderr
        )
    results = []
    for emb in args.task_embedders.split(","):
        r = run_one(args, corpus, emb.strip(), work)
        print(json.dumps(r), file=sys.stderr)
        results.append(r)
    print(f"python benches/taxonomy_scale.py --n {args.n} --task-embedders {args.task_embedders}")
    print(table(results))


if __name__ == "__main__":
    main()
