"""Free-text tasks in the synthetic corpus, the static embedder, offline task-cluster names and the
automatic tree levels."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from valuescope import synth
from valuescope.taxonomy import tree as tx
from valuescope.taxonomy.embeddings import (
    VOCAB_FILE,
    MiniLMOnnx,
    StaticMiniLM,
    bert_tokenizer,
    l2_normalise,
)
from valuescope.taxonomy.options import TaxonomyOptions
from valuescope.taxonomy.run import run_taxonomy
from valuescope.taxonomy.tasks import keyword_names

N = 20_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "features.parquet"
    synth.write_corpus(path, N, seed=3, progress=False, task_texts=True)
    return path


@pytest.fixture(scope="module")
def static(tmp_path_factory) -> StaticMiniLM:
    return StaticMiniLM(tmp_path_factory.mktemp("static"))


def template_patterns() -> dict[str, list[re.Pattern[str]]]:
    """Each template as a regular expression over its phrases (an empty phrase drops its space)."""
    spec = synth.task_text_templates()
    out: dict[str, list[re.Pattern[str]]] = {}
    for cat in spec["categories"]:
        pats = []
        for t in cat["templates"]:
            rx = ""
            for lit, slot in re.findall(r"([^{]*)(?:\{(\w+)\})?", t):
                rx += re.escape(lit).replace(r"\ ", " ?")
                if slot:
                    phrases = cat["slots"].get(slot, spec["shared"].get(slot))
                    rx += "(?:" + "|".join(re.escape(p) for p in phrases) + ")"
            pats.append(re.compile(rx.strip()))
        out[cat["name"]] = pats
    return out


def test_task_texts_carry_their_planted_categories(corpus):
    truth_file = synth.truth_path(corpus)
    truth = list(csv.DictReader(truth_file.open(encoding="utf-8")))
    rows = pq.read_table(corpus).to_pylist()
    assert len(truth) == len(rows) == N
    # the truth is the cluster the label-mode corpus plants for the same rows
    labels = synth.synth_batches(N, 3).read_all()
    assert [t["task_category"] for t in truth] == labels["task_cluster"].to_pylist()
    assert [t["conversation_id"] for t in truth] == [r["conversation_id"] for r in rows]
    # every text is one of its own category's templates, 4 to 15 words, and the pipeline sees
    # no label: task_cluster is empty and the truth column is not in the file
    patterns = template_patterns()
    own = other = 0
    for r, t in zip(rows, truth, strict=True):
        text, cat = r["task"], t["task_category"]
        assert r["task_cluster"] is None
        assert 4 <= len(text.split()) <= 15, text
        assert any(p.fullmatch(text) for p in patterns[cat]), (cat, text)
        own += 1
        other += any(p.fullmatch(text) for c, ps in patterns.items() if c != cat for p in ps[:1])
    assert other < 0.01 * own
    assert synth.TRUE_TASK_CLUSTER not in pq.read_schema(corpus).names
    # variety: nearly one distinct text per conversation
    assert len({r["task"] for r in rows}) > 0.97 * N
    # every other column is the label-mode corpus's
    for col in ("conversation_id", "user_id", "ai_values", "response_type", "model"):
        assert [r[col] for r in rows] == labels[col].to_pylist()


def test_the_pipeline_never_reads_the_ground_truth(corpus, tmp_path, static):
    """The same outputs whatever the truth file holds, or with no truth file at all; the truth
    never reaches an output."""
    opts = TaxonomyOptions(levels="20,5", embedder="minilm-static", task_clusters="17")
    first = run_taxonomy(
        [corpus.parent], tmp_path / "a", opts, embedder=static, task_embedder=static
    )
    truth = synth.truth_path(corpus)
    saved = truth.read_bytes()
    try:
        truth.write_text("conversation_id,task_category\nc000000000,planted-truth-marker\n")
        second = run_taxonomy(
            [corpus.parent], tmp_path / "b", opts, embedder=static, task_embedder=static
        )
        truth.unlink()
        third = run_taxonomy([corpus], tmp_path / "c", opts, embedder=static, task_embedder=static)
    finally:
        truth.write_bytes(saved)
    assert first.n_task_clusters == second.n_task_clusters == third.n_task_clusters > 1
    for name in ("values_tree.csv", "taxonomy.json"):
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()
    col = [
        pq.read_table(tmp_path / d / "features_clustered.parquet")["task_cluster"] for d in "abc"
    ]
    assert col[0] == col[1] == col[2]
    schema = pq.read_schema(tmp_path / "a" / "features_clustered.parquet").names
    assert synth.TRUE_TASK_CLUSTER not in schema and "task_category" not in schema
    for f in (tmp_path / "b").iterdir():
        assert b"planted-truth-marker" not in f.read_bytes(), f


# --- the static embedder ----------------------------------------------------------------------

TEXTS = [
    "help me debug a Python script that reads CSV files",
    "draft a resignation letter to a manager after a conflict",
    "Überprüfe den Vertrag",  # accents, a language the vocabulary barely has
    "c++ async worker with a race condition!!",
    "",
    "a",
]


def test_static_vectors_are_the_weighted_mean_of_token_vectors(static):
    got = static.embed(TEXTS)
    tok = bert_tokenizer(VOCAB_FILE)  # a tokenizer of its own, not the embedder's
    used, vectors = static.token_vectors(TEXTS)  # the rows these texts need
    table = np.zeros((int(used.max()) + 1, vectors.shape[1]), dtype=np.float32)
    table[used] = vectors
    per_text = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
    uses: dict[int, int] = defaultdict(int)  # SIF: a / (a + share of all the token uses)
    for ids in per_text:
        for i in ids:
            uses[i] += 1
    total = sum(uses.values())
    weights = np.ones(len(table))
    for i, c in uses.items():
        weights[i] = 1e-3 / (1e-3 + c / total)
    for text, row in zip(TEXTS, got, strict=True):
        ids = tok.encode(text, add_special_tokens=False).ids
        if not ids:
            assert not row.any()
            continue
        mean = (weights[ids, None] * table[ids].astype(np.float64)).sum(0) / weights[ids].sum()
        want = mean / np.linalg.norm(mean)
        np.testing.assert_allclose(row, want, atol=2e-6)
        assert abs(np.linalg.norm(row) - 1) < 1e-5


def test_static_vectors_are_deterministic(static, tmp_path):
    a = static.embed(TEXTS)
    b = static.embed(list(reversed(TEXTS)))[::-1]
    np.testing.assert_array_equal(a, b)
    fresh = StaticMiniLM(tmp_path)  # an empty cache: its tokens are computed again,
    fresh.embed(["unrelated words first"])  # some of them beside other tokens
    np.testing.assert_array_equal(fresh.embed(TEXTS), a)
    again = StaticMiniLM(tmp_path)  # a full cache: nothing computed
    np.testing.assert_array_equal(again.embed(TEXTS), a)
    assert again.tokens_built == 0 and fresh.tokens_built > 0
    assert again.contexts_built == 0 and fresh.contexts_built > 0


def _outputs_by_token(texts: list[str]) -> dict[int, list[np.ndarray]]:
    """Each token's last-layer outputs, one text at a time through the model (no batch, no
    padding), [CLS] and [SEP] left out."""
    model = MiniLMOnnx()
    tok = bert_tokenizer(VOCAB_FILE)
    out: dict[int, list[np.ndarray]] = defaultdict(list)
    for text in texts:
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        hidden = model.hidden_states(ids, np.ones_like(ids))[0]
        for pos in range(1, ids.shape[1] - 1):
            out[int(ids[0, pos])].append(hidden[pos].astype(np.float64))
    return out


def test_token_vectors_in_context_are_the_models_outputs_averaged(static):
    """Every text is in the sample here (fewer than CONTEXT_SAMPLE), so each token's vector is
    its outputs' mean in the texts, normalised."""
    texts = [t for t in TEXTS if t]
    outputs = _outputs_by_token(texts)
    used, vectors = static.token_vectors(texts)
    assert sorted(outputs) == used.tolist()
    for t, row in zip(used, vectors, strict=True):
        mean = np.mean(outputs[int(t)], axis=0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), atol=1e-5)


