"""Random feature rows and the comparisons the engine tests share."""

from __future__ import annotations

import math
import random

import pyarrow as pa
from oracle import RESPONSE_TYPES

VALUE_SPELLINGS = {
    "honesty": ["honesty", "Honesty", " HONESTY ", "honesty"],
    "human agency": ["human agency", "Human  Agency", "human\tagency"],
    "efficiency": ["efficiency", "Efficiency"],
    "harm prevention": ["harm prevention"],
    "clarity": ["clarity", "ｃｌａｒｉｔｙ"],  # full width folds to clarity under NFKC
    "well-being": ["well-being"],
    "wellbeing": ["wellbeing"],
    "transparency": ["transparency"],
    "professionalism": ["professionalism"],
    "epistemic humility": ["epistemic humility"],
    "healthy boundaries": ["healthy boundaries"],
    "authenticity": ["authenticity"],
}


TASKS = ["relationship advice", "coding help", "history questions", "tech ethics", None]


MODELS = ["model-a", "model-b", "model-c", None]


def make_rows(n: int, seed: int = 0, n_users: int = 40, bad_rate: float = 0.0) -> list[dict]:
    """Random feature rows: skewed value frequencies, repeated values within a row, variant
    spellings, nulls everywhere the schema allows them, optional schema-breaking rows."""
    rng = random.Random(seed)
    names = list(VALUE_SPELLINGS)
    weights = [1 / (i + 1) for i in range(len(names))]
    rows = []
    for i in range(n):

        def pick(k: int) -> list[str]:
            return [rng.choice(VALUE_SPELLINGS[rng.choices(names, weights)[0]]) for _ in range(k)]

        ai = pick(rng.choice([0, 1, 2, 3, 4, 5]))
        if ai and rng.random() < 0.1:
            ai.append(ai[0])  # listed twice, counts once
        human = pick(rng.choice([0, 0, 1, 2])) if rng.random() < 0.6 else []
        if rng.random() < 0.3:  # a long tail of rare values, most below the thresholds
            ai.append(f"Tail Value {int(rng.paretovariate(0.8)) % 400}")
        if human and rng.random() < 0.2:
            human.append(f"tail value {int(rng.paretovariate(0.8)) % 400}")
        if human and rng.random() < 0.3:
            ai.append(human[0])  # mirrored
        rt = rng.choice(RESPONSE_TYPES)
        if rng.random() < 0.2:
            rt = rt.upper() + " "
        row = {
            "conversation_id": f"c{seed}-{i}",
            "user_id": None if rng.random() < 0.1 else f"u{int(rng.paretovariate(1.2)) % n_users}",
            "model": "rare-model" if rng.random() < 0.002 else rng.choice(MODELS),
            "subjective": rng.choice([True, True, True, None, False]),
            "task": rng.choice(TASKS),
            "task_cluster": rng.choice(TASKS),
            "ai_values": None if rng.random() < 0.05 else ai,
            "ai_values_explicit": ai[:1] if rng.random() < 0.5 else None,
            "human_values": human if rng.random() > 0.05 else None,
            "response_type": rt,
        }
        if rng.random() < bad_rate:
            kind = rng.choice(["null_id", "bad_rt", "null_rt"])
            if kind == "null_id":
                row["conversation_id"] = None
            elif kind == "bad_rt":
                row["response_type"] = "enthusiastic agreement"
            else:
                row["response_type"] = None
        rows.append(row)
    return rows


SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("user_id", pa.string()),
        ("model", pa.string()),
        ("subjective", pa.bool_()),
        ("task", pa.string()),
        ("task_cluster", pa.string()),
        ("ai_values", pa.list_(pa.string())),
        ("ai_values_explicit", pa.list_(pa.string())),
        ("human_values", pa.list_(pa.string())),
        ("response_type", pa.string()),
    ]
)


def to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def approx_equal(a, b, rel=1e-12) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k], rel) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(approx_equal(x, y, rel) for x, y in zip(a, b, strict=True))
    return a == b


def canonical(result: dict) -> dict:
    """Engine.result() as plain Python, rows sorted, for comparisons between engines."""
    out = {}
    for k, v in result.items():
        if k == "summary":
            out[k] = v
        else:
            rows = v.to_pylist()
            out[k] = sorted(rows, key=lambda r: tuple(str(x) for x in r.values()))
    return out


def assert_same_result(r1: dict, r2: dict, rel: float = 1e-12) -> None:
    c1, c2 = canonical(r1), canonical(r2)
    assert c1.keys() == c2.keys()
    for k in c1:
        assert approx_equal(c1[k], c2[k], rel), f"results differ in {k}"


def merged_shards(engine_kw: dict, table: pa.Table, cuts, order, via_bytes: bool):
    """The table cut at `cuts`, one Engine per shard (optionally through bytes), merged as a
    random binary tree drawn from `order`: the one engine left."""
    from valuescope import Engine

    bounds = sorted({0, table.num_rows, *cuts})
    shards = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        e = Engine(**engine_kw)
        e.update(table.slice(lo, hi - lo))
        shards.append(Engine.from_bytes(e.to_bytes()) if via_bytes else e)
    order.shuffle(shards)
    while len(shards) > 1:
        i = order.randrange(len(shards) - 1)
        shards[i].merge(shards.pop(i + 1))
    return shards[0]
