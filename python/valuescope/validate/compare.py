"""``validate compare``: agreement between two extraction runs over the same conversations (two
models, two prompt versions, or a rerun).

Per conversation present in both files: the response type (share equal, Cohen's kappa, confusion
matrix), the subjectivity label (share equal, kappa), and the AI and human value sets (mean
Jaccard; Krippendorff's alpha with the MASI distance, which gives partial credit to overlapping
sets), at the value level and, given a taxonomy, at each tree level. The least stable values are
named only when they pass the privacy thresholds. Conversations present in only one file are
counted, never dropped silently.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuescope import layout
from valuescope.errors import UserError
from valuescope.validate import stats
from valuescope.validate.common import (
    DEFAULT_MIN_CONVERSATIONS,
    DEFAULT_MIN_USERS,
    RESPONSE_TYPES,
    dump_json,
    load_features,
    normalize,
    value_set,
)

LEAST_STABLE_SHOWN = 20


def load_tree(tax_dir: Path) -> dict[int, dict[str, str]]:
    """Level -> (value -> its cluster's name at that level), from a taxonomy's values_tree.csv."""
    path = tax_dir / layout.TREE if tax_dir.is_dir() else tax_dir
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UserError(f"{path}: cannot read the taxonomy ({exc.strerror})") from None
    need = {"cluster_id", "name", "level", "parent_cluster_id"}
    if not rows or not need <= set(rows[0]):
        raise UserError(f"{path}: not a values_tree.csv (columns {', '.join(sorted(need))})")
    for i, r in enumerate(rows, start=2):
        try:
            r["level"] = int(r["level"])
        except ValueError:
            raise UserError(f"{path}: line {i}: level {r['level']!r} is not a number") from None
    # Clusters only: a leaf's cluster_id is its value, which may also name a cluster.
    by_id = {r["cluster_id"]: r for r in rows if r["level"] != 0}
    levels: dict[int, dict[str, str]] = defaultdict(dict)
    for r in rows:
        if r["level"] != 0:
            continue
        value = normalize(r["name"])
        parent = r["parent_cluster_id"]
        depth = 1
        while parent:
            node = by_id.get(parent)
            if node is None:
                raise UserError(f"{path}: parent cluster {parent!r} is not in the tree")
            levels[depth][value] = node["cluster_id"]
            parent = node["parent_cluster_id"]
            depth += 1
            if depth > len(by_id) + 1:
                raise UserError(f"{path}: the parent links of {r['name']!r} form a cycle")
    return dict(sorted(levels.items()))


def _set_agreement(pairs: Sequence[tuple[frozenset[str], frozenset[str]]]) -> dict[str, Any]:
    jac = [stats.jaccard(a, b) for a, b in pairs]
    return {
        "mean_jaccard": stats.mean(jac),
        "share_identical": stats.share_equal(pairs).as_json(),
        "alpha_masi": stats.krippendorff_alpha([list(p) for p in pairs], stats.masi)["alpha"],
        "n": len(pairs),
    }


def compare_rows(
    a_rows: Sequence[dict[str, Any]],
    b_rows: Sequence[dict[str, Any]],
    tree: dict[int, dict[str, str]] | None = None,
    min_conversations: int = DEFAULT_MIN_CONVERSATIONS,
    min_users: int = DEFAULT_MIN_USERS,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    a = {r["conversation_id"]: r for r in a_rows}
    b = {r["conversation_id"]: r for r in b_rows}
    both = sorted(set(a) & set(b))
    out: dict[str, Any] = {
        "conversations": {
            "in_both": len(both),
            "only_in_a": len(set(a) - set(b)),
            "only_in_b": len(set(b) - set(a)),
        }
    }
    rt = [(a[c]["response_type"], b[c]["response_type"]) for c in both]
    out["response_type"] = {
        "share_equal": stats.share_equal(rt).as_json(),
        "kappa": stats.cohen_kappa([x for x, _ in rt], [y for _, y in rt]),
        "confusion": stats.confusion(
            [(x or "(none)", y or "(none)") for x, y in rt], RESPONSE_TYPES
        ),
    }
    sj = [(a[c]["subjective"], b[c]["subjective"]) for c in both]
    known = [(x, y) for x, y in sj if x is not None and y is not None]
    out["subjective"] = {
        "share_equal": stats.share_equal(known).as_json(),
        "kappa": stats.cohen_kappa([x for x, _ in sj], [y for _, y in sj]),
        "unknown_in_either": len(sj) - len(known),
    }
    for col in ("ai_values", "human_values"):
        pairs = [(value_set(a[c][col]), value_set(b[c][col])) for c in both]
        entry = {"value": _set_agreement(pairs)}
        for level, mapping in (tree or {}).items():
            if col != "ai_values":
                break
            lifted = [
                (
                    frozenset(mapping[v] for v in x if v in mapping),
                    frozenset(mapping[v] for v in y if v in mapping),
                )
                for x, y in pairs
            ]
            entry[f"level_{level}"] = _set_agreement(lifted)
        out[col] = entry

    # Per value: conversations naming it in A, in B, in both; and distinct users for privacy.
    n_a: Counter[str] = Counter()
    n_b: Counter[str] = Counter()
    n_ab: Counter[str] = Counter()
    users: dict[str, set[str]] = defaultdict(set)
    for c in both:
        x, y = value_set(a[c]["ai_values"]), value_set(b[c]["ai_values"])
        user = a[c]["user_id"] if a[c]["user_id"] is not None else f"\0{c}"
        for v in x | y:
            users[v].add(user)
        n_a.update(x)
        n_b.update(y)
        n_ab.update(x & y)
    least = []
    suppressed = 0
    for v in set(n_a) | set(n_b):
        either = n_a[v] + n_b[v] - n_ab[v]
        if either < min_conversations or len(users[v]) < min_users:
            suppressed += 1
            continue
        least.append(
            {
                "value": v,
                "in_a": n_a[v],
                "in_b": n_b[v],
                "in_both": n_ab[v],
                "stability": n_ab[v] / either,
            }
        )
    least.sort(key=lambda r: (r["stability"], -(r["in_a"] + r["in_b"]), r["value"]))
    out["least_stable_values"] = least[:LEAST_STABLE_SHOWN]
    out["values_below_thresholds"] = suppressed
    out["thresholds"] = {"min_conversations": min_conversations, "min_users": min_users}
    return out, least


def compare(
    a_path: str,
    b_path: str,
    out: Path,
    taxonomy: str | None = None,
    min_conversations: int = DEFAULT_MIN_CONVERSATIONS,
    min_users: int = DEFAULT_MIN_USERS,
) -> dict[str, Any]:
    a_rows = load_features([a_path])
    b_rows = load_features([b_path])
    tree = load_tree(Path(taxonomy)) if taxonomy else None
    result, least = compare_rows(a_rows, b_rows, tree, min_conversations, min_users)
    result["a"], result["b"] = str(a_path), str(b_path)
    out.mkdir(parents=True, exist_ok=True)
    dump_json(out / layout.AGREEMENT, result)
    from valuescope.atomic import atomic_open

    with atomic_open(out / layout.LEAST_STABLE_VALUES, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["value", "in_a", "in_b", "in_both", "stability"])
        for r in least:
            w.writerow([r["value"], r["in_a"], r["in_b"], r["in_both"], r["stability"]])
    return result


def summary_lines(r: dict[str, Any]) -> list[str]:
    c = r["conversations"]
    lines = [
        f"{c['in_both']} conversations in both files ({c['only_in_a']} only in A, "
        f"{c['only_in_b']} only in B)"
    ]

    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    rt = r["response_type"]
    lines.append(
        f"  response type: equal {f(rt['share_equal']['p'])}, kappa {f(rt['kappa']['kappa'])}"
    )
    sj = r["subjective"]
    lines.append(
        f"  subjective:    equal {f(sj['share_equal']['p'])}, kappa {f(sj['kappa']['kappa'])}"
    )
    for col in ("ai_values", "human_values"):
        for level, e in r[col].items():
            lines.append(
                f"  {col} ({level}): mean Jaccard {f(e['mean_jaccard'])}, "
                f"alpha (MASI) {f(e['alpha_masi'])}"
            )
    return lines
