"""`valuescope extract` as a real process: exit codes, user errors, SIGKILL and resume, secrecy of
the API key in every file and stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fakellm import FakeLLM
from helpers.conversations import write_conversations

KEY = "sk-live-CLISECRET-a1b2c3d4e5f6a7b8c9d0"


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    out.update(extra)
    return out


def cmd(src: Path, out: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "valuescope.cli.extract",
        str(src),
        "--out",
        str(out),
        "--model",
        "test-model",
        "--no-progress",
        "--retry-wait",
        "0.01",
        "--cache",
        str(out.parent / "cache"),
        *args,
    ]


def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("env", env(OPENAI_API_KEY=KEY, ANTHROPIC_API_KEY=KEY))
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def test_user_errors_are_one_line_with_status_2(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    write_conversations(src, ["ok"])
    out = tmp_path / "f.parquet"
    openai = ["--provider", "openai", "--base-url", fake.url + "/v1"]
    cases = [
        (cmd(tmp_path / "missing.jsonl", out, *openai), "missing.jsonl: no such file"),
        (cmd(src, out, "--provider", "openai"), "OPENAI_API_KEY is not set"),
        (cmd(src, out, *openai, "--batch"), "--batch needs --provider anthropic"),
        (cmd(src, out, *openai, "--price", "cheap"), "IN,OUT"),
    ]
    for args, message in cases:
        proc = run(args, env=env())
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not fake.requests()


def test_cli_run_writes_features_and_rejects(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok", "429", "badenum,badenum"], extra=["not json"])
    out = tmp_path / "f.parquet"
    proc = run(cmd(src, out, "--provider", "openai", "--base-url", fake.url + "/v1"))
    assert proc.returncode == 0, proc.stderr
    assert "2 extracted (0 from cache), 2 rejected" in proc.stderr
    assert pq.read_table(out).column("conversation_id").to_pylist() == ids[:2]
    rejects = [json.loads(x) for x in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
    assert [(r["conversation_id"], r["line"]) for r in rejects] == [("c002", 3), (None, 4)]


def test_max_cost_exit_status(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    write_conversations(src, ["ok"] * 6)
    out = tmp_path / "f.parquet"
    args = ["--provider", "openai", "--base-url", fake.url + "/v1", "--concurrency", "1"]
    proc = run(cmd(src, out, *args, "--price", "1000,1000", "--max-cost", "2"))
    assert proc.returncode == 3, proc.stderr
    assert "stopped early: --max-cost $2 reached" in proc.stderr
    assert pq.read_table(out).num_rows == 2


def test_sigkill_then_rerun_pays_only_for_what_was_in_flight(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 40)
    out = tmp_path / "f.parquet"
    fake.delay = 0.05
    concurrency = 4
    args = cmd(
        src, out, "--provider", "openai", "--base-url", fake.url + "/v1",
        "--concurrency", str(concurrency),
    )  # fmt: skip
    proc = subprocess.Popen(
        args, env=env(OPENAI_API_KEY=KEY), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(fake.successes_by_conversation()) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)  # let the server log the answers it was still sending
    assert not out.exists()  # killed before the end: no partial output file
    done_before = len(fake.successes_by_conversation())
    assert 12 <= done_before < 40
    fake.delay = 0.0
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert pq.read_table(out).column("conversation_id").to_pylist() == ids
    paid_twice = [c for c, n in fake.successes_by_conversation().items() if n > 1]
    assert len(paid_twice) <= concurrency
    assert f"{40 - done_before + len(paid_twice)} requests" in again.stderr


def test_batch_ids_survive_a_kill_between_submit_and_collect(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    ids = write_conversations(src, ["ok"] * 5)
    out = tmp_path / "f.parquet"
    fake.batch_ready_after = 10**9  # never ends while the first process lives
    args = cmd(src, out, "--provider", "anthropic", "--base-url", fake.url, "--batch")
    proc = subprocess.Popen(
        args, env=env(ANTHROPIC_API_KEY=KEY), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not fake.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # let it commit the batch id and poll once
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(fake.batches) == ["msgbatch_0001"]
    fake.batch_ready_after = 0
    again = run(args)
    assert again.returncode == 0, again.stderr
    assert list(fake.batches) == ["msgbatch_0001"]  # collected, not submitted again
    assert not [r for r in fake.requests() if r["path"] == "/v1/messages"]
    assert pq.read_table(out).column("conversation_id").to_pylist() == ids


def test_api_key_never_written_or_printed(fake: FakeLLM, tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    write_conversations(src, ["400echo", "ok", "429,400echo", "ok"])
    out = tmp_path / "f.parquet"
    base = ["--provider", "openai", "--base-url", fake.url + "/v1"]
    first = run(cmd(src, out, *base))
    assert first.returncode == 0
    fake.default_actions = ["401echo"]
    src2 = tmp_path / "d.jsonl"
    write_conversations(src2, ["", ""])
    out2 = tmp_path / "g.parquet"
    second = run(cmd(src2, out2, *base))
    assert second.returncode == 3
    assert "authentication refused (HTTP 401)" in second.stderr
    # the server did see (and echo) the key, so the test would notice a leak
    assert sum(r["status"] in (400, 401) for r in fake.requests()) >= 3
    rejects = Path(f"{out}.rejects.jsonl").read_text()
    assert "Incorrect API key provided: [redacted]" in rejects
    streams = first.stdout + first.stderr + second.stdout + second.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 5
    for secret in (KEY, KEY[:12], KEY[-8:]):
        assert secret not in streams
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_extract_options_compose_into_a_pipeline_command(fake: FakeLLM, tmp_path: Path) -> None:
    """What `valuescope run` does: the shared options, then extraction, then the engine."""
    import click
    from click.testing import CliRunner
    from valuescope import Engine
    from valuescope.cli.extract import extract_from_cli, extract_options, split_extract_kwargs

    seen: dict[str, Any] = {}

    @click.command()
    @click.argument("conversations", nargs=-1, required=True)
    @click.option("--out", required=True)
    @click.option("--min-users", type=int, default=10)
    @extract_options
    def pipeline(conversations: tuple[str, ...], out: str, **kw: Any) -> None:
        ext, rest = split_extract_kwargs(kw)
        summary = extract_from_cli(conversations, f"{out}/features.parquet", **ext)
        engine = Engine(min_conversations=1, min_users=rest["min_users"])
        engine.update(pq.read_table(f"{out}/features.parquet"))
        seen.update(summary=summary, result=engine.result(), rest=rest)

    src = tmp_path / "c.jsonl"
    write_conversations(src, ["ok"] * 4)
    args = [str(src), "--out", str(tmp_path / "run"), "--min-users", "1", "--provider", "openai",
            "--model", "m", "--base-url", fake.url + "/v1", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(pipeline, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert seen["summary"].done == 4 and seen["rest"] == {"min_users": 1}
    assert seen["result"]["summary"]["n_conversations"] == 4


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_401_echoing_the_key_is_reported_without_it(
    fake: FakeLLM, tmp_path: Path, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both providers' key headers: the server puts the key it was sent in its 401 message."""
    src = tmp_path / "c.jsonl"
    write_conversations(src, ["", "", ""])
    fake.default_actions = ["401echo"] * 5  # attempts are counted per conversation
    out = tmp_path / "f.parquet"
    base = fake.url + ("/v1" if provider == "openai" else "")
    p = run(cmd(src, out, "--provider", provider, "--base-url", base))
    assert p.returncode == 3, p.stderr
    assert "authentication refused (HTTP 401)" in p.stderr
    assert "Traceback" not in p.stderr
    statuses = [r["status"] for r in fake.requests()]
    assert statuses and set(statuses) == {401}  # every request refused, the key echoed
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"f.parquet", "f.parquet.rejects.jsonl"}
    for secret in (KEY, KEY[:12], KEY[-8:]):
        assert secret not in p.stdout + p.stderr
        for f in files:
            assert secret.encode() not in f.read_bytes(), f
    # in process: the summary a Python caller gets, and its repr
    from valuescope.extract import ExtractOptions, run_extract

    monkeypatch.setenv("OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY", KEY)
    opts = ExtractOptions(provider=provider, model="m", base_url=base, progress=False,
                          cache_dir=str(tmp_path / "cache2"))  # fmt: skip
    summary = run_extract([str(src)], str(tmp_path / "g.parquet"), opts)
    assert summary.stopped and summary.failed == 3
    for secret in (KEY, KEY[:12], KEY[-8:]):
        assert secret not in repr(summary) and secret not in str(summary.stopped)
