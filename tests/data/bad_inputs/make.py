"""The corpus of bad inputs that `tests/test_bad_inputs.py` feeds to `valuescope analyze` and
`valuescope extract`, and what each must lead to.

    python tests/data/bad_inputs/make.py      # rewrites every file below from scratch

`features/` holds feature files for `analyze`, `conversations/` chat logs for `extract`. Every
file is small and made here, without randomness, so that the corpus can be read, reviewed and
regenerated. The one big input (a 10 MB message) is not kept: `write_huge_message` makes it at
test time.

Each case is either refused (exit status 2, one line on stderr naming the file and, where it
applies, the column or row) or read to the end with its bad records listed in the rejects file
(`rejected` of them), every other record in the output.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    path: str  # relative to this directory
    stage: str  # "analyze" or "extract"
    what: str
    refused: bool  # exit status 2 with one line, or the run completes
    names: tuple[str, ...] = ()  # what the one-line error must name besides the file
    rejected: int = 0  # records in the rejects file when the run completes


CASES = [
    Case("features/truncated.parquet", "analyze", "a valid file cut in half", True),
    Case("features/text_named.parquet", "analyze", "a CSV text file named .parquet", True),
    Case("features/empty.parquet", "analyze", "a 0-byte file", True),
    Case("features/zero_rows.parquet", "analyze", "the right columns and no rows", False),
    Case(
        "features/zero_rows_wrong_columns.parquet",
        "analyze",
        "no rows and none of the feature columns",
        True,
        ("'conversation_id'",),
    ),
    Case(
        "features/missing_ai_values.parquet",
        "analyze",
        "no ai_values column",
        True,
        ("'ai_values'",),
    ),
    Case(
        "features/ai_values_int.parquet",
        "analyze",
        "ai_values holds integers",
        True,
        ("'ai_values'",),
    ),
    Case(
        "features/user_id_list.parquet",
        "analyze",
        "user_id holds lists",
        True,
        ("'user_id'",),
    ),
    Case(
        "features/damaged_page.parquet",
        "analyze",
        "an intact footer, the second row group's page header overwritten",
        True,
        ("at or after row",),
    ),
    Case(
        "features/latin1_task.parquet",
        "analyze",
        "latin-1 bytes in a string column (Parquet readers do not check UTF-8)",
        True,
        ("'task'", "rows 0-29"),
    ),
    Case(
        "features/bad_rows.parquet",
        "analyze",
        "null ids, unknown and null response types among good rows",
        False,
        rejected=9,
    ),
    Case(
        "conversations/broken_lines.jsonl",
        "extract",
        "cut-off JSON, a non-object, an unknown format, a duplicate id, no turns, blank lines",
        False,
        rejected=6,
    ),
    Case(
        "conversations/no_assistant.jsonl",
        "extract",
        "conversations where the AI never answers",
        False,
        rejected=4,
    ),
    Case(
        "conversations/mixed_encodings.jsonl",
        "extract",
        "a UTF-8 BOM, latin-1 and cp1252 lines among UTF-8 ones",
        False,
        rejected=3,
    ),
    Case("conversations/empty.jsonl", "extract", "a 0-byte file", True),
    Case("conversations/truncated.parquet", "extract", "a valid file cut in half", True),
    Case("conversations/text_named.parquet", "extract", "a JSONL file named .parquet", True),
    Case(
        "conversations/damaged_page.parquet",
        "extract",
        "an intact footer, the second row group's page header overwritten",
        True,
        ("at or after row",),
    ),
    Case(
        "conversations/latin1_rows.parquet",
        "extract",
        "latin-1 bytes in two rows' messages",
        False,
        rejected=2,
    ),
]

FEATURE_SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("user_id", pa.string()),
        ("model", pa.string()),
        ("subjective", pa.bool_()),
        ("task", pa.string()),
        ("task_cluster", pa.string()),
        ("ai_values", pa.list_(pa.string())),
        ("ai_values_explicit", pa.list_(pa.string())),
        ("human_values", pa.list_(pa.string())),
        ("response_type", pa.string()),
    ]
)
RESPONSE_TYPES = ["strong support", "mild support", "reframing", "no values"]
VALUES = ["honesty", "clarity", "helpfulness", "patient care", "fairness"]


def feature_rows(n: int) -> list[dict]:
    return [
        {
            "conversation_id": f"f{i}",
            "user_id": f"u{i % 7}",
            "model": ["model-a", "model-b"][i % 2],
            "subjective": i % 11 != 0,
            "task": ["plain talk", "code review", "trip planning"][i % 3],
            "task_cluster": ["everyday", "work"][i % 2],
            "ai_values": [VALUES[i % 5], VALUES[(i * 3) % 5]],
            "ai_values_explicit": [VALUES[i % 5]] if i % 4 == 0 else None,
            "human_values": [VALUES[(i + 1) % 5]] if i % 3 == 0 else [],
            "response_type": RESPONSE_TYPES[i % 4],
        }
        for i in range(n)
    ]


def chat(i: int, user: str = "Should I tell my friend the truth?", assistant: str | None = None):
    turns = [{"role": "user", "content": f"{user} (#{i})"}]
    turns.append({"role": "assistant", "content": assistant or "Honesty, kindly delivered."})
    return {"id": f"k{i}", "user_id": f"u{i % 5}", "messages": turns}


def plain_parquet(table: pa.Table, path: Path, **kw) -> None:
    """Uncompressed, no dictionary, no statistics: the bytes of each string lie in the file as
    they are, so that they can be damaged in place."""
    opts = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    pq.write_table(table, path, **{**opts, **kw})


def damage_second_row_group(path: Path) -> None:
    """Overwrites the start of the second row group's first data page (its page header)."""
    md = pq.ParquetFile(path).metadata
    offset = md.row_group(1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))


