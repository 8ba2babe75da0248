"""The report says at its top when its inputs are doubtful: rows without user ids, a high share
of conversations the extraction rejected, a tiny sample with sparse tables. Each warning is
checked in the Markdown and in the HTML as headless Chromium renders it; an analysis with none
of these problems shows no warning."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.features import make_rows, to_table
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.layout import EXTRACT_SUMMARY_SUFFIX
from valuescope.report import write_report

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def report_for(tmp: Path, rows: list[dict], sidecar: dict | None = None) -> tuple[str, str]:
    features = tmp / "features.parquet"
    pq.write_table(to_table(rows), features)
    if sidecar is not None:
        Path(str(features) + EXTRACT_SUMMARY_SUFFIX).write_text(json.dumps(sidecar))
    out = tmp / "analysis"
    analyze_files([features], out, AnalyzeOptions(progress=False))
    html, md = write_report(out)
    return html.read_text(encoding="utf-8"), md.read_text(encoding="utf-8")


def rendered_text(tmp: Path, html: str) -> str:
    """The page's text as Chromium renders it (the DOM after layout), tags removed."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    page = tmp / "page.html"
    page.write_text(html, encoding="utf-8")
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", res.stdout)
    return " ".join(text.split())


def with_users(rows: list[dict]) -> list[dict]:
    for i, r in enumerate(rows):
        r["user_id"] = r["user_id"] or f"u{i % 40}"
    return rows


def first_section(md: str) -> str:
    """The Markdown up to the second section heading: the top of the report."""
    parts = re.split(r"^## ", md, flags=re.M)
    return parts[1] if len(parts) > 1 else ""


def test_no_user_ids_is_said_at_the_top(tmp_path):
    rows = make_rows(3000, seed=3)
    for r in rows:
        r["user_id"] = None
    html, md = report_for(tmp_path, rows)
    top = first_section(md)
    assert "3,000 of 3,000 feature rows (100.0%) have no user id" in top
    assert "privacy floor" in top and "one person's conversations" in top
    assert "3,000 of 3,000 feature rows" in rendered_text(tmp_path, html)


def test_high_extraction_reject_share_is_said_with_its_reasons(tmp_path):
    rows = with_users(make_rows(3000, seed=4))
    side = {"records": 4300, "extracted": 3000, "rejected": 1300,
            "reject_reasons": {"too long for the model's context": 900, "invalid answer": 400},
            "model": "openai:m", "prompt_version": "v1"}  # fmt: skip
    html, md = report_for(tmp_path, rows, side)
    top = first_section(md)
    assert "the extraction rejected 1,300 of 4,300 conversations (30.2%)" in top
    assert "too long for the model's context (900)" in top
    text = rendered_text(tmp_path, html)
    assert "the extraction rejected 1,300 of 4,300 conversations" in text
    assert "Extraction model: openai:m" in md  # the summary beside the features was carried


def test_tiny_analysis_says_small_sample_and_sparse_tables(tmp_path):
    rows = with_users(make_rows(24, seed=5))
    for r in rows:
        r["subjective"] = True  # all 24 analysed
    html, md = report_for(tmp_path, rows)
    top = first_section(md)
    assert "only 24 conversations analysed" in top
    assert "rest on sparse tables" in top
    assert "only 24 conversations analysed" in rendered_text(tmp_path, html)


def test_a_sound_analysis_shows_none_of_these_warnings(tmp_path):
    """Users named, few rejects, thousands of conversations. (Its human x AI value table, with
    a long tail of rare values, is sparse, and says so.)"""
    rows = with_users(make_rows(3000, seed=6))
    side = {"records": 3010, "extracted": 3000, "rejected": 10, "reject_reasons": {}}
    html, md = report_for(tmp_path, rows, side)
    top = first_section(md)
    for phrase in ("no user id", "the extraction rejected", "conversations analysed. With so",
                   "single cluster", "reference comparison rests"):  # fmt: skip
        assert phrase not in top and phrase not in html
    assert "not recorded" not in md.split("## ")[1]  # the models card has its count


def test_logs_without_model_names_say_not_recorded(tmp_path):
    rows = with_users(make_rows(600, seed=8))
    for r in rows:
        r["model"] = None
    _, md = report_for(tmp_path, rows)
    assert re.search(r"\| not recorded \|", first_section(md))
    assert "0 models" not in md and "from 1 users" not in md
