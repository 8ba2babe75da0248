"""Hypothesis properties of the public Python API beyond the engine's state handling: value
normalisation, the conversation reader, feature-file checks, CSV output, the argument checks of
Engine and MiniBatchKMeans, and the FFI boundary (whatever Arrow data comes in, a Rust panic never
reaches Python: the answer is a result or a ValueError)."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle import RESPONSE_TYPES, norm
from valuescope import Engine, KMeans, MiniBatchKMeans, SchemaError, normalize
from valuescope.analyze import AnalyzeOptions, analyze_files, output
from valuescope.analyze.output import REJECTS_HEADER, RejectsWriter, csv_bytes, write_csv
from valuescope.errors import UserError
from valuescope.extract.conversations import (
    Conversation,
    Rejected,
    count_records,
    read_conversations,
)

QUICK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Python 3.11's unicodedata knows Unicode 14; the Rust side may know a later version, in which
# characters unassigned here gained case or compatibility mappings. Assigned characters only.
ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))
SPACES = st.sampled_from(
    [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000"]
)
FOLDING = st.sampled_from(["Ａ", "ﬁ", "Σ", "ΟΔΟΣ", "İ", "Ω", "①", "ｈｏｎｅｓｔｙ", "ẞ", "Å"])
VALUE_TEXT = st.lists(st.one_of(ASSIGNED, SPACES, FOLDING), max_size=12).map("".join)


# --- value normalisation ---------------------------------------------------------------------


@QUICK
@given(VALUE_TEXT)
def test_normalize_is_nfkc_lower_trim_collapse_and_idempotent(raw):
    out = normalize(raw)
    # the design's rule, spelled out in plain Python
    assert out == " ".join(unicodedata.normalize("NFKC", raw).lower().split())
    assert normalize(out) == out


ROWS_SCHEMA = pa.schema(
    [("conversation_id", pa.string()), ("user_id", pa.string()),
     ("ai_values", pa.list_(pa.string())), ("human_values", pa.list_(pa.string())),
     ("response_type", pa.string())]
)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(VALUE_TEXT, max_size=4), min_size=1, max_size=15))
def test_engine_counts_each_normalised_value_once_per_conversation(value_lists):
    rows = [
        {"conversation_id": f"c{i}", "user_id": f"u{i}", "ai_values": vals, "human_values": [],
         "response_type": "reframing"}
        for i, vals in enumerate(value_lists)
    ]  # fmt: skip
    e = Engine(min_conversations=1, min_users=1)
    assert e.update(pa.Table.from_pylist(rows, schema=ROWS_SCHEMA)).num_rows == 0
    got = {r["value"]: r["n_conversations"] for r in e.result()["ai_values"].to_pylist()}
    want = Counter(k for vals in value_lists for k in {norm(v) for v in vals} if k)
    assert got == dict(want)


# --- the conversation reader -----------------------------------------------------------------

LINE_KINDS = [
    "good",
    "sharegpt",
    "duplicate",
    "broken_json",
    "no_assistant",
    "latin1",
    "not_object",
    "unknown_format",
    "no_text",
    "blank",
]
REJECTED_KINDS = {
    "duplicate",
    "broken_json",
    "no_assistant",
    "latin1",
    "not_object",
    "unknown_format",
    "no_text",
}
CHAT_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30).map(lambda s: "q" + s)


def line_for(kind: str, i: int, text: str, earlier_good: list[str]) -> bytes:
    cid = f"c{i}"
    turns = [{"role": "user", "content": text}, {"role": "assistant", "content": text[::-1]}]
    rec: Any
    if kind == "good":
        rec = {"id": cid, "messages": turns}
    elif kind == "sharegpt":
        rec = {"id": cid, "conversations": [{"from": "human", "value": text},
                                            {"from": "gpt", "value": "ok"}]}  # fmt: skip
    elif kind == "duplicate":
        rec = {"id": earlier_good[0], "messages": turns}
    elif kind == "broken_json":
        return json.dumps({"id": cid, "messages": turns}).encode()[:-2]
    elif kind == "no_assistant":
        rec = {"id": cid, "messages": turns[:1]}
    elif kind == "latin1":
        rec = {"id": cid, "messages": [{"role": "user", "content": "caf\u00e9 " + text},
                                       turns[1]]}  # fmt: skip
        return json.dumps(rec, ensure_ascii=False).encode("utf-8").replace(b"\xc3\xa9", b"\xe9")
    elif kind == "not_object":
        rec = [text, i]
    elif kind == "unknown_format":
        rec = {"id": cid, "text": text}
    elif kind == "no_text":
        rec = {"id": cid, "messages": [{"role": "user", "content": " "},
                                       {"role": "assistant", "content": "\n"}]}  # fmt: skip
    else:  # blank
        return b" \t"
    return json.dumps(rec, ensure_ascii=False).encode("utf-8")


@QUICK
@given(
    kinds=st.lists(st.sampled_from(LINE_KINDS), min_size=1, max_size=25),
    texts=st.lists(CHAT_TEXT, min_size=25, max_size=25),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
def test_every_jsonl_line_is_a_conversation_or_a_reject_naming_it(
    kinds, texts, crlf, final_newline
):
    good: list[str] = []
    expected: dict[int, str] = {}  # line number -> kind
    lines = []
    for i, kind in enumerate(kinds):
        if kind == "duplicate" and not good:
            kind = "good"
        lines.append(line_for(kind, i, texts[i], good))
        if kind in ("good", "sharegpt"):
            good.append(f"c{i}")
        if kind != "blank":
            expected[i + 1] = kind
    nl = b"\r\n" if crlf else b"\n"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "chats.jsonl"
        path.write_bytes(nl.join(lines) + (nl if final_newline else b""))
        items = list(read_conversations([str(path)]))
        assert count_records(str(path)) == len(expected)
    seen: dict[int, Conversation | Rejected] = {}
    for it in items:
        assert it.line not in seen, f"line {it.line} reported twice"
        seen[it.line] = it
    assert sorted(seen) == sorted(expected), "counts in != counts out"
    for line, kind in expected.items():
        it = seen[line]
        if kind in REJECTED_KINDS:
            assert isinstance(it, Rejected), (kind, it)
            assert it.reason and it.file == str(path) and "Traceback" not in it.reason
        else:
            assert isinstance(it, Conversation), (kind, it)
            assert it.conversation_id == f"c{line - 1}"
            assert it.messages[0].content == texts[line - 1]


# --- feature files: column checks and counts -------------------------------------------------

REQUIRED = ("conversation_id", "ai_values", "human_values", "response_type")  # not nullable
SCALARS = ("conversation_id", "user_id", "model", "task", "task_cluster", "response_type")
LISTS = ("ai_values", "ai_values_explicit", "human_values")
STRING_TYPES = [pa.string(), pa.large_string(), pa.string_view()]
KEY_TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32()]
WRONG_TYPES = [
    pa.int64(),
    pa.float64(),
    pa.bool_(),
    pa.binary(),
    pa.large_binary(),
    pa.list_(pa.int32()),
    pa.list_(pa.list_(pa.string())),
    pa.list_(pa.binary()),
    pa.struct([("a", pa.string())]),
    pa.dictionary(pa.int8(), pa.int64()),
    pa.list_(pa.string(), 2),  # fixed-size list
]


def stringish_types(parquet: bool) -> st.SearchStrategy[pa.DataType]:
    plain = STRING_TYPES[:2] if parquet else STRING_TYPES  # Parquet cannot store string views
    return st.one_of(
        st.sampled_from(plain),
        st.builds(pa.dictionary, st.sampled_from(KEY_TYPES), st.sampled_from(plain)),
    )


def list_types(parquet: bool) -> st.SearchStrategy[pa.DataType]:
    return st.builds(
        lambda f, v: f(v), st.sampled_from([pa.list_, pa.large_list]), stringish_types(parquet)
    )


def is_stringish(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return pa.types.is_integer(t.index_type) and is_stringish(t.value_type)
    return t in (pa.string(), pa.large_string(), pa.string_view())


def column_ok(name: str, t: pa.DataType) -> bool | None:
    """The feature schema (DESIGN.md) as a rule: True, False, or None where it leaves the answer
    open (an all-null column of Arrow's null type)."""
    if pa.types.is_null(t):
        return False if name == "conversation_id" else None
    if name == "subjective":
        return pa.types.is_boolean(t)
    if name in LISTS:
        return (pa.types.is_list(t) or pa.types.is_large_list(t)) and is_stringish(t.value_type)
    return is_stringish(t)


@st.composite
def feature_schemas(draw, parquet: bool = False) -> dict[str, pa.DataType]:
    """Every column of the right type, or one column missing or mistyped, or anything."""
    mode = draw(st.sampled_from(["good", "one_off", "any"]))
    names = (*SCALARS, "subjective", *LISTS)
    odd = draw(st.sampled_from(names))
    schema: dict[str, pa.DataType] = {}
    for name in names:
        p_missing, p_wrong = {"good": (0, 0), "one_off": (0.5, 1), "any": (0.08, 0.12)}[mode]
        if mode == "one_off" and name != odd:
            p_missing, p_wrong = 0, 0
        if name not in REQUIRED and mode == "good":
            p_missing = 0.1
        if draw(st.floats(0, 1)) < p_missing:
            continue  # missing
        roll = draw(st.floats(0, 1))
        if roll < p_wrong:
            t = draw(st.sampled_from(WRONG_TYPES + ([pa.list_(pa.string())] if name in SCALARS
                                                    else [pa.string()])))  # fmt: skip
        elif mode == "any" and roll < 0.17:
            t = pa.null()
        elif name == "subjective":
            t = pa.bool_()
        else:
            t = draw(list_types(parquet) if name in LISTS else stringish_types(parquet))
        if parquet and pa.types.is_fixed_size_list(t):
            t = pa.list_(pa.int32())
        schema[name] = t
    if draw(st.booleans()):
        schema["extra"] = draw(st.sampled_from([pa.string(), pa.int64(), pa.binary()]))
    return schema


def expected_ok(
    schema: dict[str, pa.DataType], tables: list[tuple[str, str]] | None = None
) -> bool | None:
    """Whether the engine must accept the columns: the required ones present, and every column
    the analysis reads (the default tables read all of them) of the right type."""
    if any(name not in schema for name in REQUIRED):
        return False
    read = {"conversation_id", "user_id", "subjective", "model", "response_type", *LISTS}
    if tables is None:
        read |= {"task", "task_cluster"}
    for a, b in tables or []:
        read |= {a, b}
    if "extra" in read and "extra" not in schema:
        return False
    verdicts = [column_ok(n, t) for n, t in schema.items() if n in read]
    if False in verdicts:
        return False
    return None if None in verdicts else True


TEXT = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(RESPONSE_TYPES + ["Mild Support ", "enthusiastic agreement", ""]),
    st.just("h" * 70_000),  # a long string, well past any inline buffer
)


