"""valuescope's own Parquet reader (Rust): it yields what pyarrow reads, with the dictionary
columns as dictionaries; the engine counts its batches as it counts pyarrow's; and a file it
cannot read is read on with pyarrow from where it stopped, every row once."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import valuescope.features as features
from helpers.features import make_rows, to_table
from valuescope import Engine
from valuescope._core import FeatureBatch, ParquetReader, ParquetReadError, parquet_row_groups
from valuescope.features import iter_batches
from valuescope.schema import FEATURE_COLUMNS

DICTIONARY = [*features.DICTIONARY_COLUMNS, *features.DICTIONARY_LISTS]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    rows = make_rows(3000, seed=21)
    path = tmp_path_factory.mktemp("reader") / "f.parquet"
    pq.write_table(to_table(rows), path, row_group_size=700)
    return path, rows


def as_pylist(batches) -> list[dict]:
    return [r for b in batches for r in pa.record_batch(b).to_pylist()]


def test_batches_hold_the_rows_pyarrow_reads_with_dictionaries(parquet):
    path, rows = parquet
    reader = ParquetReader(path, [*FEATURE_COLUMNS, "not_in_file"], DICTIONARY, 256)
    assert reader.num_rows == len(rows)
    batches = list(reader)
    assert all(isinstance(b, FeatureBatch) and 0 < b.num_rows <= 256 for b in batches)
    schema = pa.record_batch(batches[0]).schema
    assert schema.names == [c for c in to_table(rows).schema.names if c in FEATURE_COLUMNS]
    for c in DICTIONARY:
        t = schema.field(c).type
        inner = t.value_type if pa.types.is_list(t) else t
        assert pa.types.is_dictionary(inner), (c, t)
    for c in ("conversation_id", "user_id"):
        assert schema.field(c).type == pa.string()
    expected = pq.read_table(path, columns=schema.names).to_pylist()
    assert as_pylist(batches) == expected


def test_row_groups_and_slices(parquet):
    path, rows = parquet
    reader = ParquetReader(path, ["conversation_id"], [], 1000, [1, 3])
    assert reader.num_rows == 1400
    ids = [r["conversation_id"] for r in as_pylist(reader)]
    assert ids == [r["conversation_id"] for r in rows[700:1400] + rows[2100:2800]]
    (b,) = ParquetReader(path, ["conversation_id"], [], 700, [0])
    tail = [{"conversation_id": r["conversation_id"]} for r in rows[690:700]]
    assert as_pylist([b.slice(690)]) == tail
    assert b.slice(3, 2).num_rows == 2 and b.slice(800).num_rows == 0
    with pytest.raises(ParquetReadError, match="row group 9"):
        ParquetReader(path, ["conversation_id"], [], 10, [9])


def test_engine_counts_its_batches_as_pyarrow_tables(parquet):
    path, _ = parquet
    ours, ref = Engine(min_conversations=2, min_users=2), Engine(min_conversations=2, min_users=2)
    reader = ParquetReader(path, list(FEATURE_COLUMNS), DICTIONARY, 512)
    assert ours.update(reader.empty()).num_rows == 0
    rejects = [r for b in reader for r in ours.update(b).to_pylist()]
    ref_rejects = ref.update(pq.read_table(path)).to_pylist()
    # the reader's batches restart row numbers; the rejects are the same rows, batch by batch
    assert len(rejects) == len(ref_rejects)
    a, b = ours.result(), ref.result()
    assert a["summary"] == b["summary"]
    for key in a:
        if key != "summary":
            assert a[key].equals(b[key]), key


def test_empty_batch_checks_the_columns(tmp_path):
    from valuescope._core import SchemaError

    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"conversation_id": pa.array([], pa.string())}), path)
    with pytest.raises(SchemaError, match="missing required column 'ai_values'"):
        Engine().update(ParquetReader(path, list(FEATURE_COLUMNS), DICTIONARY).empty())
    good = to_table(make_rows(5, seed=1)).set_column(9, "response_type", pa.array([3] * 5))
    pq.write_table(good, path)
    with pytest.raises(SchemaError, match="column 'response_type' has type Int64"):
        Engine().update(ParquetReader(path, list(FEATURE_COLUMNS), DICTIONARY).empty())


def test_not_parquet_is_a_read_error(tmp_path):
    path = tmp_path / "text.parquet"
    path.write_text("conversation_id\na\n")
    with pytest.raises(ParquetReadError):
        ParquetReader(path, ["conversation_id"])


def rows_of(batches) -> list[str]:
    return [r["conversation_id"] for r in as_pylist(batches)]


def test_a_codec_it_lacks_is_read_by_pyarrow(tmp_path):
    rows = make_rows(500, seed=3)
    path = tmp_path / "brotli.parquet"
    pq.write_table(to_table(rows), path, compression="brotli", row_group_size=200)
    with pytest.raises(ParquetReadError):
        list(ParquetReader(path, ["conversation_id"]))
    got = rows_of(iter_batches(path, FEATURE_COLUMNS, 64))
    assert got == [r["conversation_id"] for r in rows]


def test_failure_part_way_goes_on_with_pyarrow_every_row_once(parquet, monkeypatch):
    path, rows = parquet
    real = features.ParquetReader

    class Failing:
        """The real reader, failing after three batches."""

        def __init__(self, *args):
            self.inner = real(*args)

        def __iter__(self):
            for i, b in enumerate(self.inner):
                if i == 3:
                    raise ParquetReadError("decoding failed")
                yield b

    monkeypatch.setattr(features, "ParquetReader", Failing)
    batches = list(iter_batches(path, FEATURE_COLUMNS, 300, row_groups=[1, 2, 3], first_row=700))
    assert any(isinstance(b, FeatureBatch) for b in batches)
    assert any(isinstance(b, pa.RecordBatch) for b in batches)
    assert rows_of(batches) == [r["conversation_id"] for r in rows[700:2800]]


def test_feed_returns_the_rejects_update_returns():
    table = to_table(make_rows(400, seed=5, bad_rate=0.1))
    fed, updated = Engine(), Engine()
    rejects = fed.feed(table)
    expected = updated.update(table).to_pylist()
    assert len(expected) > 0
    assert rejects == [(r["row"], r["conversation_id"], r["reason"]) for r in expected]
    assert fed.result()["summary"] == updated.result()["summary"]


def test_row_group_sizes_come_from_the_footer(parquet):
    path, rows = parquet
    assert parquet_row_groups(path) == [700, 700, 700, 700, 200]
    assert sum(parquet_row_groups(path)) == len(rows) == pq.ParquetFile(path).metadata.num_rows


def test_analyze_imports_pyarrow_only_when_it_runs():
    """Reading and counting need no pyarrow: importing the command's module leaves it out, so
    that `analyze` can import it on a thread while the engine works."""
    code = "import sys, valuescope.analyze; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("column", "type_"),
    [
        ("ai_values", pa.large_list(pa.large_string())),
        ("human_values", pa.list_(pa.large_string())),
        ("response_type", pa.dictionary(pa.int8(), pa.string())),
        ("model", pa.string_view()),
        ("user_id", pa.dictionary(pa.int32(), pa.string())),
    ],
)
def test_other_string_types_read_as_pyarrow_reads_them(tmp_path, column, type_):
    """Files whose columns pyarrow wrote as large, view or dictionary strings (the Arrow schema
    stored in the file says so) are read by valuescope's reader and counted alike."""
    table = to_table(make_rows(1500, seed=4))
    i = table.schema.get_field_index(column)
    table = table.set_column(i, column, table.column(column).cast(type_))
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path, row_group_size=500)
    ours, ref = Engine(min_conversations=2, min_users=2), Engine(min_conversations=2, min_users=2)
    batches = list(iter_batches(path, FEATURE_COLUMNS, 300))
    assert all(isinstance(b, FeatureBatch) for b in batches)
    for b in batches:
        ours.feed(b)
    ref.update(pq.read_table(path))
    a, b = ours.result(), ref.result()
    assert a["summary"] == b["summary"]
    for key in a:
        if key != "summary":
            assert a[key].equals(b[key]), key
