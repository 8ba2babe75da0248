"""The analyze stage's settings, and the engine they make."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuescope._core import Engine
from valuescope.errors import UserError
from valuescope.schema import DEFAULT_ALPHA, DEFAULT_MIN_CONVERSATIONS, DEFAULT_MIN_USERS

#: Table memory before cells spill to disk: above what 2M synthetic conversations need (98
#: MiB), so that typical runs never touch the disk (spilling at 2M cost 0.1 s of 1.1), while
#: peak memory stays under 300 MB at 2M and flat beyond (benches/SCALE.md).
DEFAULT_MEMORY_LIMIT = 128 * 2**20

#: Below this many rows a pool costs more (starting processes, importing pyarrow) than it
#: saves: the engine already spreads each batch over the cores.
POOL_MIN_ROWS = 1_000_000


@dataclass
class AnalyzeOptions:
    min_conversations: int = DEFAULT_MIN_CONVERSATIONS
    min_users: int = DEFAULT_MIN_USERS
    alpha: float = DEFAULT_ALPHA
    n_tests: int | None = None
    tables: list[tuple[str, str]] | None = None
    batch_size: int = 65_536
    progress: bool = True
    #: Processes over files / row groups; 1 = this process only (the engine still uses every
    #: core inside a batch); None = one per CPU when the input has POOL_MIN_ROWS rows or more.
    jobs: int | None = 1
    #: Write a checkpoint every this many batches (None: never).
    checkpoint_every: int | None = None
    #: Continue from the checkpoint in the output directory, if there is one.
    resume: bool = False
    #: Bytes of co-occurrence cells kept in memory before they spill to disk (None: no limit).
    memory_limit: int | None = DEFAULT_MEMORY_LIMIT


@dataclass
class AnalyzeReport:
    out: Path
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def parse_table(spec: str) -> tuple[str, str]:
    a, sep, b = spec.partition(":")
    if not sep or not a.strip() or not b.strip():
        raise UserError(f"--table {spec!r}: expected two column names as A:B")
    return a.strip(), b.strip()


def engine_options(opts: AnalyzeOptions) -> dict[str, Any]:
    return {
        "tables": opts.tables,
        "min_conversations": opts.min_conversations,
        "min_users": opts.min_users,
        "alpha": opts.alpha,
        "n_tests": opts.n_tests,
    }


def remove_stale_spills(base: str | None = None) -> int:
    """Removes spill directories left by killed runs (their process is gone): a SIGKILL leaves
    no chance to clean up. They hold counts and hashed ids, never value strings."""
    import re
    import shutil
    import tempfile

    removed = 0
    root = Path(base or tempfile.gettempdir())
    for d in root.glob("valuescope-spill-*"):
        m = re.fullmatch(r"valuescope-spill-(\d+)-\d+", d.name)
        if not m:
            continue
        try:
            # Another run may remove its own directory between the listing and this check.
            if not d.is_dir() or d.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def new_engine(opts: AnalyzeOptions) -> Engine:
    """An engine with the analysis settings of `opts`, and its memory limit if it has one
    (a setting of this process only: not part of the state, the checkpoint fingerprint or
    the comparison of engines before a merge)."""
    limit = opts.memory_limit
    if limit:
        remove_stale_spills()
    try:
        return Engine(**engine_options(opts), memory_limit=limit)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot use the temporary directory for spill files: {exc}") from None