def values_for(t: pa.DataType, n: int, draw) -> pa.Array:
    """n random values of type t, nulls anywhere."""
    maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
    if pa.types.is_null(t):
        return pa.nulls(n)
    if pa.types.is_dictionary(t):
        plain = values_for(t.value_type, n, draw)
        return plain.dictionary_encode().cast(t)
    if pa.types.is_fixed_size_list(t):
        items = draw(st.lists(maybe(st.lists(TEXT, min_size=2, max_size=2)), min_size=n,
                              max_size=n))  # fmt: skip
        return pa.array(items, t)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = t.value_type
        if pa.types.is_dictionary(inner):
            inner = inner.value_type
        if pa.types.is_list(inner):
            elem = st.lists(maybe(TEXT), max_size=2)
        elif pa.types.is_integer(inner):
            elem = st.integers(-(2**31), 2**31 - 1)
        elif pa.types.is_binary(inner):
            elem = st.binary(max_size=6)
        else:
            elem = TEXT
        items = draw(st.lists(maybe(st.lists(maybe(elem), max_size=4)), min_size=n, max_size=n))
        if pa.types.is_dictionary(t.value_type):
            flat = pa.array([x for row in items if row for x in row], t.value_type.value_type)
            values = flat.dictionary_encode().cast(t.value_type)
            offsets, k = [0], 0
            for row in items:
                k += len(row or [])
                offsets.append(k)
            mask = pa.array([row is None for row in items], pa.bool_())
            cls = pa.ListArray if pa.types.is_list(t) else pa.LargeListArray
            return cls.from_arrays(pa.array(offsets, pa.int32() if cls is pa.ListArray
                                            else pa.int64()), values, mask=mask)  # fmt: skip
        return pa.array(items, t)
    if pa.types.is_struct(t):
        return pa.array(draw(st.lists(maybe(st.builds(dict, a=TEXT)), min_size=n, max_size=n)), t)
    if pa.types.is_boolean(t):
        strat: Any = st.booleans()
    elif pa.types.is_integer(t):
        strat = st.integers(-(2**63), 2**63 - 1)
    elif pa.types.is_floating(t):
        strat = st.floats(allow_nan=True, allow_infinity=True)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        strat = st.binary(max_size=8)  # any bytes, UTF-8 or not
    else:
        strat = TEXT
    return pa.array(draw(st.lists(maybe(strat), min_size=n, max_size=n)), t)


