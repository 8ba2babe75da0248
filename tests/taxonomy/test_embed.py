"""Embeddings: the offline MiniLM default (unit vectors, semantics, an fp32 reference, no network,
sha256 pinning), the disk cache, and the OpenAI-compatible backend against a local fake server."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from valuescope import _http
from valuescope.errors import UserError
from valuescope.taxonomy import embeddings as embed
from valuescope.taxonomy.embeddings import (
    CachedEmbedder,
    Embedder,
    MiniLMOnnx,
    OpenAIEmbedder,
    make_embedder,
)

REFERENCE = Path(__file__).parents[1] / "data" / "minilm_fp32_reference.json"


@pytest.fixture(scope="module")
def minilm() -> MiniLMOnnx:
    return MiniLMOnnx()


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_unit_vectors(minilm):
    x = minilm.embed(["honesty", "a much longer string about respecting user autonomy", "é"])
    assert x.shape == (3, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)


def test_similar_strings_are_closer(minilm):
    a, b, c, d, e = minilm.embed(
        ["honesty", "truthfulness", "python debugging", "emotional support", "empathy"]
    )
    assert cos(a, b) > cos(a, c) + 0.15
    assert cos(d, e) > cos(d, c) + 0.15


def test_batch_composition_does_not_change_vectors(minilm):
    alone = minilm.embed(["clarity"])[0]
    mixed = minilm.embed(["clarity", "a long sentence that forces padding in the same batch"])[0]
    assert np.allclose(alone, mixed, atol=1e-4)


def test_matches_the_fp32_model(minilm):
    """The int8 file against the original fp32 weights (a numpy forward pass, stored)."""
    ref = json.loads(REFERENCE.read_text())["vectors"]
    texts = list(ref)
    got = minilm.embed(texts)
    for t, g in zip(texts, got, strict=True):
        assert cos(np.asarray(ref[t], dtype=np.float32), g) > 0.995, t


def test_tokenizer_ids():
    tok = embed.bert_tokenizer(embed.VOCAB_FILE)
    assert tok.encode("Hello world").ids == [101, 7592, 2088, 102]  # BERT uncased ids
    assert len(tok.encode("word " * 1000).ids) == embed.MAX_TOKENS


def test_loads_with_no_network(monkeypatch):
    def refuse(*args: Any, **kw: Any) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    x = MiniLMOnnx().embed(["offline"])
    assert x.shape == (1, 384)


def test_tampered_model_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(embed.minilm_model_path().read_bytes()[:-1] + b"\0")
    with pytest.raises(UserError, match="sha256"):
        MiniLMOnnx(model_path=bad).embed(["x"])


class Counting(Embedder):
    model_id = "counting"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[len(t), 1.0, t.count("a")] for t in texts], dtype=np.float32)


def test_cache_hits_and_persistence(tmp_path):
    inner = Counting()
    cached = CachedEmbedder(inner, tmp_path)
    first = cached.embed(["alpha", "beta", "alpha"])
    assert sorted(inner.seen) == ["alpha", "beta"]  # each distinct string once
    again = cached.embed(["beta", "alpha", "gamma"])
    assert inner.seen.count("alpha") == 1 and inner.seen[-1] == "gamma"
    assert np.array_equal(again[1], first[0])
    assert cached.cache.hits == 0 + 2 and cached.cache.misses == 2 + 1  # distinct strings
    # a new process: read from disk, nothing embedded
    inner2 = Counting()
    fresh = CachedEmbedder(inner2, tmp_path).embed(["gamma", "alpha"])
    assert inner2.seen == []
    assert np.array_equal(fresh[1], first[0])
    # a damaged chunk is only a miss
    (tmp_path / "counting" / "chunk-99999999999999999999-bad.npz").write_bytes(b"junk")
    inner3 = Counting()
    CachedEmbedder(inner3, tmp_path).embed(["alpha", "delta"])
    assert inner3.seen == ["delta"]


def test_default_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VALUESCOPE_CACHE_DIR", str(tmp_path))
    assert embed.default_cache_dir() == tmp_path / "embeddings"


@pytest.mark.parametrize("spec", ["word2vec", "openai", "minilm:big"])
def test_unknown_embedder(spec):
    with pytest.raises(UserError):
        make_embedder(spec)


# --- the OpenAI-compatible backend ---------------------------------------------------------------


class FakeEmbeddings:
    """/v1/embeddings on 127.0.0.1: vectors from the text's bytes, answered in reverse index order;
    ``fail`` holds statuses to answer first."""

    def __init__(self) -> None:
        self.fail: list[int] = []
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       **body})  # fmt: skip
                status = owner.fail.pop(0) if owner.fail else 200
                if status == 200:
                    data = [
                        {"index": i, "embedding": [len(t), sum(map(ord, t)) % 7 + 1, 3.0]}
                        for i, t in enumerate(body["input"])
                    ][::-1]
                    payload = json.dumps({"data": data, "model": body["model"]}).encode()
                else:
                    payload = b'{"error": "no"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    server = FakeEmbeddings()
    yield server
    server.close()


def test_openai_backend(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    e = OpenAIEmbedder("text-embedding-3-small", base_url=fake.url)
    texts = ["a", "bbb", "cc"]
    x = e.embed(texts)
    assert np.allclose(np.linalg.norm(x, axis=1), 1)
    raw = np.array([[len(t), sum(map(ord, t)) % 7 + 1, 3.0] for t in texts])
    assert np.allclose(x, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    req = fake.requests[0]
    assert req["path"] == "/v1/embeddings" and req["model"] == "text-embedding-3-small"
    assert req["auth"] == "Bearer sk-test"


def test_openai_backend_retries_then_fails(fake, monkeypatch):
    monkeypatch.setattr(_http.time, "sleep", lambda s: None)
    e = OpenAIEmbedder("m", base_url=fake.url, retries=3)
    fake.fail = [503, 429]
    assert e.embed(["x"]).shape == (1, 3)
    fake.fail = [400]
    with pytest.raises(UserError, match="HTTP 400"):
        e.embed(["y"])
    fake.fail = [500] * 10
    with pytest.raises(UserError, match="HTTP 500"):
        e.embed(["z"])


def test_openai_through_make_embedder_is_cached(fake, tmp_path):
    e = make_embedder("openai:m", base_url=fake.url, cache_dir=tmp_path)
    e.embed(["one", "two"])
    e2 = make_embedder("openai:m", base_url=fake.url, cache_dir=tmp_path)
    e2.embed(["two", "one"])
    assert len(fake.requests) == 1


def test_cache_writes_in_chunks(tmp_path):
    cached = CachedEmbedder(Counting(), tmp_path)
    cached.chunk = 2
    cached.embed(["a", "b", "c", "d", "e"])
    assert len(list((tmp_path / "counting").glob("chunk-*.npz"))) == 3
    inner = Counting()
    CachedEmbedder(inner, tmp_path).embed(["e", "a"])
    assert inner.seen == []