def test_tokens_outside_the_sample_get_the_ridge_map_of_their_vector_alone(static, monkeypatch):
    from valuescope.taxonomy import embeddings

    monkeypatch.setattr(embeddings, "CONTEXT_SAMPLE", 3)
    texts = [t for t in TEXTS if t] + ["water the garden plants", "plan a birthday party"]
    digest = {hashlib.sha256(t.encode()).digest(): t for t in texts}
    sample = [digest[k] for k in sorted(digest)[:3]]
    assert static.context_sample(list(reversed(texts))) == sample
    outputs = _outputs_by_token(sample)
    seen = sorted(outputs)
    used, vectors = static.token_vectors(texts)
    rest = [t for t in used.tolist() if t not in outputs]
    assert rest, "the sample should miss some tokens"
    ctx = np.array([np.mean(outputs[t], axis=0) for t in seen])
    ctx /= np.linalg.norm(ctx, axis=1, keepdims=True)
    row = {int(t): v for t, v in zip(used, vectors, strict=True)}
    np.testing.assert_allclose([row[t] for t in seen], ctx, atol=1e-5)
    # ridge regression as an augmented least-squares problem (not the normal equations)
    alone = static.table(np.array(used, dtype=np.uint32)).astype(np.float64)
    x = np.hstack([alone[seen], np.ones((len(seen), 1))])
    lam = embeddings.CONTEXT_RIDGE
    x_aug = np.vstack([x, np.sqrt(lam) * np.eye(x.shape[1])])
    y_aug = np.vstack([ctx, np.zeros((x.shape[1], ctx.shape[1]))])
    w = np.linalg.lstsq(x_aug, y_aug, rcond=None)[0]
    want = np.hstack([alone[rest], np.ones((len(rest), 1))]) @ w
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose([row[t] for t in rest], want, atol=1e-5)


