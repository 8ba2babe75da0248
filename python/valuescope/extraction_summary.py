"""The extraction's summary file, written beside the features: its counts and reject reasons by
kind (fixed phrases, never conversation text), carried by `taxonomy` and `analyze` to the report.
Plain JSON, so that reading it costs the later stages no import of pyarrow."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from valuescope.atomic import atomic_open
from valuescope.layout import EXTRACT_SUMMARY_SUFFIX


def summary_path(features: str) -> str:
    return features + EXTRACT_SUMMARY_SUFFIX


def write_summary(path: str, record: dict[str, Any]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=2, sort_keys=True) + "\n")


_REASON_KINDS = (
    ("not processed", "not processed (run stopped)"),
    ("does not fit the model's context", "too long for the model's context"),
    ("invalid answer", "invalid answer"),
    ("gave up after", "server errors (retries exhausted)"),
    ("http 4", "refused by the server"),
    ("duplicate conversation id", "duplicate conversation id"),
    ("invalid json", "unreadable record"),
    ("not valid utf-8", "unreadable record"),
    ("cut off", "unreadable record"),
    ("no assistant turn", "no assistant answer"),
    ("no text", "empty conversation"),
    ("empty transcript", "empty conversation"),
)


def reject_kind(reason: str) -> str:
    """A reject reason's kind: a short fixed phrase, so that the reasons can be counted and
    shown without repeating anything from a conversation or an answer."""
    lowered = reason.lower()
    for needle, kind in _REASON_KINDS:
        if needle in lowered:
            return kind
    return "unreadable record" if "expected" in lowered or "format" in lowered else "other"


def merge_summaries(features: Iterable[str | Path]) -> dict[str, Any]:
    """The extraction summaries written beside these features files, merged (counts summed,
    models listed); {} when none has one."""
    merged: dict[str, Any] = {}
    for f in features:
        side = Path(summary_path(str(f)))
        if not side.is_file():
            continue
        try:
            rec = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for k in ("records", "extracted", "rejected", "truncated", "scrubbed_values"):
            merged[k] = merged.get(k, 0) + int(rec.get(k) or 0)
        reasons = merged.setdefault("reject_reasons", {})
        for k, v in (rec.get("reject_reasons") or {}).items():
            reasons[k] = reasons.get(k, 0) + int(v)
        for k in ("model", "prompt_version"):
            if rec.get(k):
                seen = [x for x in (merged.get(k) or "").split(", ") if x]
                merged[k] = ", ".join(sorted({*seen, rec[k]}))
        merged["interrupted"] = bool(merged.get("interrupted")) or bool(rec.get("interrupted"))
    return merged