@st.composite
def feature_tables(draw, parquet: bool = False) -> pa.Table:
    schema = draw(feature_schemas(parquet))
    n = draw(st.integers(0, 12) | st.integers(3, 12))
    cols = {name: values_for(t, n, draw) for name, t in schema.items()}
    return pa.table(cols) if cols else pa.table({"x": pa.array([None] * n, pa.null())})


def analysis_totals_hold(summary: dict, n_rows: int, rejects: pa.Table | list) -> None:
    assert summary["n_rows"] == n_rows
    n_rej = len(rejects) if isinstance(rejects, list) else rejects.num_rows
    assert summary["n_rejected"] == n_rej
    assert summary["n_conversations"] + summary["n_not_subjective"] + n_rej == n_rows


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(table=feature_tables(parquet=True))
@example(table=pa.table({"conversation_id": pa.array([], pa.int64())}))  # no rows, bad columns
def test_analyze_refuses_bad_columns_by_name_and_accounts_for_every_row(table):
    ok = expected_ok({f.name: f.type for f in table.schema})
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "features.parquet"
        pq.write_table(table, src)
        # what Parquet gives back is what analyze sees
        ok = expected_ok({f.name: f.type for f in pq.read_schema(src)})
        opts = AnalyzeOptions(min_conversations=1, min_users=1, progress=False)
        try:
            rep = analyze_files([src], Path(d) / "out", opts)
        except UserError as exc:
            msg = str(exc)
            assert ok is not True, msg
            assert msg.startswith(f"{src}: ") and "\n" not in msg
            named = [n for n in (*SCALARS, "subjective", *LISTS) if f"'{n}'" in msg]
            assert named, msg
            assert (
                named[0] not in table.column_names
                or column_ok(named[0], pq.read_schema(src).field(named[0]).type) is not True
            ), msg
            return
        assert ok is not False, f"accepted a table with bad columns: {table.schema}"
        with (Path(d) / "out" / "rejects.csv").open(newline="", encoding="utf-8") as fh:
            rejects = list(csv.DictReader(fh))
        analysis_totals_hold(rep.summary, table.num_rows, rejects)
        for r in rejects:
            assert r["file"] == str(src) and 0 <= int(r["row"]) < table.num_rows and r["reason"]