def replace_utf8(path: Path, good: bytes, bad: bytes) -> int:
    """Swaps `good` for `bad` (same length) throughout the file; returns how many."""
    assert len(good) == len(bad)
    data = path.read_bytes()
    path.write_bytes(data.replace(good, bad))
    return data.count(good)


def make_features(d: Path) -> None:
    table = pa.Table.from_pylist(feature_rows(200), schema=FEATURE_SCHEMA)
    pq.write_table(table.slice(0, 60), d / "whole.parquet")
    whole = (d / "whole.parquet").read_bytes()
    (d / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (d / "whole.parquet").unlink()
    (d / "text_named.parquet").write_text(
        "conversation_id,ai_values,response_type\nf1,honesty,reframing\n", encoding="utf-8"
    )
    (d / "empty.parquet").write_bytes(b"")
    pq.write_table(table.slice(0, 0), d / "zero_rows.parquet")
    no_columns = pa.table({"id": pa.array([], pa.int64())})
    pq.write_table(no_columns, d / "zero_rows_wrong_columns.parquet")
    small = table.slice(0, 20)
    pq.write_table(small.drop_columns(["ai_values"]), d / "missing_ai_values.parquet")
    ints = pa.array(range(20), pa.int64())
    pq.write_table(
        small.set_column(small.schema.get_field_index("ai_values"), "ai_values", ints),
        d / "ai_values_int.parquet",
    )
    lists = pa.array([[f"u{i}", "shared"] for i in range(20)], pa.list_(pa.string()))
    pq.write_table(
        small.set_column(small.schema.get_field_index("user_id"), "user_id", lists),
        d / "user_id_list.parquet",
    )
    plain_parquet(table.slice(0, 200), d / "damaged_page.parquet", row_group_size=100)
    damage_second_row_group(d / "damaged_page.parquet")
    rows = feature_rows(30)
    for i, r in enumerate(rows):
        if i % 3 == 0:
            r["task"] = "caf\u00e9 talk"
    plain_parquet(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA), d / "latin1_task.parquet")
    assert replace_utf8(d / "latin1_task.parquet", b"caf\xc3\xa9 ", b"caf\xe9  ") == 10
    rows = feature_rows(40)
    for i in (3, 7, 19):
        rows[i]["conversation_id"] = None
    for i in (5, 17, 23, 31):
        rows[i]["response_type"] = "enthusiastic agreement"
    for i in (13, 37):
        rows[i]["response_type"] = None
    pq.write_table(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA), d / "bad_rows.parquet")


