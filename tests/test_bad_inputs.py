"""A corpus of bad chat-log inputs: every line ends as a conversation or as a reject naming its
line and the reason; nothing is silently dropped and nothing raises a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from fakellm import FakeLLM
from valuescope.conversations import Conversation, Rejected, read_conversations


def utf8(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def chat(
    i: int, user: str = "How should I handle this?", assistant: str | None = "Kindly."
) -> dict:
    messages = [{"role": "user", "content": user}]
    if assistant is not None:
        messages.append({"role": "assistant", "content": assistant})
    return {"id": f"c{i}", "user_id": f"u{i}", "messages": messages}


def write_corpus(path: Path) -> dict[int, str]:
    """Writes one JSONL file of good and bad lines; returns {line: what it is}."""
    lines: list[tuple[bytes, str]] = [
        (json.dumps(chat(1)).encode(), "good"),
        (b'{"id": "c2", "messages": [{"role": "user", "content": "cut off', "broken JSON"),
        (json.dumps(chat(3, assistant=None)).encode(), "no assistant turn"),
        (json.dumps(chat(4, user="x" * 10_000_000)).encode(), "10 MB message"),
        (utf8(chat(5, user="caf\u00e9 na\u00efve")), "good utf-8"),
        (utf8(chat(6, user="caf\u00e9")).replace(b"\xc3\xa9", b"\xe9"), "latin-1 bytes"),
        (json.dumps({"id": "c7", "messages": []}).encode(), "empty conversation"),
        (json.dumps(chat(1)).encode(), "duplicate id"),
        (b"[1, 2, 3]", "not an object"),
        (json.dumps({"id": "c10", "foo": "bar"}).encode(), "no known conversation field"),
    ]
    with path.open("wb") as fh:
        for raw, _ in lines:
            fh.write(raw + b"\n")
    return {n: what for n, (_, what) in enumerate(lines, start=1)}


def test_every_line_is_a_conversation_or_a_reject_with_its_line(tmp_path):
    src = tmp_path / "bad.jsonl"
    kinds = write_corpus(src)
    items = list(read_conversations([str(src)]))
    seen: dict[int, Conversation | Rejected] = {}
    for it in items:
        assert it.line not in seen, f"line {it.line} reported twice"
        seen[it.line] = it
    assert sorted(seen) == sorted(kinds), "a line was dropped"
    for line, it in seen.items():
        if isinstance(it, Rejected):
            assert it.reason and "Traceback" not in it.reason, (kinds[line], it)
            assert it.file.endswith("bad.jsonl")
    for line in (1, 5):
        assert isinstance(seen[line], Conversation), kinds[line]
    for line in (2, 6, 8, 9, 10):
        assert isinstance(seen[line], Rejected), kinds[line]


def test_extract_accounts_for_every_line(tmp_path):
    src = tmp_path / "bad.jsonl"
    kinds = write_corpus(src)
    out = tmp_path / "features.parquet"
    rejects = tmp_path / "rejects.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(OPENAI_API_KEY="sk-test-bad-inputs", VALUESCOPE_CACHE_DIR=str(tmp_path / "cache"))
    with FakeLLM() as fake:
        p = subprocess.run(
            [sys.executable, "-m", "valuescope.cli", "extract", str(src), "--out", str(out),
             "--rejects", str(rejects), "--provider", "openai", "--model", "m",
             "--base-url", fake.url + "/v1", "--no-progress"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    n_out = pq.read_table(out).num_rows
    rej = [json.loads(line) for line in rejects.read_text().splitlines() if line.strip()]
    assert n_out + len(rej) == len(kinds), (n_out, rej)
    assert all(r.get("reason") and r.get("line") for r in rej)
