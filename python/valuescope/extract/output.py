"""Write the features Parquet and the rejects JSONL atomically (temporary file, flushed to disk,
then renamed over the target)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from valuescope.atomic import atomic_open

_STR_LIST = pa.list_(pa.string())
FEATURES_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("subjective", pa.bool_()),
        pa.field("task", pa.string()),
        pa.field("task_cluster", pa.string()),
        pa.field("ai_values", _STR_LIST),
        pa.field("ai_values_explicit", _STR_LIST),
        pa.field("human_values", _STR_LIST),
        pa.field("response_type", pa.string()),
        # Provenance: which extractor produced the row, so mixed files stay interpretable.
        pa.field("extraction_model", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("truncated", pa.bool_()),
    ]
)


def write_features(path: str, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh)


def write_rejects(path: str, rejects: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for rec in rejects:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


#: Beside the features file: the extraction's counts and reject reasons, which `analyze` copies
#: into its summary.json for the report (the share of rejects says how far to trust it).
SUMMARY_SUFFIX = ".summary.json"


def summary_path(features: str) -> str:
    return features + SUMMARY_SUFFIX


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