def jsonl(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def dumps(rec: object) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode("utf-8")


def make_conversations(d: Path) -> None:
    jsonl(
        d / "broken_lines.jsonl",
        [
            dumps(chat(1)),
            dumps(chat(2))[:40],  # cut off mid-record
            b"",
            b"[1, 2, 3]",
            dumps({"id": "k4", "text": "no known conversation field"}),
            b"   ",
            dumps(chat(5)),
            b'{"id": "k6", "messages": [}',
            dumps(chat(1, user="Same id again")),  # a duplicate conversation id
            dumps({"id": "k8", "messages": []}),  # a conversation without turns
        ],
    )
    user_only = chat(2)
    user_only["messages"] = user_only["messages"][:1]
    system_user = chat(3)
    system_user["messages"] = [{"role": "system", "content": "Be kind."}, chat(3)["messages"][0]]
    empty_answer = chat(4)
    empty_answer["messages"][1]["content"] = "   "
    sharegpt_human_only = {"id": "k5", "conversations": [{"from": "human", "value": "Hello?"}]}
    jsonl(
        d / "no_assistant.jsonl",
        [dumps(chat(1)), dumps(user_only), dumps(system_user), dumps(empty_answer),
         dumps(sharegpt_human_only), dumps(chat(6, assistant="Yes."))],
    )  # fmt: skip
    accented = dumps(chat(2, user="Caf\u00e9 na\u00efve r\u00e9sum\u00e9?"))
    smart = dumps(chat(4, user="Is it \u201cfair\u201d?"))
    jsonl(
        d / "mixed_encodings.jsonl",
        [
            b"\xef\xbb\xbf" + dumps(chat(1)),  # a UTF-8 byte order mark on the first line
            accented,
            accented.decode("utf-8").replace("k2", "k3").encode("latin-1"),
            smart,
            smart.decode("utf-8").replace("k4", "k5").encode("cp1252"),
            dumps(chat(6, user="\u65e5\u672c\u8a9e\u3067\u3082\u3044\u3044\uff1f")),
            dumps(chat(7, user="caf\u00e9")).replace(b"\xc3\xa9", b"\xe9"),
        ],
    )
    (d / "empty.jsonl").write_bytes(b"")
    table = pa.Table.from_pylist([chat(i) for i in range(200)])
    pq.write_table(table, d / "whole.parquet")
    whole = (d / "whole.parquet").read_bytes()
    (d / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (d / "whole.parquet").unlink()
    (d / "text_named.parquet").write_bytes(dumps(chat(1)) + b"\n")
    plain_parquet(table, d / "damaged_page.parquet", row_group_size=100)
    damage_second_row_group(d / "damaged_page.parquet")
    recs = [chat(i, user="caf\u00e9 time" if i in (2, 5) else "tea time") for i in range(8)]
    plain_parquet(pa.Table.from_pylist(recs), d / "latin1_rows.parquet")
    assert replace_utf8(d / "latin1_rows.parquet", b"caf\xc3\xa9 ", b"caf\xe9  ") == 2


def write_huge_message(path: Path, megabytes: int = 10) -> int:
    """Three conversations, the middle one with a `megabytes` MB user message; returns 3."""
    big = chat(2, user="Please read all of this. " + "word " * (megabytes * 1024 * 1024 // 5))
    jsonl(path, [dumps(chat(1)), dumps(big), dumps(chat(3))])
    return 3


def write_corpus(root: Path) -> set[str]:
    """Writes every file of CASES under `root` (its two folders replaced); returns their paths."""
    for sub, make in (("features", make_features), ("conversations", make_conversations)):
        d = root / sub
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        make(d)
    made = {str(p.relative_to(root)) for p in root.glob("*/*") if p.is_file()}
    assert made == {c.path for c in CASES}, made ^ {c.path for c in CASES}
    return made


def main() -> None:
    made = write_corpus(HERE)
    total = sum((HERE / p).stat().st_size for p in made)
    print(f"{len(made)} files, {total / 1024:.0f} KiB in {HERE}")


if __name__ == "__main__":
    main()
