"""``validate score``: accuracy per claim type with 95% Wilson intervals, re-weighted to the corpus
when the sample was stratified, and agreement between reviewers (Cohen's kappa for two,
Krippendorff's alpha for any number, missing judgments allowed) and between an LLM judge and the
human reviewers.

The claims and the paper's terms for them:

- ``ai_value_support``: the share of extracted AI values judged supported by the text (the paper:
  98.8% of extracted AI values correct);
- ``subjective``: the share of subjectivity labels judged right (the paper's filter: 94%);
- ``response_type``: the share of response types judged right, with the confusion matrix
  (extracted type in rows, the reviewer's type in columns);
- ``human_value_precision``: the share of extracted human values the user did state;
- ``human_value_missed``: the share of conversations in which a stated value was missed;
- ``task_ok``: the share of task descriptions judged acceptable.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from valuescope.errors import UserError
from valuescope.validate import stats
from valuescope.validate.common import (
    ITEMS_FILE,
    RESPONSE_TYPES,
    JudgmentFile,
    load_judgments,
)

CLAIMS = (
    "ai_value_support",
    "subjective",
    "response_type",
    "human_value_precision",
    "human_value_missed",
    "task_ok",
)


def _units(f: JudgmentFile, claim: str) -> list[tuple[str, bool]]:
    """(item, judged correct) for every judged unit of ``claim`` in ``f``."""
    out: list[tuple[str, bool]] = []
    for item, j in f.judgments.items():
        meta = f.items[item]
        if claim == "ai_value_support":
            out.extend((item, ok) for ok in j["ai_values"].values() if ok is not None)
        elif claim == "human_value_precision":
            out.extend((item, ok) for ok in j["human_values"].values() if ok is not None)
        elif claim == "human_value_missed":
            if j["human_missing"] is not None:
                out.append((item, j["human_missing"]))
        elif claim == "response_type":
            if j["response_type"] is not None:
                out.append((item, j["response_type"] == meta.get("response_type")))
        elif claim == "subjective":
            if j["subjective"] is not None:
                out.append((item, j["subjective"]))
        elif claim == "task_ok":
            if j["task_ok"] is not None:
                out.append((item, j["task_ok"]))
    return out


def accuracy(files: Sequence[JudgmentFile]) -> dict[str, Any]:
    """Per claim: the plain share over every judged unit of ``files`` and, when the sample was
    stratified, the share re-weighted to the corpus (each unit weighted by its stratum's
    population over its sample)."""
    out: dict[str, Any] = {}
    stratified = any(f.stratify != "none" for f in files)
    for claim in CLAIMS:
        units = [(f, item, ok) for f in files for item, ok in _units(f, claim)]
        plain = stats.proportion(ok for _, _, ok in units)
        entry: dict[str, Any] = {
            "unweighted": plain.as_json(),
            "n_items": len({i for _, i, _ in units}),
        }
        if stratified:
            weighted = stats.weighted_proportion((ok, f.weight(item)) for f, item, ok in units)
            entry["weighted"] = weighted.as_json()
            entry["estimate"] = "weighted"
        else:
            entry["estimate"] = "unweighted"
        out[claim] = entry
    pairs = []
    for f in files:
        for item, j in f.judgments.items():
            if j["response_type"] is not None:
                pairs.append((f.items[item].get("response_type") or "(none)", j["response_type"]))
    out["response_type"]["confusion"] = stats.confusion(pairs, RESPONSE_TYPES)
    return out


def _codes(f: JudgmentFile, claim: str) -> dict[tuple[str, str], Any]:
    """Unit -> code for the agreement statistics: a value claim is the unit (item, value)."""
    out: dict[tuple[str, str], Any] = {}
    for item, j in f.judgments.items():
        if claim in ("ai_values", "human_values"):
            for v, ok in j[claim].items():
                if ok is not None:
                    out[(item, v)] = ok
        elif j[claim] is not None:
            out[(item, "")] = j[claim]
    return out


AGREEMENT_CLAIMS = (
    "ai_values",
    "human_values",
    "human_missing",
    "response_type",
    "subjective",
    "task_ok",
)


def agreement(files: Sequence[JudgmentFile]) -> dict[str, Any]:
    """Krippendorff's alpha (nominal) over all ``files`` per claim; Cohen's kappa for each pair."""
    out: dict[str, Any] = {}
    for claim in AGREEMENT_CLAIMS:
        codes = [_codes(f, claim) for f in files]
        units = sorted(set().union(*codes))
        alpha = stats.krippendorff_alpha([[c.get(u) for c in codes] for u in units])
        kappas = {}
        for (i, a), (j, b) in combinations(enumerate(codes), 2):
            key = f"{files[i].label} vs {files[j].label}"
            kappas[key] = stats.cohen_kappa([a.get(u) for u in units], [b.get(u) for u in units])
        out[claim] = {"alpha": alpha, "kappa": kappas}
    return out


def score(paths: Sequence[str | Path], packet_dir: str | Path | None = None) -> dict[str, Any]:
    known = None
    if packet_dir is not None:
        known = _packet_items(Path(packet_dir))
    files = [load_judgments(p, known) for p in paths]
    packets = {f.packet for f in files}
    if len(packets) > 1:
        raise UserError(
            "the judgments come from different review packets: "
            + ", ".join(f"{f.path} ({f.packet})" for f in files)
        )
    labels = [f.label for f in files]
    for f in files:
        if labels.count(f.label) > 1:
            raise UserError(f"{f.path}: reviewer {f.reviewer!r} appears in two judgments files")
    humans = [f for f in files if f.kind == "human"]
    judges = [f for f in files if f.kind == "llm"]
    first = files[0]
    result: dict[str, Any] = {
        "packet": first.packet,
        "stratify": first.stratify,
        "strata": first.strata,
        "reweighted": first.stratify != "none",
        "reviewers": [
            {"label": f.label, "file": str(f.path), "judged": len(f.judgments)} for f in files
        ],
        "accuracy": {},
        "by_reviewer": {f.label: accuracy([f]) for f in files},
    }
    if humans:
        result["accuracy"] = accuracy(humans)
        result["accuracy_source"] = "human"
    else:
        result["accuracy"] = accuracy(judges)
        result["accuracy_source"] = "llm"
    if len(humans) >= 2:
        result["reviewer_agreement"] = agreement(humans)
    if humans and judges:
        result["judge_vs_human"] = {j.label: agreement([j, *humans]) for j in judges}
    return result


def _packet_items(d: Path) -> set[str]:
    import json

    p = d / ITEMS_FILE if d.is_dir() else d
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{p}: cannot read the packet's items ({exc.strerror})") from None
    out = set()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.add(json.loads(line)["item"])
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{p}: line {i}: not an item record") from None
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    how = "re-weighted to the corpus" if result["reweighted"] else "unweighted"
    lines.append(f"accuracy ({result['accuracy_source']} judgments, {how}):")
    for claim in CLAIMS:
        e = result["accuracy"][claim]
        est = e[e["estimate"]]
        if est["p"] is None:
            lines.append(f"  {claim:<24} not judged")
            continue
        lo, hi = est["ci95"]
        n = e["unweighted"]["n"]
        lines.append(
            f"  {claim:<24} {100 * est['p']:5.1f}%  95% CI {100 * lo:.1f}-{100 * hi:.1f}%  (n={n})"
        )
    for key in ("reviewer_agreement",):
        if key in result:
            lines.append("reviewer agreement (Krippendorff's alpha):")
            for claim, a in result[key].items():
                al = a["alpha"]["alpha"]
                lines.append(f"  {claim:<24} {'n/a' if al is None else f'{al:.3f}'}")
    return lines