# --- the FFI boundary ------------------------------------------------------------------------


def call_engine(fn, *args) -> tuple[str, Any]:
    """('ok', result) or ('error', exc) for a ValueError; anything else fails the test by name
    (a pyo3 PanicException derives from BaseException, so it is caught here too)."""
    try:
        return "ok", fn(*args)
    except ValueError as exc:
        return "error", exc
    except BaseException as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{type(exc).__module__}.{type(exc).__name__} crossed the FFI: {exc}")


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    table=feature_tables(),
    cut=st.tuples(st.integers(0, 3), st.integers(1, 12)),
    chunk=st.integers(1, 5),
    tables=st.sampled_from([None, [("task", "human_values")], [("extra", "ai_values")]]),
)
def test_no_panic_crosses_the_ffi_whatever_the_arrow_data(table, cut, chunk, tables):
    sliced = table.slice(min(cut[0], table.num_rows), cut[1])  # non-zero offsets over the FFI
    ok = expected_ok({f.name: f.type for f in table.schema}, tables)
    engine = Engine(tables=tables, min_conversations=1, min_users=1)
    reader = pa.RecordBatchReader.from_batches(sliced.schema, sliced.to_batches(chunk))
    status, out = call_engine(engine.update, reader)
    if status == "error":
        assert ok is not True, out
        assert str(out) and "\n" not in str(out)
        return
    # the engine checks the columns of the batches it is given: no rows, no batch to check
    assert ok is not False or sliced.num_rows == 0, f"accepted {sliced.schema}"
    rows = out.column("row").to_pylist()
    assert all(0 <= r < sliced.num_rows for r in rows) and len(set(rows)) == len(rows)
    assert all(out.column("reason").to_pylist())
    status, result = call_engine(engine.result)
    assert status == "ok"
    analysis_totals_hold(result["summary"], sliced.num_rows, out)
    status, again = call_engine(Engine.from_bytes, engine.to_bytes())
    assert status == "ok" and again.result()["summary"] == result["summary"]


