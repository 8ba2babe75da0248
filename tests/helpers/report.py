"""Helpers shared by the report tests: a real analysis directory built through the engine, and
checks on the written files. (No tests here; pytest collects nothing from this module.)"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
from valuescope.analyze import AnalyzeOptions, analyze_files

from helpers.features import make_rows, to_table

# A value below the privacy thresholds (5 conversations, 1 user) and one above them: the first
# must never reach the report, the second must (so the privacy check can tell the difference).
RARE_MARKER = "zqx rare marker value"
COMMON_MARKER = "zqx common marker value"
ESCAPE_PROBE = "<b>bold</b> | pipe & amp"  # frequent: published, so the writers must escape it
DOLLAR_PROBE = "cost of $living$ 生活"  # not mathtext, and a script DejaVu lacks


def planted_rows(n: int = 4000, seed: int = 7) -> list[dict]:
    rows = make_rows(n, seed=seed)
    for i, r in enumerate(rows[:5]):
        r.update(
            user_id="rare-user",
            subjective=True,
            response_type="reframing",
            ai_values=[RARE_MARKER, "honesty"],
            human_values=[RARE_MARKER],
            task_cluster=RARE_MARKER,
            model=RARE_MARKER,
            conversation_id=f"rare-{i}",
        )
    for i, r in enumerate(rows[100:160]):
        r.update(
            user_id=f"common-user-{i % 20}",
            subjective=True,
            ai_values=[*(r["ai_values"] or []), COMMON_MARKER, ESCAPE_PROBE, DOLLAR_PROBE],
            human_values=[COMMON_MARKER],
        )
    return rows


def build_analysis(tmp: Path, rows: list[dict] | None = None) -> Path:
    features = tmp / "features.parquet"
    pq.write_table(to_table(planted_rows() if rows is None else rows), features)
    out = tmp / "analysis"
    analyze_files([features], out, AnalyzeOptions(progress=False))
    return out


def external_urls(html: str) -> list[str]:
    """http(s) URLs that a browser would fetch or follow: in src/href attributes, CSS url() or
    @import. SVG namespace declarations (xmlns) are names, not fetches."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(https?:[^"'\s>]+)""", html, re.I)
    found += re.findall(r"""url\(\s*["']?(https?:[^)"']+)""", html, re.I)
    found += re.findall(r"""@import\s+["']?(https?:[^"';]+)""", html, re.I)
    return found
