"""Edge cases of Engine.update: schemas of streams without batches, lists typed as null."""

from __future__ import annotations

import pyarrow as pa
import pytest
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
