"""The extraction runner against a real local HTTP server that injects faults (tests/fakellm.py).

Every test checks the no-loss rule: each input record ends in the features or in the rejects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fakellm import FakeLLM
from helpers.conversations import write_conversations
from valuescope.extract import ExtractOptions, Summary, run_extract
from valuescope.extract.output import FEATURES_SCHEMA

KEY = "sk-test-RUNNER-5f4e3d2c1b0a99887766"


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def options(fake: FakeLLM, tmp: Path, provider: str = "openai", **kw: Any) -> ExtractOptions:
    base = fake.url + ("/v1" if provider == "openai" else "")
    defaults: dict[str, Any] = {
        "provider": provider,
        "model": "test-model",
        "base_url": base,
        "backoff_base": 0.01,
        "timeout": 0.6,
        "progress": False,
        "cache_dir": str(tmp / "cache"),
        "concurrency": 4,
    }
    defaults.update(kw)
    return ExtractOptions(**defaults)


def outputs(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    table = pq.read_table(out)
    assert table.schema.equals(FEATURES_SCHEMA)
    rejects = [json.loads(x) for x in Path(str(out) + ".rejects.jsonl").read_text().splitlines()]
    return table.to_pylist(), rejects


def assert_nothing_lost(ids: list[str], rows: list[dict], rejects: list[dict], n_bad: int = 0):
    got = [r["conversation_id"] for r in rows]
    rejected = [r["conversation_id"] for r in rejects if r.get("conversation_id")]
    assert len(got) == len(set(got))
    assert not set(got) & set(rejected)
    assert sorted(got + rejected) == sorted(ids)
    assert len(rejects) - len(rejected) == n_bad


FAULTS = [
    "ok",
    "429ra",
    "500,503",
    "529",
    "408",
    "timeout",
    "drop",
    "fenced",
    "prose",
    "badjson",
    "length",
    "pii",
    "badenum,badenum",  # invalid twice: one re-ask, then rejected
    "400echo",  # permanent client error
]


def test_faults_are_retried_and_nothing_is_lost(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, FAULTS, extra=["{broken json", '{"id": "z", "foo": 1}'])
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path))
    rows, rejects = outputs(out)
    assert_nothing_lost([*ids, "z"], rows, rejects, n_bad=1)
    by_id = {r["conversation_id"]: r for r in rejects}
    assert set(by_id) == {"c012", "c013", None, "z"}
    assert "response_type" in by_id["c012"]["reason"] and by_id["c012"]["line"] == 13
    assert by_id["c013"]["reason"].startswith("HTTP 400")
    bad_lines = sorted(r["line"] for r in rejects if r["conversation_id"] in (None, "z"))
    assert bad_lines == [15, 16]
    assert summary.done == 12 and summary.failed == 4 and summary.retried >= 10
    # every successful row is valid and scrubbed
    row = {r["conversation_id"]: r for r in rows}
    assert row["c000"]["ai_values"] == ["honesty", "empathy", "professionalism"]
    assert row["c000"]["user_id"] == "u0" and row["c000"]["model"] == "chat-model"
    assert row["c000"]["extraction_model"] == "openai:test-model"
    assert row["c000"]["task_cluster"] is None
    pii = row["c011"]
    assert "@" not in pii["task"] and "555" not in pii["task"] and "https" not in pii["task"]
    assert pii["human_values"] == ["privacy at [email]"]
    # Retry-After: 1 was honoured
    log = fake.requests()
    times = [r["time"] for r in log if r.get("action") in ("429ra",)]
    later = [r["time"] for r in log if r.get("cid") and r.get("action") == "ok"]
    cid_429 = next(r["cid"] for r in log if r.get("action") == "429ra")
    retry = [r["time"] for r in log if r.get("cid") == cid_429 and r["status"] == 200]
    assert later and retry[0] - times[0] >= 0.95
    # finish_reason length: retried once with twice the tokens
    length = [r for r in log if r.get("action") == "length"]
    cid_len = length[0]["cid"]
    tokens = [r["max_tokens"] for r in log if r.get("cid") == cid_len and r["status"] == 200]
    assert tokens == [1024, 2048]
    # invalid answers: exactly one re-ask each
    assert sum(1 for r in log if r.get("action") == "badenum") == 2


def test_second_run_is_served_from_the_cache(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 10 + ["500"])
    out = tmp_path / "f.parquet"
    first = run_extract([str(src)], str(out), options(fake, tmp_path))
    assert first.done == 11 and first.cached == 0
    n = len(fake.requests())
    second = run_extract([str(src)], str(out), options(fake, tmp_path))
    assert len(fake.requests()) == n  # zero requests
    assert (second.done, second.cached, second.cost, second.requests) == (11, 11, 0.0, 0)
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    # the cache holds answers, not the key
    for path in (tmp_path / "cache").iterdir():
        assert KEY.encode() not in path.read_bytes()


def test_transport_budget_is_finite_even_for_a_permanent_5xx(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, [""] * 3)
    fake.default_actions = ["500"] * 100
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path, transport_retries=2))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert not rows and summary.failed == 3
    assert all("gave up after 2 retries" in r["reason"] for r in rejects)
    assert len(fake.requests()) == 9


def test_llamacpp_style_json_schema_refusal_steps_down(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 8)
    fake.reject_json_schema = True
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path, transport_retries=0))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert summary.done == 8
    assert {r["mode"] for r in fake.requests() if r["status"] == 200} == {"json_object"}


def test_tools_fallback_when_response_format_is_refused(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok", "fenced", "429"])
    fake.only_tools = True
    out = tmp_path / "f.parquet"
    run_extract([str(src)], str(out), options(fake, tmp_path))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert len(rows) == 3
    assert {r["mode"] for r in fake.requests() if r["status"] == 200} == {"tools"}


def test_max_cost_stops_cleanly_and_a_rerun_finishes_without_paying_twice(
    fake: FakeLLM, tmp_path: Path
) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 10)
    out = tmp_path / "f.parquet"
    # the fake reports 1000 + 100 tokens per call: $1.10 at these prices
    opts = options(fake, tmp_path, price=(1000.0, 1000.0), max_cost=3.0, concurrency=1)
    summary = run_extract([str(src)], str(out), opts)
    assert summary.stopped and "max-cost" in summary.stopped
    assert summary.done == 3 and 3.0 <= summary.cost < 3.5
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert all(r["reason"].startswith("not processed") for r in rejects)
    opts = options(fake, tmp_path, price=(1000.0, 1000.0), concurrency=1)
    again = run_extract([str(src)], str(out), opts)
    assert again.done == 10 and again.cached == 3 and not again.stopped
    assert set(fake.successes_by_conversation().values()) == {1}


def test_separate_subjectivity_pass(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok", "objective", "ok"])
    out = tmp_path / "f.parquet"
    run_extract([str(src)], str(out), options(fake, tmp_path, subjectivity="separate"))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    by = {r["conversation_id"]: r for r in rows}
    assert by["c001"]["subjective"] is False and by["c001"]["ai_values"] == []
    assert by["c000"]["subjective"] is True and by["c000"]["ai_values"]
    calls = fake.successes_by_conversation()
    assert sorted(calls.values()) == [1, 2, 2]


def test_long_conversations_are_cut_from_the_middle_and_flagged(
    fake: FakeLLM, tmp_path: Path
) -> None:
    src = tmp_path / "c.jsonl"
    rec = {
        "id": "long",
        "messages": [
            {"role": "user", "content": "BEGIN " + "words " * 3000},
            {"role": "assistant", "content": "reply " * 3000 + " FINISH"},
        ],
    }
    short = {"id": "short", "transcript": "User: hi\nAI: hello"}
    src.write_text(json.dumps(rec) + "\n" + json.dumps(short) + "\n")
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path, token_budget=500))
    rows, _ = outputs(out)
    assert {r["conversation_id"]: r["truncated"] for r in rows} == {"long": True, "short": False}
    assert summary.truncated == 1
    sent = [r["text"] for r in fake.requests() if "BEGIN" in r.get("text", "")]
    assert sent and "FINISH" in sent[0] and "omitted from the middle" in sent[0]
    assert len(sent[0]) < 2500


def test_anthropic_forced_tool(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok", "529", "badjson", "length", "pii"])
    out = tmp_path / "f.parquet"
    summary = run_extract(
        [str(src)], str(out), options(fake, tmp_path, "anthropic", model="claude-3-5-haiku-x")
    )
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert len(rows) == 5 and summary.priced and summary.cost > 0
    assert all(r["path"] == "/v1/messages" for r in fake.requests())


def test_anthropic_batch_then_resume(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 6 + ["500", "badjson"])  # two fail in the batch
    out = tmp_path / "f.parquet"
    fake.batch_ready_after = 3
    opts = options(fake, tmp_path, "anthropic", batch=True, batch_poll_interval=0.05)
    summary: Summary = run_extract([str(src)], str(out), opts)
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert len(rows) == 8 and summary.batch_ids == ["msgbatch_0001"]
    # the batch's failures were done synchronously, the rest not requested again
    assert len(fake.requests("/v1/messages/batches")) >= 4
    sync = [r for r in fake.requests() if r["path"] == "/v1/messages"]
    assert 2 <= len(sync) <= 3
    n = len(fake.requests())
    again = run_extract([str(src)], str(out), opts)
    assert len(fake.requests()) == n and again.cached == 8


def test_authentication_failure_stops_the_run_without_the_key(
    fake: FakeLLM, tmp_path: Path
) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, [""] * 5)
    fake.default_actions = ["401echo"] * 10
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path, concurrency=1))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert summary.stopped and "OPENAI_API_KEY" in summary.stopped
    assert len(fake.requests()) == 1  # no point sending the rest
    assert KEY not in summary.stopped and KEY not in repr(summary)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_requests_per_minute_limit_is_held(fake: FakeLLM, tmp_path: Path) -> None:
    import time

    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 40)
    out = tmp_path / "f.parquet"
    start = time.monotonic()
    run_extract([str(src)], str(out), options(fake, tmp_path, rpm=1200, concurrency=8))
    elapsed = time.monotonic() - start
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    stamps = sorted(r["time"] for r in fake.requests())
    # 20 a second with a burst of 20: 40 requests span at least a second, and no window of
    # length T holds more than 20 + 20 T (plus slack for arrival jitter)
    assert stamps[-1] - stamps[0] >= 0.95 and elapsed >= 0.95
    for i in range(len(stamps)):
        for j in range(i + 1, len(stamps)):
            assert j - i + 1 <= 20 + 20 * (stamps[j] - stamps[i]) + 2


def test_tokens_per_minute_limit_slows_the_run(fake: FakeLLM, tmp_path: Path) -> None:
    import time

    from valuescope.extract.prompts import estimate_tokens, load_prompt

    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 20)
    per_request = estimate_tokens(load_prompt("extract")) + 1024 + 30
    tpm = per_request * 6 * 60  # about six requests a second
    out = tmp_path / "f.parquet"
    start = time.monotonic()
    run_extract([str(src)], str(out), options(fake, tmp_path, tpm=tpm, concurrency=8))
    elapsed = time.monotonic() - start
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    # the bucket holds one large request's worth (~11k tokens, ~6 requests); the other ~14
    # come at six a second
    assert 1.5 <= elapsed <= 8


def test_wildchat_style_parquet_input(fake: FakeLLM, tmp_path: Path) -> None:
    import pyarrow as pa

    turn = pa.struct([("role", pa.string()), ("content", pa.string()), ("turn", pa.int64())])
    table = pa.table(
        {
            "conversation_hash": ["h1", "h2", "h3"],
            "hashed_ip": ["ip-a", "ip-b", None],
            "model": ["gpt-4", "gpt-3.5-turbo", "gpt-4"],
            "conversation": pa.array(
                [
                    [{"role": "user", "content": "Is lying ever okay?", "turn": 1},
                     {"role": "assistant", "content": "Sometimes, to protect...", "turn": 1}],
                    [{"role": "user", "content": "Sort this list [[fault:503]]", "turn": 1},
                     {"role": "assistant", "content": "1, 2, 3", "turn": 1}],
                    [],
                ],
                type=pa.list_(turn),
            ),
        }
    )  # fmt: skip
    src = tmp_path / "wildchat.parquet"
    pq.write_table(table, src)
    out = tmp_path / "f.parquet"
    run_extract([str(src)], str(out), options(fake, tmp_path))
    rows, rejects = outputs(out)
    assert [(r["conversation_id"], r["user_id"], r["model"]) for r in rows] == [
        ("h1", "ip-a", "gpt-4"),
        ("h2", "ip-b", "gpt-3.5-turbo"),
    ]
    assert rejects == [
        {"conversation_id": "h3", "file": str(src), "row": 2, "reason": "conversation has no text"}
    ]


def test_reasoning_model_parameters_are_adapted(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok", "length", "ok"])
    fake.reasoning_model = True
    out = tmp_path / "f.parquet"
    run_extract([str(src)], str(out), options(fake, tmp_path, transport_retries=0))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert len(rows) == 3
    ok = [r for r in fake.requests() if r["status"] == 200]
    assert {r["mode"] for r in ok} == {"json_schema"}  # the mode was not given up for it
    assert sorted(r["max_tokens"] for r in ok) == [1024, 1024, 1024, 2048]


def test_a_client_error_for_one_conversation_keeps_the_structured_mode(
    fake: FakeLLM, tmp_path: Path
) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["400", "ok", "ok"])
    out = tmp_path / "f.parquet"
    run_extract([str(src)], str(out), options(fake, tmp_path, concurrency=1))
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert [r["conversation_id"] for r in rejects] == ["c000"]
    assert {r["mode"] for r in fake.requests() if r["status"] == 200} == {"json_schema"}


def test_unknown_endpoint_or_model_stops_the_run(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 4)
    out = tmp_path / "f.parquet"
    opts = options(fake, tmp_path, concurrency=1)
    opts.base_url = fake.url + "/wrong"
    summary = run_extract([str(src)], str(out), opts)
    rows, rejects = outputs(out)
    assert_nothing_lost(ids, rows, rejects)
    assert summary.stopped and "HTTP 404" in summary.stopped and len(fake.requests()) == 1
