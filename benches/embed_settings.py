"""Throughput of the task-text embedders on synthetic task texts: the int8 MiniLM under ONNX
Runtime's thread and graph settings, batch sizes, with and without length bucketing, and the
static embedder distilled from it.

    python benches/embed_settings.py [--n 2000] [--repeat 2]

Texts/s is the best of ``--repeat`` passes over the same ``--n`` distinct texts (no cache). The
MiniLM file is int8 only (the package ships no fp32 ONNX; see docs/taxonomy.md), so int8 against
fp32 is not measured here. The static embedder's cold time includes MiniLM on its context sample
(up to 1,024 of the texts) and on each token alone.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np


def texts(n: int) -> list[str]:
    from valuescope.synth import synth_batches

    t = synth_batches(n * 2, 11, task_texts=True).read_all()["task"].to_pylist()
    return list(dict.fromkeys(t))[:n]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def minilm_session(threads: int, level: str, mode: str):
    import onnxruntime as ort
    from valuescope.taxonomy.embeddings import MiniLMOnnx, minilm_model_path

    m = MiniLMOnnx()
    m._load()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    opts.execution_mode = getattr(ort.ExecutionMode, mode)
    m._session = ort.InferenceSession(
        str(minilm_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    data = texts(args.n)
    shuffled = data[:]
    random.Random(0).shuffle(shuffled)
    rows = []
    print(f"load before: {os.getloadavg()[0]:.1f}; {len(data)} distinct texts")
    for threads, level, mode, batch, bucket in [
        (2, "ORT_ENABLE_ALL", "ORT_SEQUENTIAL", 64, True),  # the default
        (1, "ORT_ENABLE_ALL", "ORT_SEQUENTIAL", 64, True),
        (2, "ORT_ENABLE_BASIC", "ORT_SEQUENTIAL", 64, True),
        (2, "ORT_DISABLE_ALL", "ORT_SEQUENTIAL", 64, True),
        (2, "ORT_ENABLE_ALL", "ORT_SEQUENTIAL", 256, True),
        (2, "ORT_ENABLE_ALL", "ORT_SEQUENTIAL", 16, True),
        (2, "ORT_ENABLE_ALL", "ORT_SEQUENTIAL", 64, False),
    ]:
        m = minilm_session(threads, level, mode)
        m.batch_size = batch
        if bucket:
            secs = best(lambda m=m: m.embed(shuffled), args.repeat)
        else:
            # no bucketing: batches in the input order, padded to their longest text

            def run(m=m, batch=batch) -> None:
                for i in range(0, len(shuffled), batch):
                    m._embed(shuffled[i : i + batch])

            secs = best(run, args.repeat)
        label = f"minilm int8, {threads} thr, {level}, batch {batch}, " + (
            "length-bucketed" if bucket else "input order"
        )
        rows.append((label, len(data) / secs))
    from valuescope.taxonomy.embeddings import StaticMiniLM, sif_weights

    with tempfile.TemporaryDirectory() as d:
        s = StaticMiniLM(Path(d))
        t0 = time.perf_counter()
        s.embed(data)  # cold: the tokens alone and the context sample through MiniLM, then Rust
        cold = time.perf_counter() - t0
        many = data * max(1, 200_000 // len(data))  # the same distinct texts: the same sample
        secs = best(lambda: s.embed(many), args.repeat)
        rows.append(("minilm-static (token vectors cached)", len(many) / secs))
        ids, offsets = s.token_ids(many)
        from valuescope._core import static_embed

        used, vectors = s.token_vectors(many, ids)
        table = np.zeros((int(used.max()) + 1, vectors.shape[1]), dtype=np.float32)
        table[used] = vectors
        w = sif_weights(ids, len(table))
        secs_pool = best(lambda: static_embed(table, w, ids, offsets), args.repeat)
        rows.append(("minilm-static, Rust pooling alone", len(many) / secs_pool))
        rows.append((f"minilm-static: these {len(data):,} texts, cold cache: {cold:.1f} s", np.nan))
    print("python benches/embed_settings.py --n", args.n)
    print("| setting | texts/s |\n|---|---:|")
    for label, rate in rows:
        print(f"| {label} | {'' if np.isnan(rate) else f'{rate:,.0f}'} |")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
