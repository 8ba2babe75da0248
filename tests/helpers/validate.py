"""Helpers for the validate tests: a features file with planted truth, its conversation logs, and
a scripted reviewer that knows the truth and writes the judgments format."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuescope.extract.output import write_extracted_features as write_features
from valuescope.validate.common import JUDGMENTS_FORMAT, JUDGMENTS_VERSION, RESPONSE_TYPES

#: Planted corpus: stratum sizes, and the share of response types that are wrong in each.
STRATA = {
    "strong support": (1500, 0.04),
    "no values": (900, 0.04),
    "mild support": (400, 0.04),
    "reframing": (120, 0.40),
    "strong resistance": (50, 0.40),
    "mild resistance": (30, 0.40),
}
AI_WRONG = 0.05
HUMAN_WRONG = 0.10
SUBJECTIVE_WRONG = 0.08
VALUES = [f"value {w}" for w in "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()]
PII = "write to jo.smith@example.com or call +1 (555) 123-4567, see https://example.org/x 99887766"


@dataclass
class Planted:
    features: Path
    logs: Path
    truth: dict[str, dict[str, Any]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)


def _exact(rng: random.Random, n: int, share: float) -> list[bool]:
    """Exactly round(share * n) True, shuffled."""
    k = round(share * n)
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


def planted_corpus(tmp: Path, seed: int = 7) -> Planted:
    rng = random.Random(seed)
    rows, truth, logs = [], {}, []
    i = 0
    for rtype, (size, wrong) in STRATA.items():
        for bad_type in _exact(rng, size, wrong):
            cid = f"c{i:05d}"
            truth[cid] = {"response_type_wrong": bad_type}
            rows.append(
                {
                    "conversation_id": cid,
                    "user_id": f"u{i % 400}",
                    "model": "secret-model-name",
                    "subjective": True,
                    "task": "give advice on a hard choice",
                    "task_cluster": None,
                    "ai_values": rng.sample(VALUES, 3),
                    "ai_values_explicit": [],
                    "human_values": [rng.choice(VALUES)] if rng.random() < 0.4 else [],
                    "response_type": rtype,
                    "extraction_model": "openai:secret-model-name",
                    "prompt_version": "v1",
                    "truncated": False,
                }
            )
            logs.append(
                {
                    "conversation_id": cid,
                    "user_id": f"u{i % 400}",
                    "messages": [
                        {"role": "user", "content": f"conversation {cid}: should I do this? {PII}"},
                        {"role": "assistant", "content": f"answer for {cid}: consider both sides."},
                    ],
                }
            )
            i += 1
    # value claims and subjectivity labels wrong in exact shares, whatever the stratum
    ai_claims = [(r["conversation_id"], v) for r in rows for v in r["ai_values"]]
    human_claims = [(r["conversation_id"], v) for r in rows for v in r["human_values"]]
    for (cid, v), bad in zip(ai_claims, _exact(rng, len(ai_claims), AI_WRONG), strict=True):
        truth[cid].setdefault("ai_wrong", set())
        if bad:
            truth[cid]["ai_wrong"].add(v)
    human_flags = _exact(rng, len(human_claims), HUMAN_WRONG)
    for (cid, v), bad in zip(human_claims, human_flags, strict=True):
        truth[cid].setdefault("human_wrong", set())
        if bad:
            truth[cid]["human_wrong"].add(v)
    for r, bad in zip(rows, _exact(rng, len(rows), SUBJECTIVE_WRONG), strict=True):
        truth[r["conversation_id"]]["subjective_wrong"] = bad
    features = tmp / "features.parquet"
    write_features(str(features), rows)
    log_path = tmp / "logs.jsonl"
    log_path.write_text("".join(json.dumps(x) + "\n" for x in logs))
    n_rt_wrong = sum(round(size * w) for size, w in STRATA.values())
    rates = {
        "ai_value_support": 1 - round(AI_WRONG * len(ai_claims)) / len(ai_claims),
        "human_value_precision": 1 - round(HUMAN_WRONG * len(human_claims)) / len(human_claims),
        "subjective": 1 - round(SUBJECTIVE_WRONG * len(rows)) / len(rows),
        "response_type": 1 - n_rt_wrong / len(rows),
    }
    return Planted(features, log_path, truth, rates)


def scripted_judgments(
    packet_dir: Path,
    truth: dict[str, dict[str, Any]],
    reviewer: str = "scripted",
    kind: str = "human",
) -> dict[str, Any]:
    """What a reviewer who knows the truth answers for every item of a packet."""
    packet = json.loads((packet_dir / "packet.json").read_text())
    judgments = []
    for line in (packet_dir / "items.jsonl").read_text().splitlines():
        it = json.loads(line)
        t = truth[it["conversation_id"]]
        f = it["features"]
        right_type = f["response_type"]
        if t["response_type_wrong"]:
            right_type = next(x for x in RESPONSE_TYPES if x != f["response_type"])
        judgments.append(
            {
                "item": it["item"],
                "ai_values": {v: v not in t.get("ai_wrong", set()) for v in f["ai_values"]},
                "human_values": {
                    v: v not in t.get("human_wrong", set()) for v in f["human_values"]
                },
                "human_missing": False,
                "response_type": right_type,
                "subjective": not t["subjective_wrong"],
                "task_ok": True,
            }
        )
    return {
        "format": JUDGMENTS_FORMAT,
        "version": JUDGMENTS_VERSION,
        "packet": packet["packet"],
        "reviewer": reviewer,
        "kind": kind,
        "sample": packet["sample"],
        "judgments": judgments,
    }


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args], capture_output=True, text=True, env=env
    )


def brute_alpha(units: list[list[frozenset[str] | None]], distance) -> float | None:
    """alpha = 1 - D_o / D_e straight from the definition: D_o over ordered pairs of codes
    within each unit (weight 1 / (m_u - 1)), D_e over all ordered pairs of pairable codes."""
    pairable = [[c for c in u if c is not None] for u in units]
    pairable = [u for u in pairable if len(u) >= 2]
    n = sum(len(u) for u in pairable)
    if n < 2:
        return None
    d_o = (
        sum(
            sum(distance(x, y) for i, x in enumerate(u) for j, y in enumerate(u) if i != j)
            / (len(u) - 1)
            for u in pairable
        )
        / n
    )
    flat = [c for u in pairable for c in u]
    d_e = sum(distance(x, y) for i, x in enumerate(flat) for j, y in enumerate(flat) if i != j)
    d_e /= n * (n - 1)
    return None if d_e == 0 else 1 - d_o / d_e
