"""The same conversations in two analyze inputs are refused with one line naming both files,
never counted twice; distinct files analyse as one (plain counting over the rows is the
oracle)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.features import make_rows, to_table
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.errors import UserError


def write(path: Path, rows: list[dict]) -> Path:
    pq.write_table(to_table(rows), path)
    return path


def test_duplicate_ids_across_inputs_are_refused(tmp_path):
    rows = make_rows(600, seed=11)
    a = write(tmp_path / "a.parquet", rows)
    # a second file that repeats 19 conversations of the first among new ones
    more = make_rows(300, seed=12)
    for r, dup in zip(more[:19], rows[100:119], strict=True):
        r["conversation_id"] = dup["conversation_id"]
    b = write(tmp_path / "b.parquet", more)
    with pytest.raises(
        UserError, match=r"b\.parquet: 19 conversation ids are also in .*a\.parquet"
    ):
        analyze_files([a, b], tmp_path / "out", AnalyzeOptions(progress=False))
    assert not (tmp_path / "out" / "summary.json").exists()


def test_the_same_file_twice_is_refused(tmp_path):
    a = write(tmp_path / "a.parquet", make_rows(200, seed=13))
    with pytest.raises(UserError, match="200 conversation ids are also in"):
        analyze_files([a, a], tmp_path / "out", AnalyzeOptions(progress=False))


def test_distinct_inputs_count_every_row_once(tmp_path):
    r1, r2 = make_rows(500, seed=14), make_rows(400, seed=15)
    a, b = write(tmp_path / "a.parquet", r1), write(tmp_path / "b.parquet", r2)
    rep = analyze_files([a, b], tmp_path / "out", AnalyzeOptions(progress=False))
    assert rep.summary["n_rows"] == len(r1) + len(r2)
