"""Task clusters: each conversation's free-text task, embedded once per distinct string, clustered
by the Rust k-means weighted by how many conversations share the string. A cluster with fewer than
``min_conversations`` conversations or ``min_users`` distinct users is folded into its nearest
sibling.

Names: with an LLM namer, from the cluster's most frequent texts (as Clio does). Offline, from the
words and two-word phrases of the texts, each of which must pass both thresholds on its own inside
the cluster (used by ``min_conversations`` conversations of ``min_users`` distinct users there),
ranked by class-based TF-IDF (how much more the cluster uses the term than the clusters do on
average), up to three, e.g. "cover letter, resume, job"; a cluster with no such term is
``task cluster N``."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from valuescope.errors import UserError
from valuescope.taxonomy.embeddings import Embedder, l2_normalise
from valuescope.taxonomy.options import TaxonomyOptions
from valuescope.taxonomy.scan import RowScan
from valuescope.taxonomy.tree import Namer, kmeans_labels


@dataclass
class TaskClusters:
    labels: npt.NDArray[np.int64]  # per distinct task -> cluster (-1: no publishable cluster)
    names: list[str]
    n_folded: int

    def name_of_task(self, task_id: int) -> str | None:
        lab = int(self.labels[task_id])
        return self.names[lab] if lab >= 0 else None


def auto_task_k(n_conversations: int, n_distinct: int, min_conversations: int) -> int:
    """About sqrt(N)/2 clusters (277 for the paper's 308,210 conversations), at most 1,000, and few
    enough that an average cluster holds twice the conversation threshold."""
    k = min(1000, round(math.sqrt(n_conversations) / 2))
    k = min(k, n_conversations // max(1, 2 * min_conversations), n_distinct)
    return max(1, k)


@contextmanager
def stage(stages: MutableMapping[str, float] | None, name: str) -> Iterator[None]:
    """Adds the wall time of the block to ``stages[name]`` (when a dict is given)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if stages is not None:
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0


def cluster_tasks(
    scan: RowScan,
    emb: Embedder,
    opts: TaxonomyOptions,
    namer: Namer | None,
    stages: MutableMapping[str, float] | None = None,
) -> TaskClusters:
    rows = scan.task_ids >= 0
    tids = scan.task_ids[rows]
    users = [u for u, keep in zip(scan.users, rows, strict=True) if keep]
    counts = np.bincount(tids, minlength=len(scan.tasks)).astype(np.float64)
    if opts.task_clusters == "auto":
        k = auto_task_k(int(rows.sum()), len(scan.tasks), opts.min_conversations)
    else:
        try:
            k = int(opts.task_clusters)
        except ValueError:
            raise UserError(
                f"--task-clusters {opts.task_clusters!r}: give auto, none or K"
            ) from None
        if k < 1:
            raise UserError("--task-clusters must be at least 1")
    with stage(stages, "embed tasks"):
        x = emb.embed(scan.tasks)
    with stage(stages, "cluster tasks"):
        x = centre(x, counts)
        labels = kmeans_labels(x, min(k, len(scan.tasks)), counts, opts.seed)
    return _fold_and_name(scan, x, labels, tids, users, counts, opts, namer, stages)


def centre(
    x: npt.NDArray[np.float32], w: npt.NDArray[np.float64], chunk: int = 1 << 15
) -> npt.NDArray[np.float32]:
    """The rows less their weighted mean, L2-normalised again, in place. Every text embedding
    shares a common direction (the language, the extractor's phrasing); removed, the cosines
    measure what tells tasks apart (on synthetic tasks: static-embedder NMI 0.67 -> 0.71 at 5,000
    conversations, MiniLM unchanged)."""
    x = np.asarray(x, dtype=np.float32)
    mean = (weighted_sums(x, np.zeros(len(x), dtype=np.int64), w, 1)[0] / w.sum()).astype(
        np.float32
    )
    for s in range(0, len(x), chunk):
        part = x[s : s + chunk]
        part -= mean
        part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
    return x


def weighted_sums(
    x: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    w: npt.NDArray[np.float64],
    n: int,
    chunk: int = 1 << 15,
) -> npt.NDArray[np.float64]:
    """Per label, the sum of its rows times their weights; a chunk of rows at a time, so that no
    weighted copy of all of ``x`` is ever made (300,000 x 384 doubles would be 0.9 GB)."""
    sums = np.zeros((n, x.shape[1]))
    for s in range(0, len(x), chunk):
        lab = labels[s : s + chunk]
        order = np.argsort(lab, kind="stable")
        part = x[s : s + chunk][order] * w[s : s + chunk][order, None]
        keys, starts = np.unique(lab[order], return_index=True)
        sums[keys] += np.add.reduceat(part, starts, axis=0)
    return sums


def _fold_and_name(
    scan: RowScan,
    x: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    tids: npt.NDArray[np.int64],
    users: list[str],
    counts: npt.NDArray[np.float64],
    opts: TaxonomyOptions,
    namer: Namer | None,
    stages: MutableMapping[str, float] | None,
) -> TaskClusters:
    with stage(stages, "cluster tasks"):  # folding is part of the clustering
        n = int(labels.max()) + 1
        cents = weighted_sums(x, labels, counts, n)
        conv = np.bincount(labels, weights=counts, minlength=n)
        user_sets: list[set[str]] = [set() for _ in range(n)]
        for t, u in zip(tids, users, strict=True):
            user_sets[labels[t]].add(u)

        alive = set(range(n))
        target = np.arange(n)  # cluster -> the cluster it was folded into
        n_folded = 0

        def passes(c: int) -> bool:
            return conv[c] >= opts.min_conversations and len(user_sets[c]) >= opts.min_users

        while len(alive) > 1:
            failing = [c for c in alive if not passes(c)]
            if not failing:
                break
            c = min(failing, key=lambda j: (conv[j], j))
            others = sorted(alive - {c})
            unit = l2_normalise(cents[others])
            dest = others[int(np.argmax(unit @ l2_normalise(cents[c : c + 1])[0]))]
            cents[dest] += cents[c]
            conv[dest] += conv[c]
            user_sets[dest] |= user_sets[c]
            target[target == c] = dest
            alive.discard(c)
            n_folded += 1
        final = [c for c in sorted(alive, key=lambda j: (-conv[j], j)) if passes(c)]
        index = {c: i for i, c in enumerate(final)}
        per_task = np.array([index.get(int(target[lab]), -1) for lab in labels], dtype=np.int64)
    with stage(stages, "name tasks"):
        names = _names(scan, tids, users, counts, per_task, len(final), cents[final], opts, namer)
    return TaskClusters(per_task, names, n_folded)


def _names(
    scan: RowScan,
    tids: npt.NDArray[np.int64],
    users: list[str],
    counts: npt.NDArray[np.float64],
    per_task: npt.NDArray[np.int64],
    n: int,
    cents: npt.NDArray[np.float64],
    opts: TaxonomyOptions,
    namer: Namer | None,
) -> list[str]:
    members: list[list[int]] = [[] for _ in range(n)]
    for t in np.argsort(-counts, kind="stable"):
        if per_task[t] >= 0:
            members[per_task[t]].append(int(t))
    if namer is not None and n:
        sims = l2_normalise(cents) @ l2_normalise(cents).T
        np.fill_diagonal(sims, -np.inf)
        names = []
        for i in range(n):
            near = members[int(np.argmax(sims[i]))] if n > 1 else []
            shown = [scan.tasks[t] for t in members[i][:12]]
            names.append(namer(shown, [scan.tasks[t] for t in near[:12]])[0])
    else:
        terms = keyword_names(
            scan.tasks, tids, users, per_task, n, opts.min_conversations, opts.min_users
        )
        names = [", ".join(t) if t else f"task cluster {i + 1}" for i, t in enumerate(terms)]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} ({seen[name]})"
    return names


