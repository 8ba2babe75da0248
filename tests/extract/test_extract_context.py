"""Prompts longer than the model's context, against the fault-injecting server with a context
window: each server's refusal is read, the conversation is shortened from the middle to the
size the refusal states and asked again; a re-ask never overflows; a conversation that cannot
fit even at its shortest is rejected with that reason; and a server that states its context
size (llama.cpp's /props, vLLM's /v1/models) sizes the budget before anything is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakellm import FakeLLM
from helpers.extraction import assert_nothing_lost, options, outputs
from valuescope.extract import run_extract
from valuescope.extract.context import parse_overflow, parse_props

LIMIT = 4096


def write_long(path: Path, n: int, faults: dict[int, str] | None = None) -> list[str]:
    """Conversations of code-like text (dense: two characters a token on the fake server),
    some far longer than the context; the fault marker at the start, which a cut keeps."""
    ids = []
    with path.open("w") as fh:
        for i in range(n):
            cid = f"c{i:03d}"
            ids.append(cid)
            fault = (faults or {}).get(i)
            opening = f"[[id:{cid}]] [[fault:{fault}]] " if fault else ""
            size = 300 if i % 3 == 0 else 3_000 * (1 + i % 5)  # short ones and long ones
            body = "".join(f"x{j}=f(x{j - 1});" for j in range(size // 10))
            rec = {
                "conversation_id": cid,
                "user_id": f"u{i % 3}",
                "messages": [
                    {"role": "user", "content": f"{opening}Why does this fail? {body}"},
                    {"role": "assistant", "content": "The loop never ends: " + body[:2000]},
                ],
            }
            fh.write(json.dumps(rec) + "\n")
    return ids


@pytest.mark.parametrize("wording", ["openai", "vllm", "llamacpp", "anthropic"])
def test_overlong_conversations_are_shortened_and_extracted(tmp_path, wording):
    provider = "anthropic" if wording == "anthropic" else "openai"
    src = tmp_path / "long.jsonl"
    # a bad answer first for two long ones: their re-ask (answer and repair prompt added,
    # the answer's room doubled after a cut-off one) must fit as well
    ids = write_long(src, 15, faults={4: "badjson", 8: "length,badenum"})
    with FakeLLM() as fake:
        fake.context_limit, fake.wording = LIMIT, wording
        out = tmp_path / "f.parquet"
        s = run_extract(
            [str(src)], str(out), options(fake, tmp_path, provider, token_budget=20_000)
        )
        rows, rejects = outputs(out)
        assert rejects == [], rejects
        assert_nothing_lost(ids, rows, rejects)
        assert s.done == 15
        overflows = [r for r in fake.requests() if r.get("action") == "overflow"]
        assert overflows  # the budget alone did not fit: the refusals were read
        # each long conversation is refused about once: the cut is sized from the refusal
        assert len(overflows) <= 2 * 10
        # a re-ask (three messages after the system prompt) is never refused for length
        assert not [r for r in overflows if r["n_messages"] >= 3]
        long_ids = {f"c{i:03d}" for i in range(15) if i % 3}
        cut = {r["conversation_id"] for r in rows if r["truncated"]}
        assert cut == long_ids
        reasks = [r for r in fake.requests() if r.get("status") == 200 and r["n_messages"] >= 3]
        assert len(reasks) == 2


def test_a_conversation_that_cannot_fit_is_rejected_with_that_reason(tmp_path):
    src = tmp_path / "long.jsonl"
    ids = write_long(src, 4)
    with FakeLLM() as fake:
        # smaller than the system prompt and the answer's room: nothing can fit
        fake.context_limit = 900
        out = tmp_path / "f.parquet"
        run_extract([str(src)], str(out), options(fake, tmp_path, max_tokens=256))
        rows, rejects = outputs(out)
        assert rows == []
        assert_nothing_lost(ids, rows, rejects)
        for r in rejects:
            assert "does not fit the model's context" in r["reason"], r
            assert "maximum context length is 900" in r["reason"]


def test_reject_keeps_its_first_cause(tmp_path):
    """An invalid answer, then a re-ask that fails for another reason: the reject names the
    invalid answer first."""
    src = tmp_path / "c.jsonl"
    ids = write_long(src, 1, faults={0: "badjson,400"})
    with FakeLLM() as fake:
        out = tmp_path / "f.parquet"
        run_extract([str(src)], str(out), options(fake, tmp_path))
        rows, rejects = outputs(out)
        assert_nothing_lost(ids, rows, rejects)
        assert rejects[0]["reason"].startswith("invalid answer: the answer is not a JSON object")
        assert "re-ask then failed: HTTP 400" in rejects[0]["reason"]


@pytest.mark.parametrize("source", ["props", "models"])
def test_the_server_states_its_context_and_nothing_is_refused(tmp_path, source):
    src = tmp_path / "long.jsonl"
    ids = write_long(src, 9, faults={4: "badjson"})
    with FakeLLM() as fake:
        fake.context_limit, fake.wording = LIMIT, "llamacpp"
        if source == "props":
            fake.props = True  # /props and /tokenize: counted exactly, nothing refused
        else:
            fake.models_max_len = LIMIT
        out = tmp_path / "f.parquet"
        s = run_extract([str(src)], str(out), options(fake, tmp_path))  # the default budget
        rows, rejects = outputs(out)
        assert rejects == []
        assert_nothing_lost(ids, rows, rejects)
        overflows = [r for r in fake.requests() if r.get("action") == "overflow"]
        if source == "props":
            assert overflows == []
            assert fake.requests("/tokenize")
        else:  # estimated at four characters a token, then corrected from one refusal each
            assert len(overflows) <= 6
        assert s.done == 9


def test_a_one_slot_server_gets_one_request_at_a_time(tmp_path):
    src = tmp_path / "c.jsonl"
    ids = write_long(src, 6)
    with FakeLLM() as fake:
        fake.context_limit, fake.props, fake.total_slots = 100_000, True, 1
        fake.delay = 0.05
        out = tmp_path / "f.parquet"
        run_extract([str(src)], str(out), options(fake, tmp_path, concurrency=4))
        rows, rejects = outputs(out)
        assert_nothing_lost(ids, rows, rejects)
        assert fake.most_busy == 1


def test_timeouts_back_off_the_concurrency(tmp_path, capsys):
    """A server that answers one request at a time and says nothing about it: the requests
    that time out waiting behind others halve the concurrency, and then all finish."""
    src = tmp_path / "c.jsonl"
    ids = write_long(src, 8)
    with FakeLLM() as fake:
        fake.serial = True
        fake.delay = 0.25
        out = tmp_path / "f.parquet"
        s = run_extract([str(src)], str(out), options(fake, tmp_path, concurrency=4, timeout=0.6))
        rows, rejects = outputs(out)
        assert_nothing_lost(ids, rows, rejects)
        assert rejects == []
        assert s.retried > 0
        assert "a request timed out: sending at most 2 at a time" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("status", "text", "limit", "prompt"),
    [
        (400, "This model's maximum context length is 4096 tokens. However, you requested "
         "5000 tokens (3976 in the messages, 1024 in the completion).", 4096, 3976),
        (400, "'max_tokens' or 'max_completion_tokens' is too large: 1024. This model's "
         "maximum context length is 4096 tokens and your request has 3500 input tokens "
         "(1024 > 4096 - 3500).", 4096, 3500),
        (400, json.dumps({"error": {"type": "exceed_context_size_error", "message": "the "
         "request exceeds the available context size, try increasing it",
         "n_prompt_tokens": 5000, "n_ctx": 4096}}), 4096, 5000),
        (400, '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is '
         'too long: 210000 tokens > 200000 maximum"}}', 200000, 210000),
        (500, "input is too large to process. increase the physical batch size", None, None),
    ],
)  # fmt: skip
def test_each_servers_wording_is_read(status, text, limit, prompt):
    o = parse_overflow(status, text)
    assert o is not None and (o.limit, o.prompt_tokens) == (limit, prompt)


@pytest.mark.parametrize(
    "text", ["Unsupported response_format json_schema", "try again", "invalid api key"]
)
def test_other_refusals_are_not_read_as_overflow(text):
    assert parse_overflow(400, text) is None


def test_props_shapes():
    assert parse_props({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1}) == (
        4096,
        1,
    )
    assert parse_props({"n_ctx": 2048}) == (2048, None)
    assert parse_props({}) == (None, None)
