"""Checkpoints: an analysis SIGKILLed after writing a checkpoint, resumed with --resume, writes
the same files as an uninterrupted run; a checkpoint of other inputs is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.analysis import SMALL, assert_same_dir, run_cli
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.analyze.checkpoints import Checkpointer, fingerprint
from valuescope.analyze.options import engine_options
from valuescope.features import expand_paths
from valuescope.layout import CHECKPOINT_DIR

ARGS = ("--min-conversations", "5", "--min-users", "3", "--batch-size", "200", "-q")

# Runs the CLI, but once `VS_SAVES` checkpoints are written it stalls at the next rejects it
# writes (flushed first, so the rejects file runs past the checkpoint), and tells the test.
DRIVER = textwrap.dedent(
    """
    import os, sys, time
    import valuescope.analyze.run as va
    from valuescope.analyze.checkpoints import Checkpointer
    from valuescope.cli import main

    saves = 0
    real_save, real_write = Checkpointer.save, va.RejectsWriter.write

    def save(self, *a, **k):
        global saves
        real_save(self, *a, **k)
        saves += 1

    def write(self, rows):
        real_write(self, rows)
        if saves >= int(os.environ["VS_SAVES"]) and rows:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            open(os.environ["VS_FLAG"], "w").close()
            time.sleep(600)

    Checkpointer.save, va.RejectsWriter.write = save, write
    if __name__ == "__main__":
        main(prog_name="valuescope")
    """
)


def _checkpointer(features: Path, out: Path) -> Checkpointer:
    opts = AnalyzeOptions(**SMALL)
    return Checkpointer(out, fingerprint(expand_paths([features]), engine_options(opts)), None)


@pytest.mark.parametrize(("jobs", "every", "saves"), [("1", "2", 3), ("2", "1", 2)])
def test_killed_run_resumes_to_the_same_result(features, one_pass, tmp_path, jobs, every, saves):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    flag = tmp_path / "flag"
    out = tmp_path / "out"
    cmd = ["analyze", str(features), "--out", str(out), *ARGS, "-j", jobs]
    env = dict(os.environ, VS_SAVES=str(saves), VS_FLAG=str(flag))
    p = subprocess.Popen(
        [sys.executable, str(driver), *cmd, "--checkpoint-every", every],
        env=env,
        start_new_session=True,  # its own process group: the pool's workers die with it
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), f"never stalled after a checkpoint (exit {p.poll()})"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists()

    ck = _checkpointer(features, out)
    pos, _, kept = ck.load()
    assert 0 < len(pos.done) + len(pos.partial) and pos.rows < 4000
    if jobs == "1":
        assert pos.partial, "a serial run checkpoints inside a file"
    # rejects past the checkpoint reached the disk: resuming must cut them off
    assert ck.rejects_path.stat().st_size > kept

    r = run_cli(*cmd, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_dir(one_pass, out)  # also: no checkpoint left behind
    assert (out / "rejects.csv").read_text() == (one_pass / "rejects.csv").read_text()


def test_resume_without_checkpoint_starts_afresh(features, one_pass, tmp_path):
    out = tmp_path / "out"
    r = run_cli("analyze", str(features), "--out", str(out), *ARGS, "-j", "1", "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_dir(one_pass, out)


def _leave_checkpoint(features: Path, out: Path) -> None:
    """A real checkpoint, as a killed run leaves it."""
    opts = AnalyzeOptions(**SMALL, batch_size=200, progress=False, checkpoint_every=1)
    real = Checkpointer.finish
    Checkpointer.finish = lambda self, target: None  # type: ignore[method-assign]
    try:
        analyze_files([features], out, opts)
    finally:
        Checkpointer.finish = real  # type: ignore[method-assign]
    assert (out / CHECKPOINT_DIR / "state").exists()


def test_checkpoint_of_other_inputs_is_refused(features, tmp_path):
    out = tmp_path / "out"
    _leave_checkpoint(features, out)
    r = run_cli("analyze", str(features), "--out", str(out), *ARGS, "--resume",
                "--min-users", "4")  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "other input files or settings" in lines[0]


def test_damaged_checkpoint_is_one_line(features, tmp_path):
    out = tmp_path / "out"
    _leave_checkpoint(features, out)
    state = out / CHECKPOINT_DIR / "state"
    state.write_bytes(state.read_bytes()[:40])
    r = run_cli("analyze", str(features), "--out", str(out), *ARGS, "--resume")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreadable checkpoint" in lines[0]


@pytest.mark.parametrize("extra", [("--checkpoint-every", "3"), ()])
def test_fresh_run_discards_an_old_checkpoint_and_says_so(features, one_pass, tmp_path, extra):
    out = tmp_path / "out"
    _leave_checkpoint(features, out)
    r = run_cli("analyze", str(features), "--out", str(out), *ARGS, *extra)
    assert r.returncode == 0, r.stderr
    assert "discarding the checkpoint" in r.stderr
    assert_same_dir(one_pass, out)  # no checkpoint left behind