#: Words that say nothing about a task on their own: English function words and the lead-ins an
#: extractor puts before every task ("help the user ...", "wants advice on how to ...").
STOP_WORDS = frozenset(
    """a an the and or but if of to in on at by for with from into onto about as is are was were
    be been being it its this that these those there their them they he she his her him i me my
    we our you your who whom which what when where why how not no so than too very can could
    should would will shall may might must do does did done doing have has had having get gets
    getting got help helps helping user users wants want wanting needs need asks ask asking advice
    assist assistance looking find some any all more most other such own same just also up out
    over under after before while during through between both each few only then once here s t
    step steps simple terms detail briefly quickly clear reasons short list examples example
    beginner deadline checklist""".split()
)
_WORD = re.compile(r"[a-z0-9][a-z0-9+#'-]*")


def _terms(text: str) -> list[str]:
    """A text's candidate name terms: its words and adjacent word pairs, stop words left out."""
    words = _WORD.findall(text.lower())
    out = [w for w in words if w not in STOP_WORDS and len(w) > 1]
    for a, b in zip(words, words[1:], strict=False):
        if a not in STOP_WORDS and b not in STOP_WORDS and len(a) > 1 and len(b) > 1:
            out.append(f"{a} {b}")
    return list(dict.fromkeys(out))


