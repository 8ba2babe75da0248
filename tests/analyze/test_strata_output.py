"""`valuescope analyze` writes the stratified model comparison, the value pairs and the explicit
values; a value, task cluster or model below the thresholds appears in none of its files."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
from helpers.analysis import run_cli
from helpers.features import make_rows, to_table
from valuescope import layout

MARKER = "zz-rare-marker"
NEW = [
    "model_comparison_within_tasks",
    "value_pairs",
    "explicit_by_response_type",
    "explicit_values",
]


def planted_rows() -> list[dict]:
    rows = make_rows(3000, seed=31)
    for i, r in enumerate(rows[:4]):
        # below the thresholds in every role: AI value (implicit and explicit), human value,
        # task cluster, task and model, each in conversations that are otherwise common
        r["ai_values"] = [*(r["ai_values"] or []), f"{MARKER} value"]
        r["ai_values_explicit"] = [f"{MARKER} value"]
        r["human_values"] = [*(r["human_values"] or []), f"{MARKER} human"]
        r["task_cluster"] = f"{MARKER} cluster"
        r["task"] = f"{MARKER} task"
        if i < 2:
            r["model"] = f"{MARKER} model"
    return rows


def test_new_files_are_written_and_hold_no_suppressed_string(tmp_path: Path):
    features = tmp_path / "features.parquet"
    pq.write_table(to_table(planted_rows()), features)
    out = tmp_path / "out"
    p = run_cli("analyze", str(features), "--out", str(out), "--min-conversations", "8",
                "--min-users", "4")  # fmt: skip
    assert p.returncode == 0, p.stderr
    for key in NEW:
        path = out / layout.RESULT_FILES[key]
        with path.open(encoding="utf-8") as fh:
            assert list(csv.DictReader(fh)), f"{path.name} is empty"
    files = [f for f in out.rglob("*") if f.is_file()]
    assert len(files) > len(NEW)
    for f in files:
        assert MARKER not in f.read_text(encoding="utf-8", errors="replace"), f.name
    assert MARKER not in p.stdout + p.stderr


def test_one_model_writes_no_within_tasks_file_and_removes_a_stale_one(tmp_path: Path):
    rows = [dict(r, model="model-a") for r in make_rows(600, seed=2)]
    features = tmp_path / "features.parquet"
    pq.write_table(to_table(rows), features)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / layout.RESULT_FILES["model_comparison_within_tasks"]
    stale.write_text("left from an earlier run\n")
    p = run_cli("analyze", str(features), "--out", str(out), "--min-conversations", "5")
    assert p.returncode == 0, p.stderr
    assert not stale.exists()
    for key in NEW[1:]:
        assert (out / layout.RESULT_FILES[key]).is_file()
