"""Write the features Parquet and the rejects JSONL atomically (temporary file, flushed to disk,
then renamed over the target)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from valuescope.atomic import atomic_open
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
