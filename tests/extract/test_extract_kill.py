"""`valuescope extract` killed with SIGKILL at several moments (reading, asking, writing): the
features file and the rejects file are each either the old complete one or a new complete one,
and a rerun completes with the same bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakellm import FakeLLM
from helpers.conversations import write_conversations

N = 80


def cmd(src: Path, out: Path, cache: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "valuescope.cli", "extract", str(src), "--out", str(out),
            "--provider", "openai", "--model", "m", "--base-url", url + "/v1",
            "--concurrency", "4", "--cache", str(cache), "--no-progress"]  # fmt: skip


def outputs(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extkill")
    src = tmp / "chats.jsonl"
    bad = ['{"conversation_id": "cut', json.dumps({"id": "x", "messages": [
        {"role": "user", "content": "Anyone there?"}]})]  # fmt: skip
    write_conversations(src, [""] * N, extra=bad)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["OPENAI_API_KEY"] = "sk-test-extract-kill"
    with FakeLLM() as fake:
        fake.delay = 0.04  # 80 answers over 4 connections: about a second of asking
        seconds = {}
        for run, cache in (("cold", tmp / "warm"), ("warm", tmp / "warm")):
            reference = tmp / f"reference-{run}"
            reference.mkdir()
            t0 = time.monotonic()
            p = subprocess.run(cmd(src, reference / "features.parquet", cache, fake.url),
                               env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
            seconds[run] = time.monotonic() - t0
            assert p.returncode == 0, p.stderr
        want = outputs(reference)
        assert want == outputs(tmp / "reference-cold")  # answered or cached: the same bytes
        assert set(want) == {"features.parquet", "features.parquet.rejects.jsonl"}
        assert len(want["features.parquet.rejects.jsonl"].splitlines()) == 2
        yield src, want, env, fake, tmp / "warm", seconds


# kill moments as shares of a whole run's time: starting, asking, writing (a warm cache)
@pytest.mark.parametrize(("share", "warm"), [(0.2, False), (0.5, False), (0.75, False),
                                             (0.6, True)])  # fmt: skip
def test_killed_extract_leaves_complete_files_and_reruns(setup, tmp_path, share, warm):
    src, want, env, fake, warm_cache, seconds = setup
    out = tmp_path / "out"
    out.mkdir()
    for name, data in want.items():  # the old complete files
        (out / name).write_bytes(data)
    # Timed from the reference runs: a run that ends sooner than they did (a quieter machine)
    # is tried again with half the wait, so that the kill does land inside a run.
    for attempt in range(4):
        cache = tmp_path / f"cache-{attempt}"
        if warm:  # every answer cached: the run is mostly reading and writing
            shutil.copytree(warm_cache, cache)
        args = cmd(src, out / "features.parquet", cache, fake.url)
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(share * seconds["warm" if warm else "cold"] / 2**attempt)
        if proc.poll() is None:
            break
        proc.wait()
    else:
        pytest.fail("every run ended before the kill")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # same input, same answers: old and new complete files are byte-identical; a temporary
    # file may be left beside them (a dot-file), never a part under the real name
    assert {k: v for k, v in outputs(out).items() if not k.startswith(".")} == want
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert {k: v for k, v in outputs(out).items() if not k.startswith(".")} == want


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    """The same promise without timing: a write that dies half way leaves the old file whole
    and no part under the real name."""
    from valuescope.extract import output

    path = tmp_path / "features.parquet"
    row = {"conversation_id": "a", "ai_values": ["honesty"], "human_values": [],
           "response_type": "reframing"}  # fmt: skip
    output.write_extracted_features(str(path), [row])
    output.write_rejects(str(path) + ".rejects.jsonl", [{"line": 1, "reason": "old"}])
    old = outputs(tmp_path)

    def dies_half_way(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(output.pq, "write_table", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        output.write_extracted_features(str(path), [row, dict(row, conversation_id="b")])
    real_dumps = json.dumps

    def dumps_once(obj, **kw):
        if obj.get("line") == 2:
            raise KeyboardInterrupt
        return real_dumps(obj, **kw)

    monkeypatch.setattr(output.json, "dumps", dumps_once)
    with pytest.raises(KeyboardInterrupt):
        new = [{"line": 1, "reason": "new"}, {"line": 2, "reason": "new"}]
        output.write_rejects(str(path) + ".rejects.jsonl", new)
    assert outputs(tmp_path) == old  # and no temporary file left behind
