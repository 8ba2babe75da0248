"""`valuescope analyze` end to end: the files it writes, and how it refuses bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.features import SCHEMA, make_rows, to_table
from oracle import Oracle


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args], capture_output=True, text=True
    )


def read_csv(p: Path) -> list[dict]:
    with p.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def features(tmp_path: Path) -> tuple[Path, list[dict]]:
    rows = make_rows(2500, seed=21, bad_rate=0.02)
    d = tmp_path / "features"
    d.mkdir()
    t = to_table(rows)
    # a directory of two files: both must be read, rows numbered per file
    pq.write_table(t.slice(0, 1000), d / "part-0.parquet", row_group_size=300)
    pq.write_table(t.slice(1000), d / "part-1.parquet", row_group_size=300)
    return d, rows


def test_writes_every_file_in_published_shapes(tmp_path, features):
    d, rows = features
    out = tmp_path / "out"
    p = run(
        "analyze",
        str(d),
        "--out",
        str(out),
        "--min-conversations",
        "5",
        "--min-users",
        "3",
        "--batch-size",
        "128",
        "-q",
    )
    assert p.returncode == 0, p.stderr
    o = Oracle(rows, min_c=5, min_u=3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_conversations"] == o.n
    assert summary["thresholds"]["min_conversations"] == 5
    ai = read_csv(out / "ai_values.csv")
    assert list(ai[0]) == ["value", "n_conversations", "pct_convos", "pct_total_occurrences"]
    assert [(r["value"], int(r["n_conversations"])) for r in ai] == [
        (v, n) for v, n, *_ in o.frequencies("ai_values")
    ]
    assert list(read_csv(out / "response_types.csv")[0]) == [
        "response_type",
        "n_conversations",
        "pct_all",
        "n_with_human_values",
        "pct_with_human_values",
    ]
    assert list(read_csv(out / "mirroring.csv")[0]) == [
        "response_type",
        "n_conversations",
        "n_mirrored",
        "pct_mirrored",
    ]
    assert list(read_csv(out / "invariance.csv")[0]) == ["value", "context", "cv", "n_categories"]
    for name in [
        "ai_values__task_cluster",
        "human_values__ai_values",
        "ai_values__response_type",
        "human_values__response_type",
        "ai_values__model",
        "response_type__model",
    ]:
        cells = read_csv(out / "tables" / f"{name}.csv")
        assert list(cells[0]) == [
            "row",
            "col",
            "observed",
            "expected",
            "adjusted_residual",
            "significant",
        ]
        meta = json.loads((out / "tables" / f"{name}.json").read_text())
        assert {"chi2", "dof", "p_value", "n", "threshold", "n_tests", "suppressed_cells"} <= set(
            meta
        )
    # nothing is lost: every input row is analysed, excluded as not subjective, or rejected
    rejects = read_csv(out / "rejects.csv")
    assert len(rejects) == sum(o.rejected.values()) > 0
    assert o.n + o.not_subjective + len(rejects) == len(rows)
    for r in rejects:
        file_rows = rows[:1000] if r["file"].endswith("part-0.parquet") else rows[1000:]
        assert file_rows[int(r["row"])]["conversation_id"] == (r["conversation_id"] or None)
    assert not list(out.rglob("*.tmp")), "temporary files left behind"


def test_falls_back_to_task_without_clusters(tmp_path):
    rows = make_rows(800, seed=2)
    t = to_table(rows).drop_columns(["task_cluster"])
    pq.write_table(t, tmp_path / "f.parquet")
    p = run(
        "analyze",
        str(tmp_path / "f.parquet"),
        "--out",
        str(tmp_path / "o"),
        "-q",
        "--min-conversations",
        "1",
        "--min-users",
        "1",
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "o" / "tables" / "ai_values__task.csv").exists()
    assert not (tmp_path / "o" / "tables" / "ai_values__task_cluster.csv").exists()


def test_custom_tables(tmp_path):
    rows = make_rows(500, seed=4)
    pq.write_table(to_table(rows), tmp_path / "f.parquet")
    p = run(
        "analyze",
        str(tmp_path / "f.parquet"),
        "--out",
        str(tmp_path / "o"),
        "-q",
        "--table",
        "human_values:task",
        "--table",
        "model:task_cluster",
    )
    assert p.returncode == 0, p.stderr
    names = sorted(f.name for f in (tmp_path / "o" / "tables").glob("*.csv"))
    assert names == ["human_values__task.csv", "model__task_cluster.csv"]


def test_task_columns_are_read_only_when_a_table_needs_them(tmp_path):
    """With tables of the user's that cross no task column, the task columns are not read (they
    cost decoding time): a task column of the wrong type then does not matter. The default
    tables cross them, so there the same file is refused, naming the column."""
    t = to_table(make_rows(300, seed=5))
    t = t.set_column(t.schema.get_field_index("task"), "task", pa.array(range(300), pa.int64()))
    pq.write_table(t, tmp_path / "f.parquet")
    custom = run(
        "analyze",
        str(tmp_path / "f.parquet"),
        "--out",
        str(tmp_path / "o"),
        "-q",
        "--table",
        "ai_values:response_type",
    )
    assert custom.returncode == 0, custom.stderr
    default = run("analyze", str(tmp_path / "f.parquet"), "--out", str(tmp_path / "d"), "-q")
    assert default.returncode == 2 and "task" in default.stderr
    from valuescope.analyze.units import columns_for

    assert "task" not in columns_for([("ai_values", "response_type")])
    assert "task" in columns_for([("ai_values", "task")]) and "task" in columns_for(None)


def test_empty_input_gives_an_empty_valid_analysis(tmp_path):
    pq.write_table(SCHEMA.empty_table(), tmp_path / "empty.parquet")
    p = run("analyze", str(tmp_path / "empty.parquet"), "--out", str(tmp_path / "o"), "-q")
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["n_conversations"] == 0 and s["mean_ai_values"] is None
    assert read_csv(tmp_path / "o" / "ai_values.csv") == []


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    good = to_table(make_rows(50, seed=9))
    cases = {}
    p = tmp / "missing.parquet"
    cases["missing file"] = (p, ["missing.parquet", "no such file"])
    p = tmp / "text.parquet"
    p.write_text("conversation_id,ai_values\n1,honesty\n")
    cases["text named .parquet"] = (p, ["text.parquet", "not a readable Parquet file"])
    p = tmp / "truncated.parquet"
    pq.write_table(good, p)
    p.write_bytes(p.read_bytes()[:200])
    cases["truncated"] = (p, ["truncated.parquet"])
    p = tmp / "nocol.parquet"
    pq.write_table(good.drop_columns(["ai_values"]), p)
    cases["missing column"] = (p, ["nocol.parquet", "ai_values"])
    p = tmp / "wrongtype.parquet"
    t = good.set_column(
        good.schema.get_field_index("ai_values"), "ai_values", pa.array(["honesty"] * good.num_rows)
    )
    pq.write_table(t, p)
    cases["string where a list belongs"] = (p, ["wrongtype.parquet", "ai_values", "list"])
    p = tmp / "intrt.parquet"
    t = good.set_column(
        good.schema.get_field_index("response_type"),
        "response_type",
        pa.array(range(good.num_rows)),
    )
    pq.write_table(t, p)
    cases["integer response_type"] = (p, ["intrt.parquet", "response_type"])
    d = tmp / "emptydir"
    d.mkdir()
    cases["directory without parquet"] = (d, ["emptydir", "no .parquet"])
    return cases


def test_bad_input_is_one_clear_line_with_status_2(tmp_path):
    for label, (path, needles) in _bad_inputs(tmp_path).items():
        p = run("analyze", str(path), "--out", str(tmp_path / "o"), "-q")
        assert p.returncode == 2, (label, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, (label, p.stderr)
        assert "Traceback" not in p.stderr
        for n in needles:
            assert n in lines[0], (label, lines[0])


def test_bad_options_exit_2(tmp_path):
    pq.write_table(to_table(make_rows(10)), tmp_path / "f.parquet")
    p = run("analyze", str(tmp_path / "f.parquet"), "--table", "ai_values", "-q")
    assert p.returncode == 2 and "A:B" in p.stderr
    p = run(
        "analyze",
        str(tmp_path / "f.parquet"),
        "--table",
        "nosuch:ai_values",
        "-q",
        "--out",
        str(tmp_path / "o"),
    )
    assert p.returncode == 2 and "nosuch" in p.stderr and "Traceback" not in p.stderr


def test_help_explains():
    p = run("analyze", "--help")
    assert p.returncode == 0
    for word in ["--min-conversations", "--min-users", "--alpha", "--table", "summary.json"]:
        assert word in p.stdout


def test_same_input_same_bytes_whatever_the_sharding(tmp_path, features):
    """Floating-point sums run in a fixed order: a pool of processes, merged in whatever order
    they finish, prints exactly the digits of one pass."""
    d, _ = features
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}"
        p = run("analyze", str(d), "--out", str(out), "-q", "--jobs", jobs, "--batch-size", "97",
                "--min-conversations", "3", "--min-users", "2")  # fmt: skip
        assert p.returncode == 0, p.stderr
        outs.append(out)
    files = sorted(f.relative_to(outs[0]) for f in outs[0].rglob("*") if f.is_file())
    assert len(files) > 15
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
