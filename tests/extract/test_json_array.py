"""JSON array files read record by record: the elements found by the streaming split are the
array's own (json.dumps and json.loads are the oracle), whatever the chunk size and layout; a
malformed record mid-array and a file cut off inside a record are rejected with their index
while every other record is read."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from valuescope.extract.conversations import Conversation, Rejected, _json_array, read_conversations

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | st.sampled_from(['"', "\\", "]", "}", "[{", '\\"', ",", "\n"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(values, max_size=8),
    st.sampled_from([None, 0, 2]),
    st.booleans(),
    st.integers(min_value=1, max_value=64),
)
def test_streamed_array_gives_back_each_element(tmp_path_factory, items, indent, ascii_only, chunk):
    data = json.dumps(items, indent=indent, ensure_ascii=ascii_only).encode()
    path = tmp_path_factory.mktemp("arr") / "a.json"
    path.write_bytes(b"\xef\xbb\xbf " + data + b"\n")
    got = list(_json_array(str(path), chunk))
    assert [e for _, _, e in got] == [None] * len(items)
    assert [rec for _, rec, _ in got] == items
    assert [i for i, _, _ in got] == list(range(len(items)))


def _record(i: int) -> dict:
    return {
        "id": f"s{i}",
        "conversations": [
            {"from": "human", "value": f'question {i} with a quote " and ] and }} inside'},
            {"from": "gpt", "value": "an answer\nover lines {[("},
        ],
    }


def test_malformed_record_and_cut_off_tail_are_rejected_with_their_index(tmp_path):
    good = [json.dumps(_record(i)) for i in range(6)]
    malformed = '{"id": "bad", "conversations": [{"from": "human", "value": "x"}}'
    text = "[\n" + ",\n".join(good[:3] + [malformed] + good[3:]) + ',\n{"id": "s9", "conv'
    path = tmp_path / "dump.json"
    path.write_text(text)
    out = list(read_conversations([str(path)]))
    convs = [c for c in out if isinstance(c, Conversation)]
    rejects = [r for r in out if isinstance(r, Rejected)]
    assert [c.conversation_id for c in convs] == [f"s{i}" for i in range(6)]
    assert [c.row for c in convs] == [0, 1, 2, 4, 5, 6]
    assert [(r.row, r.reason.split(":")[0]) for r in rejects] == [
        (3, "invalid JSON"),
        (7, "the file ends inside record 7 (cut off)"),
    ]