MALFORMED = r"""
import pyarrow as pa, sys
sys.path.insert(0, sys.argv[1])
from helpers.features import make_rows, to_table
from valuescope import Engine
table = to_table(make_rows(3, seed=1))
data = pa.py_buffer(b"ab\xff\xfecd")
good_offsets = pa.array([0, 2, 4, 6], pa.int32()).buffers()[1]
wild_offsets = pa.array([0, 2, 1 << 20, 6], pa.int32()).buffers()[1]
bad_utf8 = pa.Array.from_buffers(pa.string(), 3, [None, good_offsets, data])
out_of_bounds = pa.Array.from_buffers(pa.string(), 3, [None, wild_offsets, data])
keys = pa.array([0, 9, 1], pa.int8()).buffers()[1]
bad_keys = pa.DictionaryArray.from_buffers(
    pa.dictionary(pa.int8(), pa.string()), 3, [None, keys], dictionary=pa.array(["a", "b"]))
for column in ["conversation_id", "user_id", "model", "task", "response_type",
               "ai_values", "human_values"]:
    for what, bad in [("utf8", bad_utf8), ("offsets", out_of_bounds), ("keys", bad_keys)]:
        if column in ("ai_values", "human_values"):
            bad = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), bad)
        t = table.set_column(table.schema.get_field_index(column), column, bad)
        try:
            Engine(min_conversations=1, min_users=1).update(t)
            print(column, what, "accepted")
        except ValueError as exc:
            print(column, what, "refused:", exc)
"""


def test_malformed_arrow_buffers_are_refused_not_read(tmp_path):
    """Arrays built straight from buffers skip pyarrow's checks: bytes that are not UTF-8,
    offsets past the end of the data, dictionary keys past the dictionary. The engine must refuse
    them with a ValueError naming the column. Run in a child process: reading them unchecked is
    a segmentation fault."""
    import subprocess
    import sys

    script = tmp_path / "malformed.py"
    script.write_text(MALFORMED)
    p = subprocess.run([sys.executable, str(script), str(Path(__file__).parents[1])],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}"
    lines = p.stdout.splitlines()
    assert len(lines) == 21, p.stdout
    for line in lines:
        column = line.split()[0]
        assert "refused:" in line and f"column '{column}'" in line, line


SLICED_LISTS = r"""
import pyarrow as pa, sys
sys.path.insert(0, sys.argv[1])
from helpers.features import make_rows, to_table
from valuescope import Engine
table = to_table(make_rows(3, seed=1))
offsets = pa.array([0, 1, 2, 3, 4, 5, 6], pa.int32()).buffers()[1]
child = pa.Array.from_buffers(pa.string(), 6, [None, offsets, pa.py_buffer(b"abc\xff\xfe\xfd")])
clean = pa.array(["a", "b", "c"])
for name, offsets, values in [("clean", [0, 1, 2, 3], clean), ("valid-part", [0, 1, 2, 3], child),
                              ("invalid-part", [0, 1, 2, 4], child)]:
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
    t = table.set_column(table.schema.get_field_index("ai_values"), "ai_values", lists)
    try:
        engine = Engine(min_conversations=1, min_users=1)
        engine.update(t)
        values = sorted(r["value"] for r in engine.result()["ai_values"].to_pylist())
        print(name, "accepted", *values)
    except ValueError as exc:
        print(name, "refused:", exc)
"""


def test_list_columns_are_checked_where_their_offsets_reach(tmp_path):
    """A slice of a list column keeps the list's whole child array, so the engine checks the
    entries the offsets reach (checking the whole child made small batches quadratic): bad
    bytes there are refused, bad bytes no row reaches are never read. In a child process, as
    above."""
    import subprocess
    import sys

    script = tmp_path / "sliced.py"
    script.write_text(SLICED_LISTS)
    p = subprocess.run([sys.executable, str(script), str(Path(__file__).parents[1])],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr[-2000:]}"
    clean, valid, invalid = p.stdout.splitlines()
    assert clean.startswith("clean accepted ") and valid == clean.replace("clean", "valid-part")
    assert invalid.startswith("invalid-part refused:") and "column 'ai_values'" in invalid


def test_ten_megabyte_strings_in_every_column():
    big = "v" * 10_000_000
    rows = [
        {"conversation_id": big + str(i), "user_id": big, "model": big, "task": big,
         "task_cluster": big, "ai_values": [big, "honesty"], "ai_values_explicit": [big],
         "human_values": [big], "response_type": "Reframing"}
        for i in range(3)
    ]  # fmt: skip
    engine = Engine(min_conversations=1, min_users=1)
    status, rejects = call_engine(engine.update, pa.Table.from_pylist(rows))
    assert status == "ok" and rejects.num_rows == 0
    counts = {r["value"]: r["n_conversations"] for r in engine.result()["ai_values"].to_pylist()}
    assert counts == {big: 3, "honesty": 3}


