"""`valuescope extract` stopped with SIGINT or SIGTERM (a real signal to a real process, against
the fault-injecting server): it stops within seconds, writes the features and rejects of every
record, says how to resume, exits 130 / 143, and the rerun pays for nothing twice."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fakellm import FakeLLM
from helpers.conversations import write_conversations

N = 40
GRACE = 1.0


def cmd(src: Path, out: Path, cache: Path, url: str, progress: bool = False) -> list[str]:
    return [sys.executable, "-m", "valuescope.cli", "extract", str(src), "--out", str(out),
            "--provider", "openai", "--model", "m", "--base-url", url + "/v1",
            "--concurrency", "2", "--cache", str(cache), "--grace", str(GRACE),
            "--progress" if progress else "--no-progress"]  # fmt: skip


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    e["OPENAI_API_KEY"] = "sk-test-signals"
    return e


def wait_for(pred, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail("the run did not get that far")
        time.sleep(0.02)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_writes_everything_and_resumes(tmp_path, signum, code):
    src = tmp_path / "chats.jsonl"
    bad = ['{"conversation_id": "cut']  # one unreadable record: a reject before any request
    ids = write_conversations(src, [""] * N, extra=bad)
    out, cache = tmp_path / "features.parquet", tmp_path / "cache"
    with FakeLLM() as fake:
        fake.delay = 0.6  # 40 answers over 2 connections: 12 s or more if left alone
        args = cmd(src, out, cache, fake.url)
        proc = subprocess.Popen(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        wait_for(lambda: len(fake.successes_by_conversation()) >= 4, 60)
        t0 = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - t0
        assert proc.returncode == code, stderr
        # Nothing is sent once the signal has arrived (a request already on its way may still
        # land just after it); a run left alone would have gone on for many seconds.
        late = [r for r in fake.requests("/chat/completions") if r["arrived"] > t0 + 1.0]
        assert late == []
        assert stopped_in < GRACE + 15, stopped_in  # generous: the machine may be busy
        assert "Traceback" not in stderr and "Aborted" not in stderr
        name = signal.Signals(signum).name
        assert f"interrupted by {name}" in stderr
        assert "run the same command again to resume" in stderr.lower()

        rows = pq.read_table(out).to_pylist()
        rejects = [
            json.loads(line) for line in Path(f"{out}.rejects.jsonl").read_text().splitlines()
        ]
        got = [r["conversation_id"] for r in rows]
        not_processed = [r for r in rejects if r["reason"].startswith("not processed")]
        # every record once: extracted, not processed, or unreadable
        assert sorted(got + [r["conversation_id"] for r in not_processed]) == sorted(ids)
        assert len(rejects) == len(not_processed) + 1
        assert 0 < len(rows) <= N // 2 and not_processed
        assert all(f"interrupted ({name})" in r["reason"] for r in not_processed)
        m = re.search(r"(\d+) answers are cached", stderr)
        assert m and int(m.group(1)) == len(rows)

        # The rerun: what was answered is not asked again; its bar starts at the cached count.
        fake.delay = 0.0
        before = len(fake.requests("/chat/completions"))
        p = subprocess.run(cmd(src, out, cache, fake.url, progress=True), env=env(),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
        assert p.returncode == 0, p.stderr
        counts = fake.successes_by_conversation()
        assert all(n == 1 for n in counts.values()), counts  # nobody paid for twice
        assert len(counts) == N
        asked_again = len(fake.requests("/chat/completions")) - before
        assert asked_again == N - len(rows)
        first = re.search(r"(\d+)/(\d+)", p.stderr)
        assert first and int(first.group(1)) == len(rows) and int(first.group(2)) == N + 1
        assert len(pq.read_table(out)) == N
