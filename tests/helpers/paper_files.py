"""Small hand-written files in the format the engine writes for the paper's further analyses
(model differences within tasks, value pairs, explicit values), for the report tests: the report
reads them, whatever wrote them. (No tests here.)"""

from __future__ import annotations

import csv
from pathlib import Path

RESPONSE_COLUMNS = [
    "pct_strong_support",
    "pct_mild_support",
    "pct_neutral_acknowledgment",
    "pct_reframing",
    "pct_mild_resistance",
    "pct_strong_resistance",
    "pct_no_values",
]

WITHIN_TASKS = [
    # kind, item, a, b, pct_a, pct_b, z_raw, p_raw, or, lo, hi, cmh, p_cmh, bd, p_bd, strata,
    # threshold, significant_raw, significant_within
    ["value", "creative freedom", "model-c", "model-a", 1.2, 0.3, 12.1, 1e-33, 1.05, 0.88, 1.25,
     0.3, 0.58, 9.1, 0.7, 12, 1e-4, "true", "false"],
    ["value", "intellectual curiosity", "model-b", "model-a", 1.3, 0.52, 9.5, 2e-21, 2.51, 2.1,
     3.0, 95.0, 1e-22, 10.2, 0.6, 12, 1e-4, "true", "true"],
    ["response_type", "strong resistance", "model-c", "model-b", 9.5, 2.4, 30.0, 1e-190, 4.1,
     3.8, 4.5, 800.0, 1e-175, 50.0, 1e-6, 12, 1e-4, "true", "true"],
    ["value", "human agency", "model-a", "model-b", 0.6, 0.55, 1.0, 0.32, 1.6, 1.3, 2.0,
     20.0, 7e-6, 8.0, 0.8, 12, 1e-4, "false", "true"],
    ["value", "helpfulness", "model-a", "model-b", 23.1, 23.2, -0.3, 0.76, 0.99, 0.96, 1.02,
     0.1, 0.75, 11.0, 0.5, 12, 1e-4, "false", "false"],
]  # fmt: skip

VALUE_PAIRS = [
    # human, ai, n, residual, threshold, mix (7), dominant, pattern
    ["deception", "ethical integrity", 240, 55.0, 4.3, [2, 1, 1, 6, 30, 60, None],
     "strong resistance", "opposing"],
    ["deception", "honesty", 310, 48.0, 4.3, [3, 2, 2, 8, 25, 60, None],
     "strong resistance", "opposing"],
    ["deception", "harm prevention", 190, 40.0, 4.3, [1, 2, 3, 9, 35, 50, None],
     "mild resistance", "opposing"],
    ["efficiency", "efficiency", 900, 80.0, 4.3, [60, 20, 10, 5, 3, 2, None],
     "strong support", "mirroring"],
    ["authenticity", "creative freedom", 400, 12.0, 4.3, [40, 30, 15, 10, 3, 2, None],
     "strong support", "supporting"],
]  # fmt: skip

EXPLICIT_BY_RT = [
    ["strong support", 2800, 700, 25.0, 23.4, 26.6],
    ["mild support", 1400, 340, 24.3, 22.1, 26.6],
    ["neutral acknowledgment", 900, 220, 24.4, 21.7, 27.3],
    ["reframing", 650, 290, 44.6, 40.8, 48.5],
    ["mild resistance", 240, 120, 50.0, 43.7, 56.3],
    ["strong resistance", 300, 180, 60.0, 54.4, 65.4],
]

EXPLICIT_VALUES = [
    ["ethical boundaries", 1200, 600, 0.5, 0.47, 0.53],
    ["honesty", 2100, 630, 0.3, 0.28, 0.32],
    ["helpfulness", 23000, 3450, 0.15, 0.145, 0.155],
]


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow(["" if x is None else x for x in r])


def write_paper_files(d: Path) -> None:
    _write(
        d / "model_comparison_within_tasks.csv",
        "kind,item,model_a,model_b,pct_a,pct_b,z_raw,p_raw,odds_ratio,or_ci_low,or_ci_high,"
        "cmh,p_cmh,breslow_day,p_breslow_day,n_strata,p_threshold,significant_raw,"
        "significant_within".split(","),
        WITHIN_TASKS,
    )
    _write(
        d / "value_pairs.csv",
        ["human_value", "ai_value", "n_conversations", "residual", "threshold"]
        + RESPONSE_COLUMNS
        + ["dominant_response_type", "pattern"],
        [[*r[:5], *r[5], r[6], r[7]] for r in VALUE_PAIRS],
    )
    _write(
        d / "explicit_by_response_type.csv",
        "response_type,n_conversations,n_with_explicit,pct_with_explicit,ci_low,ci_high".split(","),
        EXPLICIT_BY_RT,
    )
    _write(
        d / "explicit_values.csv",
        "value,n_expressed,n_explicit,ratio,ci_low,ci_high".split(","),
        EXPLICIT_VALUES,
    )