def test_token_rows_are_the_model_embedding_of_the_token_alone(static):
    model = MiniLMOnnx()
    ids = np.array([2000, 4007, 18750, 29000])  # "to", "computer", ..., a rare piece
    table = static.table(ids.astype(np.uint32))
    for t in ids:
        want = l2_normalise(model.run_ids(np.array([[101, t, 102]])))[0]
        np.testing.assert_array_equal(table[t], want)
    # the int8 MiniLM itself: cosine with its fp32 original is held elsewhere (test_embed)


# --- offline task-cluster names ---------------------------------------------------------------


def test_a_rare_word_never_becomes_a_name():
    """A word unique to one cluster, hence its best term by TF-IDF, used by too few
    conversations or users, is never a name; the common words are."""
    tasks, tids, users, per_task = [], [], [], []

    def add(text: str, cluster: int, n: int, user_of) -> None:
        tasks.append(text)
        per_task.append(cluster)
        for i in range(n):
            tids.append(len(tasks) - 1)
            users.append(user_of(i))

    add("fix python build", 0, 60, lambda i: f"u{i % 30}")
    add("debug python tests", 0, 40, lambda i: f"v{i % 25}")
    add("python zanzibarian linker", 0, 14, lambda i: f"w{i}")  # 14 conversations
    add("python quokkaesque parser", 0, 40, lambda i: f"solo{i % 9}")  # 9 users
    add("plan garden beds", 1, 50, lambda i: f"g{i % 40}")
    add("plan garden watering", 1, 50, lambda i: f"h{i % 40}")
    names = keyword_names(
        tasks,
        np.array(tids),
        users,
        np.array(per_task),
        2,
        min_conversations=15,
        min_users=10,
    )
    joined = " ".join(t for ts in names for t in ts)
    assert "zanzibarian" not in joined and "quokkaesque" not in joined
    assert "python" in names[0] and ("garden" in names[1] or "plan garden" in names[1])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.sampled_from(["alpha", "beta", "gamma", "delta", "the", "help"]),
                min_size=1,
                max_size=4,
            ),
            st.integers(0, 2),
            st.integers(1, 30),
            st.integers(1, 12),
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 20),
    st.integers(1, 8),
)
def test_every_name_term_passes_both_thresholds(spec, min_conv, min_users):
    """Plain counting as the oracle: each term of a name is used, inside its cluster, by at least
    min_conv conversations of at least min_users distinct users."""
    tasks, tids, users, per_task = [], [], [], []
    for j, (words, cluster, n, n_users) in enumerate(spec):
        tasks.append(" ".join(words) + f" t{j}")
        per_task.append(cluster)
        for i in range(n):
            tids.append(j)
            users.append(f"u{(i * 7 + j) % n_users}")
    names = keyword_names(tasks, np.array(tids), users, np.array(per_task), 3, min_conv, min_users)
    conv: dict[tuple[int, str], int] = defaultdict(int)
    who: dict[tuple[int, str], set[str]] = defaultdict(set)
    for t, u in zip(tids, users, strict=True):
        words = tasks[t].split()
        terms = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}
        for term in terms:
            conv[per_task[t], term] += 1
            who[per_task[t], term].add(u)
    for c, terms in enumerate(names):
        assert len(terms) <= 3
        for term in terms:
            assert conv[c, term] >= min_conv and len(who[c, term]) >= min_users, (c, term)
            assert "the" not in term.split() and "help" not in term.split()


