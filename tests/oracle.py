"""Plain-Python reference implementation of the engine's counting, for tests.

Deliberately naive: dicts of sets, one row at a time, no shared code with the engine.
"""

from __future__ import annotations

import math
import unicodedata
from collections import defaultdict
from typing import Any

RESPONSE_TYPES = [
    "strong support",
    "mild support",
    "neutral acknowledgment",
    "reframing",
    "mild resistance",
    "strong resistance",
    "no values",
]
LIST_COLUMNS = ("ai_values", "human_values", "ai_values_explicit")
DEFAULT_TABLES = [
    ("ai_values", "task_cluster"),
    ("ai_values", "task"),
    ("human_values", "ai_values"),
    ("ai_values", "response_type"),
    ("human_values", "response_type"),
    ("ai_values", "model"),
    ("response_type", "model"),
]


def norm(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).lower().split())


def keys_of(row: dict, col: str) -> set[str]:
    v = row.get(col)
    if v is None:
        return set()
    items = v if isinstance(v, list) else [v]
    return {norm(x) for x in items if x is not None and norm(x)}


class Oracle:
    def __init__(self, rows: list[dict[str, Any]], tables=None, min_c=15, min_u=10):
        self.min_c, self.min_u = min_c, min_u
        self.tables = tables or DEFAULT_TABLES
        self.n_rows = len(rows)
        self.rejected: dict[str, int] = defaultdict(int)
        self.not_subjective = 0
        self.analysed: list[dict[str, Any]] = []
        cols = {"ai_values", "human_values", "response_type", "model", "ai_values_explicit"}
        for a, b in self.tables:
            cols |= {a, b}
        self.columns = cols
        for row in rows:
            cid = row.get("conversation_id")
            if cid is None:
                self.rejected["conversation_id is null"] += 1
                continue
            if row.get("subjective") is False:
                self.not_subjective += 1
                continue
            rt = keys_of(row, "response_type")
            if not rt:
                self.rejected["response_type is null or empty"] += 1
                continue
            if next(iter(rt)) not in RESPONSE_TYPES:
                self.rejected["response_type is not one of the seven types"] += 1
                continue
            user = row.get("user_id")
            user = ("user", user) if user is not None else ("conversation", cid)
            r = {c: keys_of(row, c) for c in cols}
            r["_user"] = user
            r["_rt"] = next(iter(rt))
            self.analysed.append(r)
        self.n = len(self.analysed)

    # -- counting -------------------------------------------------------------------------
    def counts(self, col: str) -> dict[str, tuple[int, set]]:
        out: dict[str, list] = {}
        for r in self.analysed:
            for k in r[col]:
                e = out.setdefault(k, [0, set()])
                e[0] += 1
                e[1].add(r["_user"])
        return {k: (n, u) for k, (n, u) in out.items()}

    def cells(self, a: str, b: str) -> dict[tuple[str, str], tuple[int, set]]:
        out: dict[tuple[str, str], list] = {}
        for r in self.analysed:
            for x in r[a]:
                for y in r[b]:
                    e = out.setdefault((x, y), [0, set()])
                    e[0] += 1
                    e[1].add(r["_user"])
        return {k: (n, u) for k, (n, u) in out.items()}

    def passes(self, n: int, users: set) -> bool:
        return n >= self.min_c and len(users) >= self.min_u

    def frequencies(self, col: str) -> list[tuple[str, int, float, float]]:
        c = self.counts(col)
        total = sum(n for n, _ in c.values())
        rows = [
            (k, n, 100 * n / self.n, 100 * n / total)
            for k, (n, u) in c.items()
            if self.passes(n, u)
        ]
        return sorted(rows, key=lambda r: (-r[1], r[0]))

    def with_any(self, col: str) -> int:
        return sum(1 for r in self.analysed if r[col])

    def mean_len(self, col: str) -> float:
        return sum(len(r[col]) for r in self.analysed) / self.n

    def invariance(self, context: str) -> dict[str, tuple[float, int]]:
        cats = {k: n for k, (n, u) in self.counts(context).items() if self.passes(n, u)}
        if len(cats) < 2:
            return {}
        cells = self.cells("ai_values", context)
        out = {}
        for v, (n, u) in self.counts("ai_values").items():
            if not self.passes(n, u):
                continue
            rates = [cells.get((v, b), (0, None))[0] / nb for b, nb in cats.items()]
            mean = sum(rates) / len(rates)
            if mean <= 0:
                continue
            sd = math.sqrt(sum((x - mean) ** 2 for x in rates) / len(rates))
            out[v] = (sd / mean, len(cats))
        return out

    def mirroring(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list] = {}
        for r in self.analysed:
            if r["human_values"]:
                e = out.setdefault(r["_rt"], [0, set(), 0, set()])
                e[0] += 1
                e[1].add(r["_user"])
                if r["human_values"] & r["ai_values"]:
                    e[2] += 1
                    e[3].add(r["_user"])
        return {k: tuple(v) for k, v in out.items()}
