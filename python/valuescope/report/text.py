"""Number formatting and the short generated readings under each figure.

Readings are plain sentences built only from figures already in the analysis files; the HTML and
Markdown writers escape them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def num(x: Any) -> str:
    """An integer with thousands separators; '-' for missing."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{int(x):,}"


def plural(n: Any, word: str, words: str | None = None) -> str:
    """'1 user', '2 users', '- users' (missing)."""
    return f"{num(n)} {word if n == 1 else (words or word + 's')}"


def pct(x: Any) -> str:
    """A percentage with as many decimals as small shares need."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    x = float(x)
    if x == 0:
        return "0%"
    if abs(x) >= 10:
        return f"{x:.1f}%"
    if abs(x) >= 0.1:
        return f"{x:.2f}%"
    return f"{x:.3f}%"


def dec(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{float(x):.{digits}f}"


def pval(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "-"
    p = float(p)
    return "< 1e-300" if p == 0 else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def listing(items: Sequence[str], limit: int = 5) -> str:
    """'a, b and c' from the first `limit` items."""
    items = list(items)[:limit]
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def named_shares(rows: Sequence[dict[str, Any]], key: str, share: str, limit: int = 5) -> str:
    """'helpfulness (23.4%), professionalism (22.9%) ...' for the first rows."""
    return listing([f"{r[key]} ({pct(r[share])})" for r in rows[:limit]], limit)


def headline(s: dict[str, Any], n_ai: int, n_human: int) -> str:
    return (
        f"The analysis covers {num(s.get('n_conversations'))} conversations. "
        f"{pct(s.get('pct_with_ai_values'))} of them carry at least one AI value and "
        f"{pct(s.get('pct_with_human_values'))} at least one value stated by the user; a "
        f"conversation carries {dec(s.get('mean_ai_values'))} AI values on average. "
        f"{num(n_ai)} distinct AI values and {num(n_human)} human values pass the privacy "
        f"thresholds and are reported."
    )


def top_values(ai: Sequence[dict[str, Any]], human: Sequence[dict[str, Any]]) -> str:
    parts = []
    if ai:
        parts.append(
            "The most frequent AI values are "
            + named_shares(ai, "value", "pct_convos")
            + " (share of conversations expressing each)."
        )
        if len(ai) >= 5:
            top5 = sum(float(r["pct_total_occurrences"] or 0) for r in ai[:5])
            parts.append(f"The top five account for {pct(top5)} of all AI value occurrences.")
    if human:
        parts.append(
            "Among values stated by users, the most frequent are "
            + named_shares(human, "value", "pct_convos")
            + "."
        )
    return " ".join(parts) or "No value passed the privacy thresholds."


def long_tail(n: int, n_under: int, cutoff: float, suppressed: int | None) -> str:
    if n == 0:
        return "No AI value passed the privacy thresholds, so there is no distribution to show."
    share = 100 * n_under / n
    text = (
        f"Of the {num(n)} reported AI values, {num(n_under)} ({pct(share)}) are expressed in "
        f"fewer than {cutoff:g}% of conversations: "
    )
    text += (
        "the distribution has a long tail of rare, specific values behind a few very common ones."
        if share >= 50
        else "at this corpus size most reported values are above that line."
    )
    if suppressed:
        text += (
            f" A further {num(suppressed)} values were too rare to report at all (below the "
            "privacy thresholds); they are counted, never named."
        )
    return text


def significance(test: dict[str, Any], alpha: Any) -> str:
    p = pval(test.get("p_value"))
    return (
        f"Cells are significant when the adjusted residual exceeds {dec(test.get('threshold'))} "
        f"in absolute value: Bonferroni, two-sided, alpha = {alpha}, "
        f"m = {num(test.get('n_tests'))} tests (the table's rows). Chi-square = "
        f"{dec(test.get('chi2'), 1)} on {num(test.get('dof'))} degrees of freedom, "
        f"p {p if p.startswith('<') else '= ' + p}, n = {num(test.get('n'))} co-occurrences."
    )
