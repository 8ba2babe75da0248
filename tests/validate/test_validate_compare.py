"""validate compare: agreement between two extraction runs, against statsmodels' kappa, the
krippendorff package (nominal) and a brute-force MASI alpha, with plain counting for the rest;
rows in only one file counted; least stable values named only above the privacy thresholds."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from helpers.validate import brute_alpha, run_cli
from statsmodels.stats.inter_rater import cohens_kappa
from valuescope.extract.output import write_extracted_features as write_features
from valuescope.validate import stats
from valuescope.validate.common import RESPONSE_TYPES

VALUES = ["honesty", "empathy", "clarity", "fairness", "care", "respect", "patience", "autonomy"]
RARE = "zqx unstable rare value"


def _rows(rng: random.Random, n: int, base=None, flip: float = 0.0) -> list[dict]:
    rows = []
    for i in range(n):
        if base is None:
            ai = rng.sample(VALUES, rng.randint(0, 4))
            hv = rng.sample(VALUES, rng.randint(0, 1))
            rt = rng.choice(RESPONSE_TYPES)
            subj = rng.random() < 0.8 if rng.random() > 0.05 else None
        else:
            b = base[i]
            ai = [v for v in b["ai_values"] if rng.random() > flip]
            if rng.random() < flip:
                ai.append(rng.choice(VALUES))
            hv = list(b["human_values"]) if rng.random() > flip else []
            rt = b["response_type"] if rng.random() > flip else rng.choice(RESPONSE_TYPES)
            subj = (
                b["subjective"]
                if rng.random() > flip
                else (not b["subjective"] if b["subjective"] is not None else None)
            )
        rows.append(
            {
                "conversation_id": f"c{i:04d}",
                "user_id": f"u{i % 60}",
                "model": None,
                "subjective": subj,
                "task": "t",
                "task_cluster": None,
                "ai_values": ai,
                "ai_values_explicit": [],
                "human_values": hv,
                "response_type": rt,
                "extraction_model": "m",
                "prompt_version": "v1",
                "truncated": False,
            }
        )
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("compare")
    rng = random.Random(2)
    a = _rows(rng, 300)
    b = _rows(rng, 300, base=a, flip=0.25)
    a[5]["ai_values"] = [*a[5]["ai_values"], RARE]  # in one conversation of one run only
    b = b[:280] + _rows(random.Random(9), 10)  # 20 of A's rows missing from B, 10 only in B
    for k, r in enumerate(b[280:]):
        r["conversation_id"] = f"new{k}"
    pa_, pb = tmp / "a.parquet", tmp / "b.parquet"
    write_features(str(pa_), a)
    write_features(str(pb), b)
    out = tmp / "out"
    p = run_cli("validate", "compare", str(pa_), str(pb), "--out", str(out))
    assert p.returncode == 0, p.stderr
    return a, b, json.loads((out / "agreement.json").read_text()), out, p


def test_rows_in_one_file_counted(runs) -> None:
    a, b, res, _, _ = runs
    ids_a = {r["conversation_id"] for r in a}
    ids_b = {r["conversation_id"] for r in b}
    assert res["conversations"] == {
        "in_both": len(ids_a & ids_b),
        "only_in_a": len(ids_a - ids_b),
        "only_in_b": len(ids_b - ids_a),
    }
    assert res["conversations"]["only_in_a"] == 20 and res["conversations"]["only_in_b"] == 10


def _both(a, b):
    bb = {r["conversation_id"]: r for r in b}
    return [(r, bb[r["conversation_id"]]) for r in a if r["conversation_id"] in bb]


def test_response_type_and_subjective_against_statsmodels(runs) -> None:
    a, b, res, _, _ = runs
    pairs = _both(a, b)
    labels = list(RESPONSE_TYPES)
    t = np.zeros((7, 7))
    for x, y in pairs:
        t[labels.index(x["response_type"]), labels.index(y["response_type"])] += 1
    assert res["response_type"]["kappa"]["kappa"] == pytest.approx(
        cohens_kappa(t, return_results=False), abs=1e-9
    )
    assert res["response_type"]["confusion"]["matrix"] == t.astype(int).tolist()
    eq = sum(x["response_type"] == y["response_type"] for x, y in pairs)
    assert res["response_type"]["share_equal"]["k"] == eq
    s = np.zeros((2, 2))
    for x, y in pairs:
        if x["subjective"] is not None and y["subjective"] is not None:
            s[int(x["subjective"]), int(y["subjective"])] += 1
    assert res["subjective"]["kappa"]["kappa"] == pytest.approx(
        cohens_kappa(s, return_results=False), abs=1e-9
    )
    assert res["subjective"]["unknown_in_either"] == sum(
        x["subjective"] is None or y["subjective"] is None for x, y in pairs
    )


def test_value_sets_jaccard_and_masi_alpha(runs) -> None:
    a, b, res, _, _ = runs
    pairs = [(frozenset(x["ai_values"]), frozenset(y["ai_values"])) for x, y in _both(a, b)]
    jac = [len(p & q) / len(p | q) if p | q else 1.0 for p, q in pairs]
    got = res["ai_values"]["value"]
    assert got["mean_jaccard"] == pytest.approx(sum(jac) / len(jac), abs=1e-12)
    assert got["alpha_masi"] == pytest.approx(
        brute_alpha([list(p) for p in pairs], stats.masi), abs=1e-9
    )
    assert 0 < got["alpha_masi"] < 1


def test_least_stable_values_respect_privacy(runs) -> None:
    _, _, res, out, p = runs
    rows = list(csv.DictReader((out / "least_stable_values.csv").open()))
    assert rows and all(int(r["in_a"]) + int(r["in_b"]) >= 15 for r in rows)
    assert [r["value"] for r in rows][: len(res["least_stable_values"])] == [
        r["value"] for r in res["least_stable_values"]
    ]
    stab = [float(r["stability"]) for r in rows]
    assert stab == sorted(stab)
    assert res["values_below_thresholds"] >= 1
    for f in out.iterdir():
        assert "zqx" not in f.read_text()
    assert "zqx" not in p.stdout + p.stderr


def test_taxonomy_levels(tmp_path: Path) -> None:
    from valuescope.validate.compare import compare_rows, load_tree

    tree = tmp_path / "values_tree.csv"
    with tree.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "cluster_id",
                "description",
                "name",
                "level",
                "parent_cluster_id",
                "pct_total_occurrences",
            ]
        )
        w.writerow(["top", "", "Top", 2, "", 100])
        w.writerow(["virtue", "", "Virtue", 1, "top", 50])
        w.writerow(["care", "", "Care", 1, "top", 50])
        for v, parent in [
            ("honesty", "virtue"),
            ("fairness", "virtue"),
            ("empathy", "care"),
            ("care", "care"),
        ]:
            w.writerow([v, "", v, 0, parent, 25])
    levels = load_tree(tmp_path)
    assert levels[1] == {
        "honesty": "virtue",
        "fairness": "virtue",
        "empathy": "care",
        "care": "care",
    }
    assert set(levels[2].values()) == {"top"}
    a = [
        {
            "conversation_id": "x",
            "user_id": None,
            "subjective": True,
            "response_type": "reframing",
            "ai_values": ["honesty"],
            "human_values": [],
        }
    ]
    b = [
        {
            "conversation_id": "x",
            "user_id": None,
            "subjective": True,
            "response_type": "reframing",
            "ai_values": ["fairness"],
            "human_values": [],
        }
    ]
    res, _ = compare_rows(a, b, levels)
    assert res["ai_values"]["value"]["mean_jaccard"] == 0
    assert res["ai_values"]["level_1"]["mean_jaccard"] == 1
    assert res["ai_values"]["level_2"]["mean_jaccard"] == 1