@QUICK
@given(alpha=st.floats(0, 1) | st.floats(), n_tests=st.integers(-5, 10**12))
def test_bonferroni_threshold_is_the_normal_quantile(alpha, n_tests):
    from scipy.stats import norm
    from valuescope import bonferroni_threshold

    status, z = call_engine(bonferroni_threshold, alpha, n_tests)
    if not (0 < alpha < 1 and n_tests >= 1):
        assert status == "error"
        return
    want = norm.isf(alpha / (2 * n_tests))
    assert status == "ok" and math.isclose(z, want, rel_tol=1e-9, abs_tol=1e-9), (z, want)


# --- Engine options --------------------------------------------------------------------------

U64, U32 = 2**64 - 1, 2**32 - 1
COLUMN_NAMES = st.sampled_from(
    ["ai_values", "human_values", "task", "task_cluster", "model", "response_type",
     "ai_values_explicit", "extra", "", "conversation_id", "user_id", "subjective"]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    min_conversations=st.integers(0, 100) | st.integers(-(2**70), 2**70),
    min_users=st.integers(1, 100) | st.integers(-(2**70), 2**70),
    alpha=st.floats(0, 1) | st.floats(),
    n_tests=st.none() | st.integers(1, 5000) | st.integers(-(2**70), 2**70),
    tables=st.none() | st.lists(st.tuples(COLUMN_NAMES, COLUMN_NAMES), max_size=3),
)
def test_engine_options_are_checked(min_conversations, min_users, alpha, n_tests, tables):
    uncrossable = {"", "conversation_id", "user_id", "subjective"}
    valid = (
        0 <= min_conversations <= U64
        and 1 <= min_users <= U32
        and 0 < alpha < 1
        and (n_tests is None or 1 <= n_tests <= U64)
        and (
            tables is None
            or (
                all(a != b and not {a, b} & uncrossable for a, b in tables)
                and len(set(tables)) == len(tables)
            )
        )
    )
    status, out = call_engine(Engine, tables, min_conversations, min_users, alpha, n_tests)
    if not valid:
        assert status == "error", (min_conversations, min_users, alpha, n_tests, tables)
        assert str(out) and "\n" not in str(out)
        return
    assert status == "ok", out
    assert (out.min_conversations, out.min_users, out.n_tests) == (
        min_conversations, min_users, n_tests)  # fmt: skip
    assert out.alpha == alpha and out.tables == tables


# --- MiniBatchKMeans -------------------------------------------------------------------------


@st.composite
def kmeans_inputs(draw):
    n = draw(st.integers(0, 25))
    d = draw(st.integers(1, 4) | st.integers(0, 4))
    x = np.array(
        draw(st.lists(st.floats(-1e6, 1e6), min_size=n * d, max_size=n * d)), dtype=np.float64
    ).reshape(n, d)
    poison = draw(st.sampled_from([None] * 6 + [np.nan, np.inf, -np.inf]))
    if poison is not None and x.size:
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = poison
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return x.astype(dtype), poison is not None and x.size > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=kmeans_inputs(), k=st.integers(1, 6) | st.integers(1, 30),
       seed=st.integers(0, 2**32 - 1),
       weights=st.sampled_from(["none"] * 3 + ["ones"] * 3 + ["negative", "nan", "zeros",
                                                              "short"]),
       full_batch=st.booleans())  # fmt: skip
# a near tie: 0 and 2^-23 are one rounding apart once the data is centred
@example(data=(np.array([[0.0], [29.0], [1.1920929e-07]]), False), k=3, seed=0, weights="none",
         full_batch=True)  # fmt: skip
