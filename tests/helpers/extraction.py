"""Running the extraction in-process against the fake server, and reading what it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fakellm import FakeLLM
from valuescope.extract import ExtractOptions
from valuescope.extract.output import FEATURES_SCHEMA


def options(fake: FakeLLM, tmp: Path, provider: str = "openai", **kw: Any) -> ExtractOptions:
    base = fake.url + ("/v1" if provider == "openai" else "")
    defaults: dict[str, Any] = {
        "provider": provider,
        "model": "test-model",
        "base_url": base,
        "backoff_base": 0.01,
        "timeout": 0.6,
        "progress": False,
        "cache_dir": str(tmp / "cache"),
        "concurrency": 4,
    }
    defaults.update(kw)
    return ExtractOptions(**defaults)


def outputs(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    table = pq.read_table(out)
    assert table.schema.equals(FEATURES_SCHEMA)
    rejects = [json.loads(x) for x in Path(str(out) + ".rejects.jsonl").read_text().splitlines()]
    return table.to_pylist(), rejects


def assert_nothing_lost(ids: list[str], rows: list[dict], rejects: list[dict], n_bad: int = 0):
    got = [r["conversation_id"] for r in rows]
    rejected = [r["conversation_id"] for r in rejects if r.get("conversation_id")]
    assert len(got) == len(set(got))
    assert not set(got) & set(rejected)
    assert sorted(got + rejected) == sorted(ids)
    assert len(rejects) - len(rejected) == n_bad
