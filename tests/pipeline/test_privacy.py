"""Privacy: a value below the thresholds never appears in any output, log line or error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from helpers.features import make_rows, to_table

MARKERS = {
    # rare everywhere: 3 conversations, 3 users
    "ai": "zqxmarkerai",
    "human": "zqxmarkerhuman",
    "task": "zqxmarkertask",
    "model": "zqxmarkermodel",
    # frequent but from one user only: fails the distinct-user rule
    "oneuser": "zqxmarkeroneuser",
    # in a row that is rejected for its response type
    "rejected": "zqxmarkerrejected",
}


def planted_rows() -> list[dict]:
    rows = make_rows(3000, seed=5)
    for i in range(3):
        rows[i]["ai_values"] = (rows[i]["ai_values"] or []) + [MARKERS["ai"].upper()]
        rows[i]["human_values"] = [MARKERS["human"]]
        rows[i]["task_cluster"] = MARKERS["task"]
        rows[i]["model"] = MARKERS["model"]
        rows[i]["subjective"] = True
        rows[i]["user_id"] = f"marker-user-{i}"
    for i in range(10, 60):
        rows[i]["ai_values"] = ["honesty", MARKERS["oneuser"]]
        rows[i]["user_id"] = "the-one-user"
        rows[i]["subjective"] = True
    rows[100]["response_type"] = f"strong {MARKERS['rejected']}"
    rows[100]["ai_values"] = [MARKERS["rejected"]]
    return rows


def test_planted_markers_never_leave_the_engine(tmp_path: Path):
    path = tmp_path / "features.parquet"
    pq.write_table(to_table(planted_rows()), path)
    out = tmp_path / "analysis"
    proc = subprocess.run(
        [sys.executable, "-m", "valuescope.cli", "analyze", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 15
    haystacks = {str(p): p.read_text(encoding="utf-8").lower() for p in files}
    haystacks["stdout"] = proc.stdout.lower()
    haystacks["stderr"] = proc.stderr.lower()
    for name, text in haystacks.items():
        for marker in MARKERS.values():
            assert marker not in text, f"{marker} leaked into {name}"
    # the rows are accounted for, not silently dropped
    assert "conversation_id" in haystacks[str(out / "rejects.csv")]
    summary = (out / "summary.json").read_text()
    assert '"n_rejected": 1' in summary
    # and the non-marker values of the same rows are still published
    assert "honesty" in haystacks[str(out / "ai_values.csv")]


def test_schema_error_names_column_not_values(tmp_path: Path):
    rows = planted_rows()
    t = to_table(rows).drop_columns(["response_type"])
    path = tmp_path / "bad.parquet"
    pq.write_table(t, path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "valuescope.cli",
            "analyze",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "response_type" in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    for marker in MARKERS.values():
        assert marker not in proc.stderr.lower()