def test_kmeans_fits_or_refuses_with_value_error(data, k, seed, weights, full_batch):
    x, poisoned = data
    n, d = x.shape
    w = {
        "none": None,
        "ones": np.ones(n),
        "negative": -np.ones(n),
        "nan": np.full(n, np.nan),
        "zeros": np.zeros(n),
        "short": np.ones(max(n - 1, 0)),
    }[weights]
    bad_weights = weights in ("negative", "nan", "zeros") and n > 0 or weights == "short"
    should_fail = n == 0 or d == 0 or poisoned or k > n or bad_weights
    km = (
        KMeans(n_clusters=k, random_state=seed, n_init=2, max_iter=5)
        if full_batch
        else MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=8, max_iter=5)
    )
    status, out = call_engine(km.fit, x, None, w)
    if should_fail:
        assert status == "error", (x.shape, k, weights, poisoned)
        assert str(out)
        return
    assert status == "ok", out
    labels = km.labels_
    assert labels.shape == (n,) and labels.min() >= 0 and labels.max() < k
    centres = km.cluster_centers_
    assert centres.shape == (k, d) and np.isfinite(centres).all()
    # labels are the nearest centres and inertia the sum of squared distances to them (weights
    # are all one), up to the rounding of |x|^2 - 2 x.c + |c|^2 in the input's precision
    x64, c64 = x.astype(np.float64), centres.astype(np.float64)
    dist = ((x64[:, None, :] - c64[None, :, :]) ** 2).sum(axis=2)
    best = dist.min(axis=1)
    eps = 1e-5 if x.dtype == np.float32 else 1e-11
    slack = eps * ((x64**2).sum(axis=1) + (c64**2).sum(axis=1).max() + 1)
    assert (dist[np.arange(n), labels] <= best + slack).all()
    assert abs(km.inertia_ - best.sum()) <= slack.sum()
    # predict is nearest up to the same rounding; it agrees with the fit's labels wherever the
    # nearest centre is clear by more than that (fit works on centred data, predict on x as it
    # is, so a near tie can round either way: both answers are then right)
    predicted = km.predict(x)
    assert (dist[np.arange(n), predicted] <= best + slack).all()
    second = np.sort(dist, axis=1)[:, 1] if k > 1 else np.full(n, np.inf)
    clear = second - best > 2 * slack
    assert (predicted[clear] == labels[clear]).all()
    status, out = call_engine(km.predict, np.zeros((2, d + 1)))
    assert status == "error" and "features" in str(out)


COUNT = st.integers(-3, 50) | st.integers(-(2**70), 2**70)


@settings(max_examples=100, deadline=None)
@given(
    n_clusters=COUNT,
    max_iter=COUNT,
    batch_size=COUNT,
    random_state=st.none() | COUNT,
    init_size=st.none() | COUNT,
    max_no_improvement=st.none() | COUNT,
    via_set_params=st.booleans(),
)
def test_kmeans_parameters_are_checked(via_set_params, **params):
    valid = (
        all(1 <= params[k] <= U64 for k in ("n_clusters", "max_iter", "batch_size"))
        and (params["random_state"] is None or 0 <= params["random_state"] <= U64)
        and (params["init_size"] is None or 1 <= params["init_size"] <= U64)
        and (params["max_no_improvement"] is None or 0 <= params["max_no_improvement"] <= U64)
    )
    if via_set_params:
        km = MiniBatchKMeans()
        before = km.get_params()
        status, out = call_engine(lambda: km.set_params(**params))
        if status == "error":  # a refused change leaves every parameter as it was
            assert km.get_params() == before
    else:
        status, out = call_engine(lambda: MiniBatchKMeans(**params))
    assert status == ("ok" if valid else "error"), (params, out)
    if valid:
        got = out.get_params()
        assert {k: got[k] for k in params} == params


@settings(max_examples=60, deadline=None)
@given(
    n_clusters=COUNT,
    max_iter=COUNT,
    n_init=COUNT,
    random_state=st.none() | COUNT,
    tol=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 3),
    via_set_params=st.booleans(),
)
def test_full_batch_kmeans_parameters_are_checked(via_set_params, **params):
    valid = (
        all(1 <= params[k] <= U64 for k in ("n_clusters", "max_iter", "n_init"))
        and (params["random_state"] is None or 0 <= params["random_state"] <= U64)
        and math.isfinite(params["tol"])
        and params["tol"] >= 0
    )
    if via_set_params:
        km = KMeans()
        before = km.get_params()
        status, out = call_engine(lambda: km.set_params(**params))
        if status == "error":  # a refused change leaves every parameter as it was
            assert km.get_params() == before
    else:
        status, out = call_engine(lambda: KMeans(**params))
    assert status == ("ok" if valid else "error"), (params, out)
    if valid:
        got = out.get_params()
        assert {k: got[k] for k in params} == params


# --- CSV output ------------------------------------------------------------------------------

