"""The committed corpus of bad inputs (tests/data/bad_inputs, written by its make.py) through
`valuescope analyze` and `valuescope extract` as real processes. Each file is either refused with
exit status 2 and one line naming it (and the column or row), or read to the end with every bad
record in the rejects file with a reason. Never a traceback; every input record is accounted for.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fakellm import FakeLLM

CORPUS = Path(__file__).parents[1] / "data" / "bad_inputs"
_spec = importlib.util.spec_from_file_location("bad_inputs_make", CORPUS / "make.py")
assert _spec is not None and _spec.loader is not None
make = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = make
_spec.loader.exec_module(make)


@pytest.fixture(scope="module")
def fake():
    with FakeLLM() as server:
        yield server


def valuescope(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(OPENAI_API_KEY="sk-test-bad-inputs", VALUESCOPE_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def extract_args(src: Path, out: Path, rejects: Path, fake: FakeLLM) -> list[str]:
    return ["extract", str(src), "--out", str(out), "--rejects", str(rejects),
            "--provider", "openai", "--model", "m", "--base-url", fake.url + "/v1",
            "--no-progress"]  # fmt: skip


def records_in(src: Path) -> dict[str, str | None]:
    """Every record of a conversation file by position ('line N' / 'row N') with its id where
    the id can be read: read here with json and pyarrow, not with valuescope's reader."""
    if src.suffix == ".parquet":
        ids = pq.read_table(src, columns=["id"]).column("id").to_pylist()
        return {f"row {i}": cid for i, cid in enumerate(ids)}
    out: dict[str, str | None] = {}
    for n, raw in enumerate(src.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            cid = rec.get("id") if isinstance(rec, dict) else None
        except ValueError:  # broken JSON, or bytes that are not UTF-8
            cid = None
        out[f"line {n}"] = cid
    return out


def check_refused(p: subprocess.CompletedProcess, src: Path, case) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(src) in lines[0], lines[0]
    for needle in case.names:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("case", make.CASES, ids=[c.path for c in make.CASES])
def test_bad_input_is_refused_in_one_line_or_rejected_with_a_reason(case, tmp_path, fake):
    src = CORPUS / case.path
    if case.stage == "analyze":
        out = tmp_path / "analysis"
        p = valuescope(["analyze", str(src), "--out", str(out), "-q", "--min-conversations",
                        "1", "--min-users", "1"], tmp_path)  # fmt: skip
    else:
        out, rejects_file = tmp_path / "features.parquet", tmp_path / "rejects.jsonl"
        p = valuescope(extract_args(src, out, rejects_file, fake), tmp_path)
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    if case.refused:
        check_refused(p, src, case)
        assert not (out / "summary.json" if case.stage == "analyze" else out).exists()
        return
    assert p.returncode == 0, p.stderr

    if case.stage == "analyze":
        n_in = pq.ParquetFile(src).metadata.num_rows
        summary = json.loads((out / "summary.json").read_text())
        with (out / "rejects.csv").open(newline="", encoding="utf-8") as fh:
            rejects = list(csv.DictReader(fh))
        assert len(rejects) == case.rejected == summary["n_rejected"]
        assert summary["n_rows"] == n_in
        assert summary["n_conversations"] + summary["n_not_subjective"] + len(rejects) == n_in
        rows = [int(r["row"]) for r in rejects]
        assert len(set(rows)) == len(rows) and all(0 <= r < n_in for r in rows)
        assert all(r["file"] == str(src) and r["reason"] for r in rejects)
        return

    records = records_in(src)
    rejects = [json.loads(x) for x in rejects_file.read_text().splitlines() if x.strip()]
    assert len(rejects) == case.rejected, rejects
    for r in rejects:
        assert r["file"] == str(src) and r["reason"], r
    rejected_at = {f"line {r['line']}" if "line" in r else f"row {r['row']}" for r in rejects}
    assert len(rejected_at) == len(rejects) and rejected_at <= set(records)
    extracted = pq.read_table(out).column("conversation_id").to_pylist()
    # counts in = counts out, and each record that is not rejected is in the features
    assert len(extracted) + len(rejects) == len(records)
    assert sorted(extracted) == sorted(cid for at, cid in records.items() if at not in rejected_at)


def test_a_10_mb_message_is_cut_from_the_middle_not_dropped(tmp_path, fake):
    src = tmp_path / "huge.jsonl"
    n = make.write_huge_message(src)
    assert src.stat().st_size > 10_000_000
    out, rejects_file = tmp_path / "features.parquet", tmp_path / "rejects.jsonl"
    p = valuescope(extract_args(src, out, rejects_file, fake), tmp_path)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    rows = pq.read_table(out).to_pylist()
    assert not rejects_file.exists() or not rejects_file.read_text().strip()
    assert [r["conversation_id"] for r in rows] == [f"k{i}" for i in range(1, n + 1)]
    assert [r["truncated"] for r in rows] == [False, True, False]  # cut to the token budget


def test_the_corpus_is_what_make_py_writes(tmp_path):
    made = make.write_corpus(tmp_path)
    committed = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*") if p.is_file()}
    assert made == committed
    total = sum((CORPUS / p).stat().st_size for p in committed)
    assert total < 200_000, f"the committed corpus has grown to {total} bytes"
    for rel in sorted(made):
        fresh, kept = tmp_path / rel, CORPUS / rel
        if kept.suffix != ".parquet":
            assert fresh.read_bytes() == kept.read_bytes(), rel
            continue
        # Parquet bytes name the writer's version; compare what can be read, or the damage
        try:
            want = pq.read_table(kept)
        except Exception as exc:  # noqa: BLE001 - any refusal, compared by type below
            with pytest.raises(type(exc)):
                pq.read_table(fresh)
            continue
        assert pq.read_table(fresh).equals(want), rel


REFUSED_FEATURES = [c for c in make.CASES if c.stage == "analyze" and c.refused]


@pytest.mark.parametrize("case", REFUSED_FEATURES, ids=[c.path for c in REFUSED_FEATURES])
def test_taxonomy_refuses_the_same_feature_files_in_one_line(case, tmp_path):
    src = CORPUS / case.path
    out = tmp_path / "taxonomy"
    p = valuescope(["taxonomy", str(src), "--out", str(out), "--min-conversations", "1",
                    "--min-users", "1"], tmp_path)  # fmt: skip
    assert "Traceback" not in p.stdout + p.stderr, p.stderr
    assert p.returncode == 2, (p.returncode, p.stderr)
    (line,) = p.stderr.strip().splitlines()
    # the file, and what is wrong with it (the column; analyze also names the rows)
    assert str(src) in line and all(n in line for n in case.names[:1]), line
    assert not (out / "values_tree.csv").exists()