def test_offline_names_in_the_taxonomy(corpus, tmp_path, static):
    opts = TaxonomyOptions(levels="20,5", task_clusters="17")
    run_taxonomy([corpus], tmp_path, opts, embedder=static, task_embedder=static)
    rows = pq.read_table(tmp_path / "features_clustered.parquet", columns=["task", "task_cluster"])
    pairs = list(zip(rows["task"].to_pylist(), rows["task_cluster"].to_pylist(), strict=True))
    names = {c for _, c in pairs if c}
    assert len(names) > 5 and not any(n.startswith("task cluster") for n in names)
    # each name's first term distinguishes its cluster: used there at least twice as often as
    # in the whole corpus (plain counting over the texts)
    for name in names:
        term = name.split(", ")[0]
        inside = [t for t, c in pairs if c == name]
        rate_in = sum(term in t.lower() for t in inside) / len(inside)
        rate_all = sum(term in t.lower() for t, _ in pairs) / len(pairs)
        assert rate_in >= 2 * rate_all, (name, rate_in, rate_all)


# --- automatic levels -------------------------------------------------------------------------


def test_auto_levels_never_end_in_a_top_level_of_one_or_two():
    assert tx.auto_levels(593) == [48, 5]  # was 48, 5, 1
    assert tx.auto_levels(3307) == [266, 26, 5]
    for n in range(1, 6000):
        sizes = tx.auto_levels(n)
        assert sizes == sorted(sizes, reverse=True) and sizes[0] <= n
        assert len(sizes) == 1 or sizes[-1] >= tx.MIN_TOP_CLUSTERS, (n, sizes)
        assert json.dumps(sizes)  # plain ints


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.integers(1, 12), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_weighted_sums_match_a_plain_sum(rows, n, chunk, seed):
    from valuescope.taxonomy.tasks import weighted_sums

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    labels = rng.integers(0, n, rows)
    w = rng.uniform(0.5, 3, rows)
    want = np.zeros((n, 5))
    for row, lab, wt in zip(x, labels, w, strict=True):
        want[lab] += row.astype(np.float64) * wt
    np.testing.assert_allclose(weighted_sums(x, labels, w, n, chunk=chunk), want, atol=1e-9)


def test_rust_wordpiece_gives_the_tokenizers_ids():
    """The Rust tokeniser against the tokenizers library: synthetic tasks, the published values,
    random ASCII (control characters, punctuation, over-long words)."""
    import random

    from valuescope._core import wordpiece_ids

    vocab = VOCAB_FILE.read_text(encoding="utf-8").splitlines()
    tok = bert_tokenizer(VOCAB_FILE)
    tok.no_padding()
    tok.no_truncation()
    rng = random.Random(0)
    texts = synth.synth_batches(3000, 1, task_texts=True).read_all()["task"].to_pylist()
    texts += [v for v, _ in synth.published_value_frequencies() if v.isascii()]
    texts += [
        "".join(chr(rng.randrange(128)) for _ in range(rng.randrange(40))) for _ in range(2000)
    ]
    texts += ["x" * 101, "a" * 100 + " b", "", "  "]
    ids, offsets = wordpiece_ids(vocab, texts)
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    for i, (text, enc) in enumerate(zip(texts, encodings, strict=True)):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == enc.ids, repr(text)
    with pytest.raises(ValueError, match="text 1 is not ASCII"):
        wordpiece_ids(vocab, ["ok", "café"])
