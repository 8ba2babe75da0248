"""Checkpoints of a long analysis: the merged engine state and the position reached, so that a
killed run continues where its last checkpoint left it and ends with the same result.

Layout, inside the output directory while a run is under way (removed when it completes):

    .valuescope-checkpoint/state    header (JSON) + engine state bytes, replaced atomically
    .valuescope-checkpoint/rejects  rejects.csv as written so far (appended)

The state file records how many bytes of the rejects file belong to the checkpoint; a resumed run
cuts the rejects file back to that length, since rows after the checkpoint are read again. The
format is JSON plus raw bytes, not pickle: loading a checkpoint runs no code from the file.
The state is unsuppressed (rare values included), as sensitive as the features themselves: it is
deleted as soon as the run completes.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuescope.analyze.units import Reject, Unit
from valuescope.atomic import atomic_open
from valuescope.errors import UserError
from valuescope.layout import CHECKPOINT_DIR

MAGIC = b"VSCHECKPOINT\n"
FORMAT = 1


def fingerprint(files: Sequence[Path], engine_opts: dict[str, Any]) -> dict[str, Any]:
    """What must not change between a run and its resumption: the inputs (path, size, mtime)
    and the engine settings."""
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    opts = dict(engine_opts)
    opts["tables"] = [list(t) for t in opts["tables"]] if opts["tables"] else None
    return {"files": out, "engine": opts}


@dataclass
class Position:
    """Where a run stands: finished units, at most one unit part-read (serial runs), and the
    rejects of finished units not yet in the rejects file (parallel runs write them in order)."""

    plan: list[Unit]
    done: set[int] = field(default_factory=set)
    partial: dict[int, int] = field(default_factory=dict)  # unit -> rows already counted
    pending_rejects: dict[int, list[Reject]] = field(default_factory=dict)
    rows: int = 0
    batches: int = 0


class Checkpointer:
    def __init__(self, out: Path, fp: dict[str, Any], every: int | None):
        self.dir = out / CHECKPOINT_DIR
        self.state_path = self.dir / "state"
        self.rejects_path = self.dir / "rejects"
        self.fp = fp
        self.every = every
        self._since = 0

    # -- reading ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.state_path.exists()

    def load(self) -> tuple[Position, bytes, int]:
        """(position, engine state, length of the rejects file that belongs to it)."""
        try:
            raw = self.state_path.read_bytes()
            if not raw.startswith(MAGIC):
                raise ValueError("bad magic")
            (hlen,) = struct.unpack_from("<Q", raw, len(MAGIC))
            start = len(MAGIC) + 8
            header = json.loads(raw[start : start + hlen])
            state = raw[start + hlen :]
            if header["format"] != FORMAT:
                raise ValueError(f"format {header['format']}")
        except (OSError, ValueError, KeyError, struct.error) as exc:
            raise UserError(f"{self.state_path}: unreadable checkpoint ({exc})") from None
        if header["fingerprint"] != self.fp:
            raise UserError(
                f"{self.state_path}: the checkpoint was made with other input files or settings; "
                "rerun without --resume to start again"
            )
        pos = Position(
            plan=[Unit.from_json(u) for u in header["plan"]],
            done=set(header["done"]),
            partial={int(k): v for k, v in header["partial"].items()},
            pending_rejects={
                int(k): [tuple(r) for r in v] for k, v in header["pending_rejects"].items()
            },
            rows=header["rows"],
            batches=header["batches"],
        )
        return pos, state, header["rejects_bytes"]

    # -- writing ---------------------------------------------------------------------------

    def open_rejects(self, keep_bytes: int | None):
        """The rejects file (binary, so that tell() is a byte count), opened for appending:
        empty, or cut back to the checkpoint's length."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if keep_bytes is None:
            return open(self.rejects_path, "wb")
        try:
            with open(self.rejects_path, "r+b") as b:
                if b.seek(0, os.SEEK_END) < keep_bytes:
                    raise OSError("shorter than the checkpoint says")
                b.truncate(keep_bytes)
        except OSError as exc:
            raise UserError(f"{self.rejects_path}: unusable checkpoint rejects ({exc})") from None
        return open(self.rejects_path, "ab")

    def tick(self, batches: int) -> bool:
        """Counts batches; True when a checkpoint is due."""
        if not self.every:
            return False
        self._since += batches
        if self._since >= self.every:
            self._since = 0
            return True
        return False

    def save(self, pos: Position, state: bytes, rejects_fh) -> None:
        # The rejects must be on disk before the state that claims them.
        rejects_fh.flush()
        os.fsync(rejects_fh.fileno())
        header = {
            "format": FORMAT,
            "fingerprint": self.fp,
            "plan": [u.to_json() for u in pos.plan],
            "done": sorted(pos.done),
            "partial": {str(k): v for k, v in pos.partial.items()},
            "pending_rejects": {str(k): v for k, v in pos.pending_rejects.items()},
            "rows": pos.rows,
            "batches": pos.batches,
            "rejects_bytes": rejects_fh.tell(),
        }
        h = json.dumps(header).encode()
        with atomic_open(self.state_path, "wb") as fh:
            fh.write(MAGIC + struct.pack("<Q", len(h)) + h + state)

    def finish(self, rejects_target: Path) -> None:
        """Moves the rejects into place and removes the checkpoint."""
        os.replace(self.rejects_path, rejects_target)
        shutil.rmtree(self.dir, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
