"""validate lint: each defect planted in a features file is found and counted exactly (plain
Python counting as the oracle), a clean synthetic corpus shows none, and an example is named
only when it passes the privacy thresholds."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from helpers.validate import run_cli
from valuescope import synth
from valuescope.extract.output import write_extracted_features as write_features
from valuescope.validate.lint import lint, not_a_noun_phrase, prompt_examples

RARE = "zqx rare, joined, lint marker"
FREQUENT_LIST = "fear, compassion, kindness, generosity, fairness, justice"


def _row(i: int, **kw) -> dict:
    base = {
        "conversation_id": f"c{i:04d}",
        "user_id": f"u{i % 50}",
        "model": None,
        "subjective": True,
        "task": f"help with problem number {i}",
        "task_cluster": None,
        "ai_values": [
            "empathy",
            "practical guidance",
            f"care {chr(97 + i % 26)}{chr(97 + i // 26 % 26)}",
        ],
        "ai_values_explicit": ["empathy"],
        "human_values": [],
        "response_type": "mild support",
        "extraction_model": "x",
        "prompt_version": "v1",
        "truncated": False,
    }
    base.update(kw)
    return base


def test_prompt_examples_read_from_the_prompt() -> None:
    assert prompt_examples()[:4] == [
        "honesty",
        "user autonomy",
        "emotional support",
        "harm prevention",
    ]


def test_noun_phrase_rule() -> None:
    assert not_a_noun_phrase(FREQUENT_LIST) is not None
    assert not_a_noun_phrase("Custom Column 1") is not None
    assert not_a_noun_phrase("a value that goes on and on for many words") is not None
    for ok in ("honesty", "user autonomy", "harm prevention", "respect for the user's time"):
        assert not_a_noun_phrase(ok) is None, ok


@pytest.fixture
def planted(tmp_path: Path):
    rng = random.Random(1)
    ex = prompt_examples()
    rows = [_row(i) for i in range(400)]
    truth = {
        "prompt_echo": set(),
        "key_names": 0,
        "not_noun_phrase": 0,
        "explicit_not_in_ai": 0,
        "repeated_answer": set(),
        "unsupported_human_value": 0,
    }
    for i in rng.sample(range(400), 40):
        rows[i]["ai_values"] = ex[:4]
        truth["prompt_echo"].add(i)
    for i in rng.sample(range(400), 30):
        rows[i]["ai_values"] = [*rows[i]["ai_values"], "AI_Values_explicit"]
    for i in rng.sample(range(400), 25):
        rows[i]["human_values"] = [FREQUENT_LIST]
    for i in rng.sample(range(400), 2):
        rows[i]["human_values"] = [*rows[i]["human_values"], RARE]
    for i in rng.sample(range(400), 20):
        rows[i]["ai_values_explicit"] = [*rows[i]["ai_values_explicit"], "courage"]
    for i in rng.sample(range(400), 12):
        rows[i]["task"] = "draft a resignation letter to a manager"
        rows[i]["ai_values"] = ["professionalism", "clarity"]
        rows[i]["human_values"] = []
        truth["repeated_answer"].add(i)
    truth["prompt_echo"] -= truth["repeated_answer"]
    # the oracle: count by hand what each rule should find
    from valuescope._core import normalize

    for r in rows:
        vals = [
            normalize(v) for v in (*r["ai_values"], *r["human_values"], *r["ai_values_explicit"])
        ]
        truth["key_names"] += sum(v == "ai_values_explicit" for v in vals)
        truth["not_noun_phrase"] += sum(("," in v) for v in vals)
        ai = {normalize(v) for v in r["ai_values"]}
        truth["explicit_not_in_ai"] += sum(normalize(v) not in ai for v in r["ai_values_explicit"])
    path = tmp_path / "features.parquet"
    write_features(str(path), rows)
    # logs: users state their values in most conversations, not in the planted list ones
    logs = tmp_path / "logs.jsonl"
    with logs.open("w") as fh:
        for i, r in enumerate(rows):
            said = "I care about fairness and honesty." if i % 2 else "What should I do?"
            fh.write(
                json.dumps(
                    {
                        "conversation_id": r["conversation_id"],
                        "messages": [
                            {"role": "user", "content": said},
                            {"role": "assistant", "content": "Here is help."},
                        ],
                    }
                )
                + "\n"
            )
            for v in r["human_values"]:
                words = [w for w in v.replace(",", " ").split() if len(w) >= 3]
                if not any(
                    w[:5] in {x[:5] for x in said.lower().replace(".", "").split()} for w in words
                ):
                    truth["unsupported_human_value"] += 1
    return path, logs, truth


def test_lint_finds_each_planted_defect(planted, tmp_path: Path) -> None:
    path, logs, truth = planted
    res = lint([str(path)], [str(logs)])
    c = res["checks"]
    assert c["prompt_echo"]["hits"] == len(truth["prompt_echo"])
    assert c["key_names"]["hits"] == truth["key_names"] > 0
    assert c["not_noun_phrase"]["hits"] == truth["not_noun_phrase"] > 0
    assert c["explicit_not_in_ai"]["hits"] == truth["explicit_not_in_ai"] >= 20
    assert c["repeated_answer"]["hits"] == len(truth["repeated_answer"]) == 12
    assert c["unsupported_human_value"]["hits"] == truth["unsupported_human_value"] > 0
    # rates are over their units
    assert c["key_names"]["rate"] == pytest.approx(truth["key_names"] / c["key_names"]["units"])
    # examples: the frequent list (25 conversations, 25 users) is named; the rare one never
    assert FREQUENT_LIST in c["not_noun_phrase"]["examples"]
    assert "ai_values_explicit" in c["key_names"]["examples"]
    out = tmp_path / "lint.json"
    p = run_cli("validate", "lint", str(path), "--conversations", str(logs), "--out", str(out))
    assert p.returncode == 0, p.stderr
    for text in (out.read_text(), p.stdout, p.stderr):
        assert "zqx" not in text
    assert "not_noun_phrase" in p.stdout


def test_clean_synthetic_corpus_has_no_defects(tmp_path: Path) -> None:
    path = tmp_path / "synth.parquet"
    synth.write_corpus(path, 20_000, seed=3, progress=False)
    res = lint([str(path)])
    for name, check in res["checks"].items():
        assert check["units"] > 0, name
        assert check["hits"] == 0, (name, check)
