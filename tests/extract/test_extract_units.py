"""Extraction building blocks: readers, prompt rendering, answer parsing, scrubbing, redaction,
rate limiting. No network."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from valuescope._http import retry_after_seconds
from valuescope.extract.answer import (
    FEATURE_SCHEMA,
    RESPONSE_TYPES,
    AnswerError,
    parse_json,
    scrub,
    validate_features,
)
from valuescope.extract.conversations import (
    Conversation,
    FieldMap,
    InputError,
    Message,
    Rejected,
    read_conversations,
)
from valuescope.extract.prompts import PROMPT_VERSION, load_prompt, render
from valuescope.extract.ratelimit import TokenBucket
from valuescope.extract.redact import redact
from valuescope.providers import openai_body, parse_anthropic, parse_openai

GOOD = {
    "subjective": True,
    "task": "plan a budget",
    "ai_values": ["prudence", "clarity"],
    "ai_values_explicit": [],
    "human_values": ["financial security"],
    "response_type": "strong support",
}


# -- readers ---------------------------------------------------------------------------------


def _write_jsonl(path: Path, records: list[object]) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")


def test_reads_every_format_and_maps_fields(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    _write_jsonl(
        path,
        [
            {
                "id": "a",
                "user_id": "u1",
                "model": "m1",
                "messages": [
                    {"role": "system", "content": "be nice"},
                    {"role": "user", "content": [{"type": "text", "text": "hello"}]},
                    {"role": "assistant", "content": "hi"},
                ],
            },
            {
                "id": "b",
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            },
            {
                "conversation_hash": "c",
                "hashed_ip": "ip9",
                "model": "gpt-4",
                "conversation": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y"},
                ],
            },
            {"conversation_id": 7, "transcript": "User: hi\nAI: hello"},
        ],
    )
    convs = list(read_conversations([str(path)]))
    assert all(isinstance(c, Conversation) for c in convs)
    a, b, c, d = convs  # type: ignore[misc]
    assert (a.conversation_id, a.user_id, a.model) == ("a", "u1", "m1")
    assert a.messages[1] == Message("user", "hello")
    assert [m.role for m in b.messages] == ["user", "assistant"]
    assert (c.conversation_id, c.user_id, c.model) == ("c", "ip9", "gpt-4")
    assert d.conversation_id == "7" and d.messages[0].role == "transcript"
    assert (a.file, a.line, d.line) == (str(path), 1, 4)


def test_named_format_and_custom_fields(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    _write_jsonl(
        path,
        [
            {
                "cid": "k1",
                "who": "u",
                "llm": "m",
                "messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}],
            }
        ],
    )
    (conv,) = read_conversations(
        [str(path)], "openai", FieldMap(id_field="cid", user_field="who", model_field="llm")
    )
    assert isinstance(conv, Conversation)
    assert (conv.conversation_id, conv.user_id, conv.model) == ("k1", "u", "m")
    (rej,) = read_conversations([str(path)], "sharegpt")
    assert isinstance(rej, Rejected) and "'conversations'" in rej.reason


def test_malformed_records_are_rejected_with_line_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    ok = {
        "id": "ok",
        "messages": [{"role": "user", "content": "hi"}, {"role": "ai", "content": "a"}],
    }
    _write_jsonl(
        path,
        [
            "{not json",
            json.dumps([1, 2]),
            json.dumps({"id": "n", "foo": 1}),
            json.dumps({"id": "e", "messages": [{"role": "user", "content": "  "}]}),
            json.dumps({"id": "t", "messages": "hello"}),
            json.dumps({"id": "r", "messages": [{"content": "no role"}]}),
            json.dumps({"id": "u", "messages": [{"role": "user", "content": "anyone?"}]}),
            json.dumps(ok),
            json.dumps(ok),
        ],
    )
    items = list(read_conversations([str(path)]))
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r.line for r in rejected] == [1, 2, 3, 4, 5, 6, 7, 9]
    assert rejected[6].reason == "no assistant turn with text"
    assert "invalid JSON" in rejected[0].reason
    assert "unknown conversation format" in rejected[2].reason
    assert rejected[2].conversation_id == "n"
    assert "duplicate" in rejected[-1].reason
    assert [i.conversation_id for i in items if isinstance(i, Conversation)] == ["ok"]


def test_parquet_input_with_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    table = pa.table(
        {
            "conversation_id": ["p1", "p2"],
            "transcript": ["User: hello\nAI: hi", None],
            "user_id": ["u1", None],
        }
    )
    pq.write_table(table, path)
    first, second = read_conversations([str(path)])
    assert isinstance(first, Conversation) and first.user_id == "u1" and first.row == 0
    assert isinstance(second, Rejected) and second.row == 1 and second.line is None


def test_missing_or_unknown_input_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_conversations([str(tmp_path / "nope.jsonl")]))
    other = tmp_path / "c.csv"
    other.write_text("a,b\n")
    with pytest.raises(InputError, match="unknown file type"):
        list(read_conversations([str(other)]))


# -- prompts ---------------------------------------------------------------------------------


def test_prompts_are_package_data_and_name_every_response_type() -> None:
    text = load_prompt("extract")
    assert PROMPT_VERSION == "v1"
    for rtype in RESPONSE_TYPES:
        assert f'"{rtype}"' in text
    for key in FEATURE_SCHEMA["required"]:
        assert key in text
    assert "{error}" in load_prompt("repair")


def test_render_truncates_from_the_middle() -> None:
    conv = Conversation(
        "x",
        None,
        None,
        [Message("user", "START " + "a" * 5000), Message("assistant", "b" * 5000 + " END")],
        "s",
    )
    short = render(conv, 100_000)
    assert not short.truncated and short.text.startswith("User: START")
    cut = render(conv, 500)
    assert cut.truncated and cut.omitted_chars > 0
    assert cut.text.startswith("User: START") and cut.text.endswith("END")
    assert "characters omitted from the middle" in cut.text
    assert len(cut.text) < 2100


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "Sure! " + json.dumps(GOOD) + " Let me know.",
        json.dumps(GOOD)[:-1] + ",}",
        json.dumps(GOOD)[:-1],  # cut off before the closing brace
    ],
)
def test_parse_json_strips_fences_and_repairs(text: str) -> None:
    assert validate_features(parse_json(text)) == GOOD


def test_parse_json_gives_up_on_prose() -> None:
    with pytest.raises(AnswerError):
        parse_json("no json here")
    with pytest.raises(AnswerError):
        parse_json("")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"response_type": "enthusiasm"}, "response_type"),
        ({"subjective": "yes"}, "subjective"),
        ({"ai_values": "honesty"}, "ai_values"),
        ({"human_values": [1]}, "human_values"),
        ({"extra": 1}, "unexpected keys"),
    ],
)
def test_validation_rejects_wrong_types_and_enums(change: dict, message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        validate_features({**GOOD, **change})
    with pytest.raises(AnswerError, match="missing keys: task"):
        validate_features({k: v for k, v in GOOD.items() if k != "task"})


def test_validation_normalises_response_type_and_dedupes() -> None:
    out = validate_features(
        {**GOOD, "response_type": " Mild Support", "ai_values": ["a", " a ", "", "b"]}
    )
    assert out["response_type"] == "mild support"
    assert out["ai_values"] == ["a", "b"]


def test_scrub_removes_contact_details_and_long_numbers() -> None:
    text = scrub(
        "write to bob.smith+x@mail.example.co.uk or +44 20 7946 0958, "
        "see www.example.org/page and http://x.io, account 123456789, in 2024"
    )
    assert "@" not in text and "7946" not in text and "example.org" not in text
    assert "x.io" not in text and "123456789" not in text
    assert "2024" in text  # short numbers (years) stay
    assert scrub("honesty") == "honesty"


def test_provider_wire_formats() -> None:
    body = openai_body(
        "m", "sys", [{"role": "user", "content": "c"}], FEATURE_SCHEMA, 10, 0, "tools"
    )
    assert body["tool_choice"]["function"]["name"] == body["tools"][0]["function"]["name"]
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    call = {"function": {"arguments": json.dumps(GOOD)}}
    msg = {"content": None, "tool_calls": [call]}
    ans = parse_openai({"choices": [{"message": msg, "finish_reason": "stop"}]})
    assert json.loads(ans.text or "") == GOOD and not ans.truncated
    ans = parse_anthropic(
        {
            "content": [{"type": "tool_use", "input": GOOD}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 3, "output_tokens": 4},
        }
    )
    assert ans.truncated and (ans.input_tokens, ans.output_tokens) == (3, 4)


# -- secrets, retry hints, rate limits -------------------------------------------------------


def test_redact_removes_the_key_and_its_parts() -> None:
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
    text = f"bad key {key}; masked sk-proj-ABCD****0123 and {key[-8:]} Bearer abcdefghijkl"
    out = redact(text, [key])
    assert key not in out and key[-8:] not in out and "abcdefghijkl" not in out
    assert "ABCD" not in out


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    value = retry_after_seconds(when)
    assert value is not None and 25 <= value <= 31


def test_token_bucket_holds_the_rate() -> None:
    async def go() -> float:
        bucket = TokenBucket(1200)  # 20 per second, burst of 20
        start = time.monotonic()
        for _ in range(50):
            await bucket.take()
        return time.monotonic() - start

    elapsed = asyncio.run(go())
    assert 1.3 <= elapsed <= 2.5  # 30 beyond the burst at 20/s


def test_json_array_files_are_read_with_array_positions(tmp_path: Path) -> None:
    path = tmp_path / "sharegpt.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "s1",
                    "conversations": [
                        {"from": "human", "value": "hi"},
                        {"from": "gpt", "value": "yo"},
                    ],
                },
                {"id": "s2", "conversations": "oops"},
            ]
        )
    )
    first, second = read_conversations([str(path)])
    assert isinstance(first, Conversation) and first.row == 0 and first.line is None
    assert isinstance(second, Rejected) and second.row == 1
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": 1,')
    (only,) = read_conversations([str(broken)])  # cut off: a reject, not a refused file
    assert isinstance(only, Rejected) and only.row == 0 and "cut off" in only.reason


def test_provider_repr_hides_the_key() -> None:
    from valuescope.providers import Provider

    provider = Provider("openai", "http://127.0.0.1:1/v1", "sk-hidden-0123456789", "m")
    assert "sk-hidden" not in repr(provider) and "sk-hidden" not in str(provider)


def test_a_late_refusal_of_an_abandoned_mode_is_resent(tmp_path: Path) -> None:
    """Requests in flight when the structured mode steps down come back refused in the old mode,
    possibly after a resent one already succeeded in the new mode: they are resent, not failed."""
    from valuescope.extract.cache import Cache
    from valuescope.extract.calls import Runner
    from valuescope.extract.options import ExtractOptions, Summary

    opts = ExtractOptions(provider="openai", model="m", base_url="http://127.0.0.1:1/v1")
    cache = Cache(str(tmp_path / "c.sqlite3"))
    runner = Runner(opts, "", cache, Summary())
    first, second = runner.modes[0], runner.modes[1]
    refusal = '{"error": {"message": "Unsupported response_format json_schema"}}'
    assert runner._step_down(first, 500, refusal) and runner.modes[0] == second
    runner.mode_confirmed = True  # a resent request succeeded in the new mode
    assert runner._step_down(first, 500, refusal)  # the late refusal: resend
    assert runner.modes[0] == second
    assert not runner._step_down(second, 500, refusal)  # the confirmed mode is kept
    cache.close()


def _open_cache_at_once(path: str, barrier: Any) -> None:
    from valuescope.extract.cache import Cache

    barrier.wait()
    Cache(path).put("k", {"v": 1}, 1, 1, 0.0)


def test_many_processes_can_open_a_new_cache_at_once(tmp_path):
    """Dask workers sharing one cache open the same new file together. Switching a new database
    to WAL needs a lock that sqlite does not wait for, so the opening must retry, not fail."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for attempt in range(6):
        path = str(tmp_path / f"c{attempt}.sqlite3")
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_cache_at_once, args=(path, barrier)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6, f"attempt {attempt}"
