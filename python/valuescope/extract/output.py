"""Write the features Parquet and the rejects JSONL atomically (temporary file, flushed to disk,
then renamed over the target)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from valuescope.atomic import atomic_open
from valuescope.layout import EXTRACT_SUMMARY_SUFFIX
from valuescope.schema import arrow_fields

#: The feature columns (the extractor always writes an id), then the row's provenance: which
#: extractor produced it, so that mixed files stay interpretable.
FEATURES_SCHEMA = pa.schema(
    [
        *arrow_fields(non_null=("conversation_id",)),
        pa.field("extraction_model", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("truncated", pa.bool_()),
    ]
)


def write_extracted_features(path: str, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)


def write_rejects(path: str, rejects: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for rec in rejects:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


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