def keyword_names(
    tasks: list[str],
    tids: npt.NDArray[np.int64],
    users: list[str],
    per_task: npt.NDArray[np.int64],
    n_clusters: int,
    min_conversations: int,
    min_users: int,
    top: int = 3,
) -> list[list[str]]:
    """Up to ``top`` terms per cluster, each used by at least ``min_conversations`` conversations
    of at least ``min_users`` distinct users inside the cluster, ranked by class-based TF-IDF
    over those publishable (cluster, term) counts only; a term overlapping a better one (a word
    of a chosen phrase, a phrase holding a chosen word) is skipped."""
    if n_clusters == 0 or len(tids) == 0:
        return [[] for _ in range(n_clusters)]
    index: dict[str, int] = {}
    per_text: list[list[int]] = []
    for t in tasks:
        per_text.append([index.setdefault(term, len(index)) for term in _terms(t)])
    vocab = list(index)
    lengths = np.fromiter((len(p) for p in per_text), dtype=np.int64, count=len(per_text))
    starts = np.zeros(len(per_text) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    flat = np.fromiter((i for p in per_text for i in p), dtype=np.int64, count=int(starts[-1]))
    # one (cluster, term, user) entry per conversation and term of its text
    clus = per_task[tids]
    keep = clus >= 0
    row_tid, row_clus = tids[keep], clus[keep]
    _, user_ids = np.unique(np.asarray(users, dtype=object)[keep].astype(str), return_inverse=True)
    n_terms = lengths[row_tid]
    total = int(n_terms.sum())
    if total == 0:
        return [[] for _ in range(n_clusters)]
    first = np.repeat(starts[row_tid] - (np.cumsum(n_terms) - n_terms), n_terms)
    term = flat[first + np.arange(total)]
    cell = np.repeat(row_clus, n_terms) * len(vocab) + term
    cells, conv = np.unique(cell, return_counts=True)
    pairs = np.unique(cell * (int(user_ids.max()) + 1) + np.repeat(user_ids, n_terms))
    user_cells, n_users = np.unique(pairs // (int(user_ids.max()) + 1), return_counts=True)
    ok = (conv >= min_conversations) & (n_users >= min_users)
    assert np.array_equal(cells, user_cells)
    cells, conv = cells[ok], conv[ok].astype(np.float64)
    if len(cells) == 0:
        return [[] for _ in range(n_clusters)]
    c_of, t_of = cells // len(vocab), cells % len(vocab)
    per_cluster = np.bincount(c_of, weights=conv, minlength=n_clusters)
    per_term = np.bincount(t_of, weights=conv, minlength=len(vocab))
    avg = per_cluster[per_cluster > 0].mean()
    score = conv / per_cluster[c_of] * np.log1p(avg / per_term[t_of])
    order = np.lexsort((t_of, -score, c_of))
    names: list[list[str]] = [[] for _ in range(n_clusters)]
    for j in order.tolist():
        chosen = names[int(c_of[j])]
        if len(chosen) >= top:
            continue
        words = set(vocab[int(t_of[j])].split())
        if any(words & set(c.split()) for c in chosen):
            continue
        chosen.append(vocab[int(t_of[j])])
    return names
