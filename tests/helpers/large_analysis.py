"""An analysis directory shaped like a 10M-conversation run (tens of thousands of values,
million-cell tables), generated directly in the published file shapes: running 10M rows through
the engine would exercise the engine, not the report. Used by tests/report/test_report_scale.py
(size and capping) and benches/report_scale.py (time and memory)."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

N = 10_000_000
N_AI, N_HUMAN, N_TASKS = 20_000, 5_000, 300
TABLE_CELLS = 1_000_000
RT = [
    "strong support",
    "mild support",
    "neutral acknowledgment",
    "reframing",
    "mild resistance",
    "strong resistance",
    "no values",
]
MODELS = [f"model-{i}" for i in range(8)]


def _csv(path: Path, cols: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(pa.table(cols), path)


def _values(rng, prefix: str, n: int) -> dict:
    counts = np.sort((N * 0.25 / np.arange(1, n + 1) ** 1.1).astype(np.int64) + 15)[::-1]
    return {
        "value": [f"{prefix} value {i}" for i in range(n)],
        "n_conversations": counts,
        "pct_convos": 100 * counts / N,
        "pct_total_occurrences": 100 * counts / counts.sum(),
    }


def _table(rng, d: Path, name: str, rows: list[str], cols: list[str], n: int) -> None:
    n = min(n, len(rows) * len(cols))
    flat = rng.choice(len(rows) * len(cols), size=n, replace=False)
    obs = rng.integers(15, 5000, size=n)
    resid = rng.normal(0, 3, size=n)
    row_names, col_names = np.array(rows, dtype=object), np.array(cols, dtype=object)
    _csv(
        d / "tables" / f"{name}.csv",
        {
            "row": row_names[flat // len(cols)],
            "col": col_names[flat % len(cols)],
            "observed": obs,
            "expected": obs * (1 + rng.normal(0, 0.1, size=n)),
            "adjusted_residual": resid,
            "significant": np.abs(resid) > 4.5,
        },
    )
    a, _, b = name.partition("__")
    test = {
        "table": name,
        "row_column": a,
        "col_column": b,
        "chi2": 1e7,
        "dof": (len(rows) - 1) * (len(cols) - 1),
        "p_value": 0.0,
        "n": int(obs.sum()),
        "threshold": 4.5,
        "n_tests": len(rows),
        "n_cells": n,
        "suppressed_cells": 123_456,
    }
    (d / "tables" / f"{name}.json").write_text(json.dumps(test))


def make_large_analysis(d: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ai, human = _values(rng, "ai", N_AI), _values(rng, "human", N_HUMAN)
    _csv(d / "ai_values.csv", ai)
    _csv(d / "human_values.csv", human)
    _csv(d / "ai_values_explicit.csv", _values(rng, "ai", N_AI // 4))
    share = rng.dirichlet(np.ones(7)) * 100
    _csv(
        d / "response_types.csv",
        {
            "response_type": RT,
            "n_conversations": (share * N / 100).astype(np.int64),
            "pct_all": share,
            "n_with_human_values": (share * N / 400).astype(np.int64),
            "pct_with_human_values": rng.dirichlet(np.ones(7)) * 100,
        },
    )
    _csv(
        d / "mirroring.csv",
        {
            "response_type": RT,
            "n_conversations": np.full(7, 300_000),
            "n_mirrored": np.full(7, 100_000),
            "pct_mirrored": rng.uniform(10, 60, 7),
        },
    )
    tasks = [f"task cluster {i}" for i in range(N_TASKS)]
    inv = [(v, c) for c in ("task_cluster", "response_type", "model") for v in ai["value"]]
    _csv(
        d / "invariance.csv",
        {
            "value": [v for v, _ in inv],
            "context": [c for _, c in inv],
            "cv": rng.gamma(2, 0.3, len(inv)),
            "n_categories": rng.integers(2, 300, len(inv)),
        },
    )
    _csv(
        d / "models.csv",
        {
            "model": MODELS,
            "n_conversations": np.full(8, N // 8),
            "pct_conversations": np.full(8, 12.5),
            "pct_with_ai_values": rng.uniform(80, 95, 8),
            "pct_with_human_values": rng.uniform(20, 40, 8),
            "mean_ai_values": rng.uniform(3, 5, 8),
            "mean_human_values": rng.uniform(0.3, 1, 8),
        },
    )
    pairs = list(combinations(MODELS, 2))
    feats = [("ai_values", v) for v in ai["value"][:10_000]] + [("response_type", r) for r in RT]
    n = len(pairs) * len(feats)
    z = rng.normal(0, 2, n)
    _csv(
        d / "model_comparison.csv",
        {
            "feature": [f for _ in pairs for f, _ in feats],
            "value": [v for _ in pairs for _, v in feats],
            "model_a": [a for a, _ in pairs for _ in feats],
            "model_b": [b for _, b in pairs for _ in feats],
            "n_a": np.full(n, N // 8),
            "n_b": np.full(n, N // 8),
            "x_a": rng.integers(15, 100_000, n),
            "x_b": rng.integers(15, 100_000, n),
            "pct_a": rng.uniform(0, 10, n),
            "pct_b": rng.uniform(0, 10, n),
            "diff_pct": rng.normal(0, 1, n),
            "z": z,
            "p_value": np.exp(-np.abs(z)),
        },
    )
    _table(rng, d, "ai_values__task_cluster", ai["value"], tasks, TABLE_CELLS)
    _table(rng, d, "human_values__ai_values", human["value"], ai["value"], TABLE_CELLS)
    _table(rng, d, "ai_values__response_type", ai["value"], RT, TABLE_CELLS)
    _table(rng, d, "human_values__response_type", human["value"], RT, TABLE_CELLS)
    _table(rng, d, "ai_values__model", ai["value"], MODELS, TABLE_CELLS)
    _table(rng, d, "response_type__model", RT, MODELS, 56)
    tests = [json.loads(p.read_text()) for p in sorted((d / "tables").glob("*.json"))]
    _csv(d / "table_tests.csv", {k: [t[k] for t in tests] for k in tests[0]})
    summary = {
        "n_conversations": N,
        "n_rows": N + 50_000,
        "pct_with_ai_values": 90.0,
        "pct_with_human_values": 30.0,
        "mean_ai_values": 4.0,
        "mean_human_values": 0.5,
        "thresholds": {"min_conversations": 15, "min_users": 10, "alpha": 0.05},
        "suppressed": {"ai_values": 50_000, "human_values": 20_000, "table_cells": {}},
    }
    (d / "summary.json").write_text(json.dumps(summary))
    return d
