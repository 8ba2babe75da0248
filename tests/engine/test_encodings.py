"""The same data in every Arrow string encoding, and from polars and DuckDB, gives the same
result; input arrives through the Arrow PyCapsule interface."""

from __future__ import annotations

import pyarrow as pa
import pytest
from helpers.features import assert_same_result, make_rows, to_table
from valuescope import Engine, SchemaError

ROWS = make_rows(2000, seed=13, bad_rate=0.01)
BASE = to_table(ROWS)
KW = {"min_conversations": 4, "min_users": 2}


def result_of(data) -> dict:
    e = Engine(**KW)
    e.update(data)
    return e.result()


EXPECTED = result_of(BASE)


def recast(table: pa.Table, scalar: pa.DataType, lists: str) -> pa.Table:
    cols = []
    for f, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_list(f.type):
            inner = pa.large_string() if scalar == pa.large_string() else pa.string()
            t = pa.large_list(inner) if lists == "large" else pa.list_(inner)
            cols.append(col.cast(t))
        elif pa.types.is_string(f.type):
            cols.append(col.cast(scalar))
        else:
            cols.append(col)
    return pa.table(cols, names=table.column_names)


@pytest.mark.parametrize("scalar", [pa.string(), pa.large_string(), pa.string_view()])
@pytest.mark.parametrize("lists", ["plain", "large"])
def test_string_encodings(scalar, lists):
    assert_same_result(result_of(recast(BASE, scalar, lists)), EXPECTED)


def test_dictionary_encoded_strings_and_list_children():
    t = BASE
    for name in ["user_id", "model", "task", "task_cluster", "response_type", "conversation_id"]:
        i = t.schema.get_field_index(name)
        t = t.set_column(i, name, t.column(name).dictionary_encode())
    for name in ["ai_values", "human_values"]:
        i = t.schema.get_field_index(name)
        chunks = []
        for chunk in t.column(name).chunks:
            child = chunk.values.dictionary_encode()
            chunks.append(pa.ListArray.from_arrays(chunk.offsets, child, mask=chunk.is_null()))
        t = t.set_column(i, name, pa.chunked_array(chunks))
    assert pa.types.is_dictionary(t.schema.field("ai_values").type.value_type)
    assert_same_result(result_of(t), EXPECTED)


def test_record_batch_reader_and_batches():
    reader = pa.RecordBatchReader.from_batches(BASE.schema, BASE.to_batches(max_chunksize=333))
    assert_same_result(result_of(reader), EXPECTED)
    e = Engine(**KW)
    for b in BASE.to_batches(max_chunksize=777):
        e.update(b)
    assert_same_result(e.result(), EXPECTED)


def test_polars_dataframe():
    pl = pytest.importorskip("polars")
    df = pl.from_arrow(BASE)
    assert_same_result(result_of(df), EXPECTED)


def test_duckdb_result():
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("features", BASE)
    rel = con.sql("select * from features")
    assert_same_result(result_of(rel.arrow()), EXPECTED)
    assert_same_result(result_of(rel), EXPECTED)


def test_rejects_row_numbers_span_a_stream():
    reader = pa.RecordBatchReader.from_batches(BASE.schema, BASE.to_batches(max_chunksize=100))
    e = Engine(**KW)
    rej = e.update(reader).to_pylist()
    assert rej
    for r in rej:
        assert ROWS[r["row"]]["conversation_id"] == r["conversation_id"]


def test_schema_errors_name_the_column():
    with pytest.raises(SchemaError, match="human_values"):
        Engine().update(BASE.drop_columns(["human_values"]))
    bad = BASE.set_column(0, "conversation_id", pa.array(range(BASE.num_rows)))
    with pytest.raises(SchemaError, match="conversation_id"):
        Engine().update(bad)
    with pytest.raises(ValueError, match="__arrow_c"):
        Engine().update([1, 2, 3])


def test_extra_columns_are_ignored_and_optional_ones_may_be_absent():
    t = BASE.append_column("notes", pa.array(["x"] * BASE.num_rows))
    assert_same_result(result_of(t), EXPECTED)
    slim = BASE.select(["conversation_id", "ai_values", "human_values", "response_type"])
    r = result_of(slim)
    assert r["summary"]["n_not_subjective"] == 0
    assert r["models"].num_rows == 0
