"""Write the features Parquet and the rejects JSONL atomically (temp file, then os.replace)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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


def _tmp_beside(path: str, suffix: str) -> tuple[int, str]:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=folder)


def write_features(path: str, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)
    fd, tmp = _tmp_beside(path, ".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_rejects(path: str, rejects: Iterable[dict[str, Any]]) -> None:
    fd, tmp = _tmp_beside(path, ".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in rejects:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
