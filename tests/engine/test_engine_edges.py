"""Edge cases of Engine.update: schemas of streams without batches, lists typed as null."""

from __future__ import annotations

import pyarrow as pa
import pytest
from helpers.features import assert_same_result, make_rows, to_table
from valuescope import Engine, SchemaError

OK = {
    "conversation_id": pa.string(),
    "ai_values": pa.list_(pa.string()),
    "human_values": pa.list_(pa.string()),
    "response_type": pa.string(),
}


def empty(schema: dict) -> pa.Table:
    t = pa.schema(schema).empty_table()
    assert t.num_rows == 0 and len(t.to_batches()) == 0  # a stream with no batch at all
    return t


@pytest.mark.parametrize(
    "change, column",
    [
        ({"ai_values": pa.int64()}, "ai_values"),
        ({"response_type": pa.list_(pa.string())}, "response_type"),
        ({"human_values": None}, "human_values"),
    ],
)
def test_zero_row_stream_with_bad_columns_is_refused(change, column):
    schema = {**OK, **change}
    schema = {k: t for k, t in schema.items() if t is not None}
    with pytest.raises(SchemaError, match=column):
        Engine().update(empty(schema))


def test_zero_row_stream_with_good_columns_counts_nothing():
    e = Engine()
    assert e.update(empty(OK)).num_rows == 0
    assert e.n_rows == 0 and e.result()["summary"]["n_conversations"] == 0


def test_null_typed_lists_count_as_empty_lists():
    rows = {
        "conversation_id": ["a", "b", "c"],
        "human_values": [["honesty"], [], None],
        "response_type": ["reframing", "no values", "mild support"],
    }
    typed_null = pa.table({**rows, "ai_values": pa.array([[], [None], None])})
    assert typed_null.schema.field("ai_values").type == pa.list_(pa.null())
    typed_str = pa.table({**rows, "ai_values": pa.array([[], [], None], pa.list_(pa.string()))})
    a, b = Engine(min_conversations=1, min_users=1), Engine(min_conversations=1, min_users=1)
    a.update(typed_null)
    b.update(typed_str)
    ra, rb = a.result(), b.result()
    assert ra["summary"] == rb["summary"]
    assert ra["summary"]["n_conversations"] == 3 and ra["summary"]["n_with_ai_values"] == 0


def _dictionary_encoded(table: pa.Table) -> pa.Table:
    """Every value column as dictionaries, as `valuescope analyze` reads Parquet."""
    d = pa.dictionary(pa.int32(), pa.string())
    out = table
    for name in ("model", "task", "task_cluster", "response_type"):
        out = out.set_column(out.schema.get_field_index(name), name, out[name].cast(d))
    for name in ("ai_values", "ai_values_explicit", "human_values"):
        out = out.set_column(out.schema.get_field_index(name), name, out[name].cast(pa.list_(d)))
    return out


@pytest.mark.parametrize("batch_rows", [40_000, 20_000])
def test_dictionary_batches_count_as_plain_strings(batch_rows):
    """Big dictionary batches are resolved on several threads from their dictionaries; plain
    strings on one thread as they come. Counts, figures and rejects (in row order) must agree."""
    rows = make_rows(40_000, seed=11, bad_rate=0.03)
    plain = to_table(rows)
    encoded = _dictionary_encoded(plain).to_batches(max_chunksize=batch_rows)
    a, b = Engine(min_conversations=5, min_users=3), Engine(min_conversations=5, min_users=3)
    rejects_a = a.update(plain).to_pylist()
    rejects_b = b.update(pa.Table.from_batches(encoded)).to_pylist()
    assert len(rejects_a) > 100 and rejects_a == rejects_b
    assert_same_result(a.result(), b.result())
