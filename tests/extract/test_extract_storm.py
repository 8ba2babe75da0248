"""Load: a sustained storm of 429s with Retry-After from the local server. The run stays within
its request rate, finishes, pays once per conversation and loses nothing."""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import pyarrow.parquet as pq
from fakellm import FakeLLM
from valuescope.extract import ExtractOptions, run_extract

N = 40
RPM = 600  # 10 requests/s


def test_429_storm_stays_within_the_rate_and_loses_nothing(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-storm")
    src = tmp_path / "chats.jsonl"
    with src.open("w") as fh:
        for i in range(N):
            msgs = [{"role": "user", "content": f"Question {i}: is it fair to ask this of them?"},
                    {"role": "assistant", "content": "It depends; be honest."}]  # fmt: skip
            fh.write(json.dumps({"id": f"s{i}", "user_id": f"u{i}", "messages": msgs}) + "\n")
    out = tmp_path / "features.parquet"
    with FakeLLM() as fake:
        # every conversation is refused three times (two with Retry-After: 1) before an answer
        fake.default_actions = ["429ra", "429", "429ra", "ok"]
        opts = ExtractOptions(provider="openai", model="m", base_url=fake.url + "/v1",
                              concurrency=16, rpm=RPM, backoff_base=0.05, progress=False,
                              cache_dir=str(tmp_path / "cache"))  # fmt: skip
        summary = run_extract([str(src)], str(out), opts)
        log = fake.requests("/chat/completions")
    assert summary.done == N and summary.failed == 0
    assert pq.read_table(out).num_rows == N
    rejects = Path(summary.rejects)
    assert not rejects.exists() or not rejects.read_text().strip()
    ok = [r for r in log if r["status"] == 200]
    assert len(ok) == N, "each conversation paid for exactly once"
    assert len(log) == 4 * N, "every refusal retried, none given up"
    # the limiter's promise: in any 2-second window, at most 2 s of rate plus a 1 s burst
    times = sorted(r["time"] for r in log)
    per_s = RPM / 60
    for i, t0 in enumerate(times):
        in_window = bisect.bisect_right(times, t0 + 2.0) - i
        assert in_window <= 3 * per_s + 1, (in_window, t0)
    assert times[-1] - times[0] >= (4 * N - per_s) / per_s * 0.9, "the rate limit was not applied"
