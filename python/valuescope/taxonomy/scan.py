"""Reading the feature files for the taxonomy: the AI values the privacy rule lets it cluster, and
per analysed row its task and user (for the task clusters and their thresholds)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from valuescope._core import Engine, normalize
from valuescope.errors import UserError
from valuescope.features import check_columns, iter_batches, iter_record_batches
from valuescope.schema import FEATURE_COLUMNS
from valuescope.taxonomy.options import TaxonomyOptions


def publishable_ai_values(
    files: Sequence[Path], opts: TaxonomyOptions
) -> tuple[list[str], list[int], int]:
    """The AI values the engine publishes (above both thresholds) with their conversation counts,
    heaviest first, and how many it suppressed."""
    engine = Engine(tables=[], min_conversations=opts.min_conversations, min_users=opts.min_users)
    check_columns(files)  # a zero-row file gives the engine no batch to check
    for f in files:
        try:
            for batch in iter_batches(f, FEATURE_COLUMNS):
                engine.update(batch)
        except ValueError as exc:  # SchemaError, or data that is not valid (bytes not UTF-8)
            raise UserError(f"{f}: {exc}") from None
    res = engine.result()
    table = res["ai_values"]
    vals = [str(v) for v in table.column("value").to_pylist()]
    cnts = [int(c) for c in table.column("n_conversations").to_pylist()]
    order = sorted(range(len(vals)), key=lambda i: (-cnts[i], vals[i]))
    suppressed = int(res["summary"]["suppressed"]["ai_values"])
    return [vals[i] for i in order], [cnts[i] for i in order], suppressed


@dataclass
class RowScan:
    """Per analysed row: its task's index in ``tasks`` (-1: none) and its user (null user: the
    conversation is its own user); plus every distinct normalised AI value seen."""

    tasks: list[str]
    task_ids: npt.NDArray[np.int64]
    users: list[str]
    values: list[str]
    n_prelabelled: int = 0  # analysed rows with a task that already carry a task_cluster


def _rows(files: Sequence[Path], columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    for f in files:
        yield from iter_record_batches(f, columns)


def scan_rows(files: Sequence[Path]) -> RowScan:
    task_index: dict[str, int] = {}
    ids: list[int] = []
    users: list[str] = []
    values: set[str] = set()
    prelabelled = 0
    cols = ("conversation_id", "user_id", "subjective", "task", "task_cluster", "ai_values")
    for batch in _rows(files, cols):
        d = batch.to_pydict()
        none = [None] * batch.num_rows
        cids, subj, tcs = (
            d["conversation_id"],
            d.get("subjective", none),
            d.get("task_cluster", none),
        )
        for i, (task, user, vals) in enumerate(
            zip(d.get("task", none), d.get("user_id", none), d.get("ai_values", none), strict=True)
        ):
            if subj[i] is False:  # the analysis drops these rows; so do the task clusters
                continue
            key = normalize(task) if task else ""
            prelabelled += bool(key and tcs[i])
            ids.append(task_index.setdefault(key, len(task_index)) if key else -1)
            users.append(user or f"c:{cids[i]}")
            values.update(normalize(v) for v in vals or ())
    return RowScan(
        list(task_index), np.asarray(ids, dtype=np.int64), users, sorted(values), prelabelled
    )
