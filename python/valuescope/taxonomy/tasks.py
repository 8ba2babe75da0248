"""Task clusters: each conversation's free-text task, embedded once per distinct string, clustered
by the Rust k-means weighted by how many conversations share the string. A cluster with fewer than
``min_conversations`` conversations or ``min_users`` distinct users is folded into its nearest
sibling; a task string names a cluster only if it passes both thresholds on its own."""

from __future__ import annotations

import math
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


def cluster_tasks(
    scan: RowScan, emb: Embedder, opts: TaxonomyOptions, namer: Namer | None
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
    x = emb.embed(scan.tasks)
    labels = kmeans_labels(x, min(k, len(scan.tasks)), counts, opts.seed)
    n = int(labels.max()) + 1
    cents = np.zeros((n, x.shape[1]))
    np.add.at(cents, labels, x * counts[:, None])
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
        heavy_users: dict[int, set[str]] = {m[0]: set() for m in members if m}
        for t, u in zip(tids, users, strict=True):
            if int(t) in heavy_users:
                heavy_users[int(t)].add(u)
        names = []
        for i, m in enumerate(members):
            top = m[0]
            ok = counts[top] >= opts.min_conversations and len(heavy_users[top]) >= opts.min_users
            names.append(scan.tasks[top] if ok else f"task cluster {i + 1}")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            names[i] = f"{name} ({seen[name]})"
    return names
