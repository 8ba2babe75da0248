"""Feature files are read with dictionary-encoded value lists, and fall back to plain strings
part way through a file without losing or repeating a row."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.features import make_rows, to_table
from valuescope import Engine
from valuescope.features import read_batches
from valuescope.schema import FEATURE_COLUMNS


@pytest.fixture
def parquet(tmp_path):
    rows = make_rows(3000, seed=8)
    path = tmp_path / "f.parquet"
    pq.write_table(to_table(rows), path, row_group_size=700)
    return path, rows


def test_value_lists_are_dictionaries_and_equal_the_plain_read(parquet):
    path, rows = parquet
    batches = list(read_batches(path, FEATURE_COLUMNS, 350))
    for c in ("ai_values", "human_values", "ai_values_explicit", "model"):
        # batches inside one row group come as dictionaries (pyarrow decodes a batch that
        # straddles two row groups as plain strings)
        t = batches[0].schema.field(c).type
        inner = t.value_type if pa.types.is_list(t) else t
        assert pa.types.is_dictionary(inner), (c, t)
        got = [v for b in batches for v in b.column(c).to_pylist()]
        assert got == [r[c] for r in rows], c


def test_fallback_mid_file_keeps_every_row_once(parquet, monkeypatch):
    path, rows = parquet
    real = pq.ParquetFile.iter_batches
    calls = []

    def flaky(self, *args, **kwargs):
        nested = pa.types.is_dictionary(self.schema_arrow.field("ai_values").type.value_type)
        calls.append(nested)
        for i, b in enumerate(real(self, *args, **kwargs)):
            if nested and i == 3:
                raise pa.ArrowNotImplementedError(
                    "Nested data conversions not implemented for chunked array outputs"
                )
            yield b

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", flaky)
    batches = list(read_batches(path, FEATURE_COLUMNS, 400))
    assert calls == [True, False]
    ids = [i for b in batches for i in b.column("conversation_id").to_pylist()]
    assert ids == [r["conversation_id"] for r in rows]
    # the engine takes the mixed stream and counts as from one plain read
    mixed, ref = Engine(min_conversations=2, min_users=2), Engine(min_conversations=2, min_users=2)
    for b in batches:
        mixed.update(b)
    ref.update(pq.read_table(path))
    a, b = mixed.result(), ref.result()
    assert a["summary"] == b["summary"]
    assert a["ai_values"].equals(b["ai_values"])
    assert a["tables/human_values__ai_values"].equals(b["tables/human_values__ai_values"])


def test_mistyped_list_column_is_not_read_as_dictionary(tmp_path):
    t = pa.table({"conversation_id": ["a"], "ai_values": pa.array([[1, 2]], pa.list_(pa.int64()))})
    path = tmp_path / "m.parquet"
    pq.write_table(t, path)
    (b,) = read_batches(path, FEATURE_COLUMNS, 10)
    assert b.schema.field("ai_values").type == pa.list_(pa.int64())
