"""What `extract` gained for validation: --sample FRACTION --seed (the same conversations
whatever the order), --refresh (ask again instead of reading the cache), and repairs of what the
schema can catch (a joined list split, a stray explicit value added to the AI values), counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fakellm import FakeLLM
from helpers.conversations import write_conversations
from valuescope.extract import run_extract
from valuescope.extract.answer import repair_features
from valuescope.extract.options import ExtractOptions, in_sample


def options(fake: FakeLLM, tmp: Path, **kw: Any) -> ExtractOptions:
    settings: dict[str, Any] = {
        "provider": "openai",
        "model": "test-model",
        "base_url": f"{fake.url}/v1",
        "backoff_base": 0.01,
        "progress": False,
        "cache_dir": str(tmp / "cache"),
        "concurrency": 4,
    }
    return ExtractOptions(**{**settings, **kw})


def _ids(out: Path) -> list[str]:
    return pq.read_table(out).column("conversation_id").to_pylist()


def test_sample_is_a_hash_of_seed_and_id(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 200)
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path, sample=0.25, seed=4))
    got = _ids(out)
    assert got == [i for i in ids if in_sample(i, 0.25, 4)]
    assert 25 <= len(got) <= 75 and summary.skipped == 200 - len(got)
    assert len(fake.requests("/chat/completions")) == len(got)
    # the same ids from the file reversed
    rev = tmp_path / "r.jsonl"
    rev.write_text("".join(reversed(src.read_text().splitlines(keepends=True))))
    out2 = tmp_path / "g.parquet"
    run_extract([str(rev)], str(out2), options(fake, tmp_path, sample=0.25, seed=4))
    assert sorted(_ids(out2)) == sorted(got)
    # another seed, another sample
    out3 = tmp_path / "h.parquet"
    run_extract([str(src)], str(out3), options(fake, tmp_path, sample=0.25, seed=5))
    assert _ids(out3) != got


def test_refresh_asks_again(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    write_conversations(src, ["ok"] * 6)
    out = tmp_path / "f.parquet"
    run_extract([str(src)], str(out), options(fake, tmp_path))
    n = len(fake.requests("/chat/completions"))
    again = run_extract([str(src)], str(out), options(fake, tmp_path))
    assert again.cached == 6 and len(fake.requests("/chat/completions")) == n
    fresh = run_extract([str(src)], str(out), options(fake, tmp_path, refresh=True))
    assert fresh.cached == 0 and len(fake.requests("/chat/completions")) == n + 6


def test_repairs_counted(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    write_conversations(src, ["joined", "joined", "ok"])
    out = tmp_path / "f.parquet"
    summary = run_extract([str(src)], str(out), options(fake, tmp_path))
    rows = {r["conversation_id"]: r for r in pq.read_table(out).to_pylist()}
    assert rows["c000"]["ai_values"] == ["fear", "compassion", "kindness", "honesty", "courage"]
    assert rows["c002"]["ai_values"] == ["honesty", "empathy", "professionalism"]
    assert summary.repaired == {
        "joined lists split": 2,
        "explicit values added to ai_values": 2,
    }
    assert "repaired: 2 explicit values added to ai_values, 2 joined lists split" in summary.line()


def test_repair_leaves_prose_and_sound_values() -> None:
    feats = {
        "ai_values": ["harm prevention", "care for the user, which shows in every answer it gives"],
        "ai_values_explicit": [],
        "human_values": ["fairness; honesty"],
    }
    out, fixes = repair_features(feats)
    assert out["ai_values"] == feats["ai_values"]  # a part longer than four words: prose, kept
    assert out["human_values"] == ["fairness", "honesty"]
    assert fixes == {"joined lists split": 1}


def test_sample_cli(fake: FakeLLM, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from valuescope.cli import main

    src = tmp_path / "c.jsonl"
    write_conversations(src, ["ok"] * 40)
    out = tmp_path / "f.parquet"
    args = ["extract", str(src), "--out", str(out), "--provider", "openai", "--model", "m",
            "--base-url", f"{fake.url}/v1", "--sample", "0.5", "--seed", "2", "--refresh",
            "--no-progress", "--cache", str(tmp_path / "cache")]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert 0 < len(_ids(out)) < 40
    bad = CliRunner().invoke(main, [*args[:-4], "--sample", "1.5"])
    assert bad.exit_code == 2
