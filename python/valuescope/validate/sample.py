"""``validate sample``: a reproducible review packet (review.html, items.jsonl, packet.json).

Stratified by response type by default: each type gets an equal share of the sample (all of a
type smaller than its share, the rest shared among the others), so that rare types get reviewed
too; every item carries its stratum's population and sample size, so that ``score`` re-weights
accuracy to the corpus. The packet is blinded: nothing in what a reviewer sees names the model
that extracted the features.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from valuescope.errors import UserError
from valuescope.validate.common import (
    ITEMS_FILE,
    JUDGMENTS_FORMAT,
    JUDGMENTS_VERSION,
    PACKET_FILE,
    RESPONSE_TYPES,
    REVIEW_FILE,
    load_conversations,
    load_features,
)

STRATIFY = ("response_type", "none")
NO_TYPE = "(no response type)"
ALL = "all"


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Equal allocation capped at each stratum's size, the remainder shared again among the
    strata that still have rows (so the total is min(n, all rows))."""
    left = min(n, sum(sizes.values()))
    alloc = dict.fromkeys(sizes, 0)
    open_ = sorted(s for s, size in sizes.items() if size > 0)
    while left > 0 and open_:
        share, extra = divmod(left, len(open_))
        for i, s in enumerate(open_):
            take = min(sizes[s] - alloc[s], share + (1 if i < extra else 0))
            alloc[s] += take
            left -= take
        open_ = [s for s in open_ if alloc[s] < sizes[s]]
    return alloc


def draw(
    rows: Sequence[dict[str, Any]], n: int, seed: int, stratify: str
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, dict[str, int]]]:
    """(stratum, row) pairs in presentation order, and each stratum's population and sample.
    The same rows, n, seed and stratification give the same sample, whatever the file order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        key = ALL if stratify == "none" else (r["response_type"] or NO_TYPE)
        groups[key].append(r)
    rng = random.Random(seed)
    sizes = {s: len(g) for s, g in groups.items()}
    alloc = allocate(sizes, n)
    picked: list[tuple[str, dict[str, Any]]] = []
    for s in sorted(groups):
        g = sorted(groups[s], key=lambda r: r["conversation_id"])
        picked.extend((s, r) for r in rng.sample(g, alloc[s]))
    rng.shuffle(picked)  # strata interleaved: a reviewer cannot tell which stratum an item is
    strata = {s: {"population": sizes[s], "sampled": alloc[s]} for s in sorted(groups)}
    return picked, strata


def _messages(conv: Any, redact: bool) -> list[dict[str, str]]:
    from valuescope.extract.answer import scrub

    return [
        {"role": m.role, "content": scrub(m.content) if redact else m.content}
        for m in conv.messages
    ]


def build_packet(
    rows: Sequence[dict[str, Any]],
    conversations: dict[str, Any],
    n: int,
    seed: int,
    stratify: str,
    redact: bool,
) -> dict[str, Any]:
    if stratify not in STRATIFY:
        raise UserError(f"--stratify must be one of {', '.join(STRATIFY)}")
    picked, strata = draw(rows, n, seed, stratify)
    missing = [r["conversation_id"] for _, r in picked if r["conversation_id"] not in conversations]
    if missing:
        raise UserError(
            f"{len(missing)} sampled conversations are not in the conversation logs given "
            f"(first: {missing[0]!r}); give the logs the features were extracted from"
        )
    items = []
    for i, (stratum, r) in enumerate(picked, start=1):
        conv = conversations[r["conversation_id"]]
        info = strata[stratum]
        items.append(
            {
                "item": f"item-{i:04d}",
                "conversation_id": r["conversation_id"],
                "stratum": stratum,
                "weight": info["population"] / info["sampled"],
                "messages": _messages(conv, redact),
                "features": {
                    "subjective": r["subjective"],
                    "task": r["task"],
                    "ai_values": list(r["ai_values"] or []),
                    "ai_values_explicit": list(r["ai_values_explicit"] or []),
                    "human_values": list(r["human_values"] or []),
                    "response_type": r["response_type"],
                },
            }
        )
    digest = hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]
    sample = {
        "stratify": stratify,
        "strata": strata,
        "items": {
            it["item"]: {
                "stratum": it["stratum"],
                "response_type": it["features"]["response_type"],
                "subjective": it["features"]["subjective"],
            }
            for it in items
        },
    }
    return {
        "packet": digest,
        "seed": seed,
        "n": len(items),
        "redacted": redact,
        "sample": sample,
        "items": items,
    }


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element: no "</" or "<!--" can end or confuse it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_review(packet: dict[str, Any]) -> str:
    template = resources.files(__package__).joinpath("review.html").read_text("utf-8")
    data = {
        "format": JUDGMENTS_FORMAT,
        "version": JUDGMENTS_VERSION,
        "packet": packet["packet"],
        "redacted": packet["redacted"],
        "responseTypes": list(RESPONSE_TYPES),
        "sample": packet["sample"],
        "items": [
            {"item": it["item"], "messages": it["messages"], "features": it["features"]}
            for it in packet["items"]
        ],
    }
    return template.replace("/*__DATA__*/null", _script_json(data))


def write_packet(packet: dict[str, Any], out: Path) -> dict[str, Path]:
    from valuescope.atomic import write_text

    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "review": out / REVIEW_FILE,
        "items": out / ITEMS_FILE,
        "packet": out / PACKET_FILE,
    }
    write_text(paths["review"], render_review(packet))
    write_text(
        paths["items"],
        "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in packet["items"]),
    )
    meta = {k: packet[k] for k in ("packet", "seed", "n", "redacted", "sample")}
    meta["note"] = (
        "Row-level data: items.jsonl and review.html hold conversation text; keep them where "
        "the conversation logs are kept."
    )
    write_text(paths["packet"], json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return paths


def sample(
    features: Sequence[str],
    conversation_files: Sequence[str],
    n: int,
    out: Path,
    seed: int = 0,
    stratify: str = "response_type",
    redact: bool = False,
) -> tuple[dict[str, Any], dict[str, Path]]:
    rows = load_features(features)
    if not rows:
        raise UserError(f"{', '.join(map(str, features))}: no rows to sample")
    picked, _ = draw(rows, n, seed, stratify)
    convs = load_conversations(conversation_files, {r["conversation_id"] for _, r in picked})
    packet = build_packet(rows, convs, n, seed, stratify, redact)
    return packet, write_packet(packet, out)