# the characters CSV treats specially come up often, alone and together
SPECIAL = st.sampled_from([",", '"', "\r", "\n", "\r\n", "\x00", " ", "\ufeff", "\u2028"])
CELL_TEXT = st.lists(st.one_of(st.characters(exclude_categories=("Cs",)), SPECIAL), max_size=8).map(
    "".join
)
CSV_ROWS = st.lists(
    st.tuples(
        st.none() | CELL_TEXT,
        st.none() | st.floats(),
        st.integers(-(2**63), 2**63 - 1),
        st.none() | st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


def cells_table(cells: list[tuple]) -> pa.Table:
    """CSV_ROWS drawn as a table: a string, a float, an integer and a boolean column."""
    strings, floats, ints, bools = (list(c) for c in zip(*cells, strict=True))
    return pa.table(
        {
            "value": pa.array(strings, pa.string()),
            "x": pa.array(floats, pa.float64()),
            "n": pa.array(ints, pa.int64()),
            "flag": pa.array(bools, pa.bool_()),
        }
    )


@QUICK
@given(CSV_ROWS)
@example([("\r", 0.1, 1, True), ("a\rb", None, -1, None), ('"', float("nan"), 0, False)])
def test_csv_output_reads_back_identically(cells):
    table = cells_table(cells)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        write_csv(path, table)
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    assert rows[0] == ["value", "x", "n", "flag"] and len(rows) == len(cells) + 1
    for (s, x, i, b), row in zip(cells, rows[1:], strict=True):
        assert row[0] == (s or "")  # an empty string and a null both read back as ""
        if x is None or math.isnan(x):
            assert row[1] == ""
        else:
            assert float(row[1]) == x  # repr round-trips every float
        assert int(row[2]) == i
        assert row[3] == ("" if b is None else ("true" if b else "false"))


def python_csv(table: pa.Table) -> str:
    """The oracle: Python's csv module, each cell formatted by Python (floats by repr)."""

    def text(v: Any) -> Any:
        if v is None or (isinstance(v, float) and v != v):
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return repr(v) if isinstance(v, float) else v

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    w.writerows([text(v) for v in row.values()] for row in table.to_pylist())
    return buf.getvalue()


@QUICK
@given(CSV_ROWS.filter(lambda rows: not any(r[0] and "\r" in r[0] for r in rows)))
@example([("1,5", 1e16, 2**63 - 1, True), ('"q"', 1e-05, -1, None), ("", -0.0, 0, False)])
@example([("x", 0.1 + 0.2, 0, None), ("y", 5e-324, 0, None), ("z", float("-inf"), 0, None)])
def test_csv_bytes_match_pythons_csv_module(cells):
    """The Rust writer against Python's own formatting, byte for byte (the two differ only for a
    lone carriage return, which Python leaves unquoted; that case is checked above)."""
    table = cells_table(cells)
    assert csv_bytes(table).decode("utf-8") == python_csv(table)
    assert csv_bytes(table, ["flag", "value"]).decode("utf-8") == python_csv(
        table.select(["flag", "value"])
    )


@QUICK
@given(
    CSV_ROWS.filter(lambda rows: not any(r[0] and "\r" in r[0] for r in rows)), st.integers(1, 4)
)
def test_csv_written_piece_by_piece_equals_the_whole(tmp_path_factory, cells, chunk):
    """A table longer than the chunk is written in slices: one header, every row once, in order."""
    table = cells_table(cells)
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    saved, output.CSV_CHUNK_ROWS = output.CSV_CHUNK_ROWS, chunk
    try:
        write_csv(path, table, ["x", "value"])
    finally:
        output.CSV_CHUNK_ROWS = saved
    assert path.read_text(encoding="utf-8") == python_csv(table.select(["x", "value"]))


def test_csv_bytes_refuse_what_they_cannot_write():
    with pytest.raises(ValueError, match="'nested'"):
        csv_bytes(pa.table({"nested": pa.array([[1]])}))
    with pytest.raises(SchemaError, match="missing"):
        csv_bytes(pa.table({"a": [1]}), ["missing"])


@QUICK
@given(st.lists(st.tuples(CELL_TEXT, st.integers(0, 2**40), CELL_TEXT, CELL_TEXT), max_size=8))
@example([("f.parquet", 3, "id\r", "reason")])
def test_rejects_csv_reads_back_identically(rows):
    buf = io.BytesIO()
    RejectsWriter(buf, header=True).write(rows)
    back = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"), newline="")))
    assert back[0] == list(REJECTS_HEADER)
    assert back[1:] == [[a, str(b), c, e] for a, b, c, e in rows]
