"""The list of values to watch: the default from the paper, or one read from a file. Kept apart
from the computation so that the command line can read a list without loading pyarrow."""

from __future__ import annotations

from pathlib import Path

from valuescope.errors import UserError

#: From the paper's discussion of values that signal misuse (Huang et al. 2025).
DEFAULT_WATCH: tuple[str, ...] = (
    "sexual exploitation",
    "dominance",
    "amorality",
    "rule-breaking",
    "moral nihilism",
    "deception",
)


def read_watch_file(path: Path) -> list[str]:
    """One value per line; blank lines and lines starting with # are skipped."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the watch list ({exc.__class__.__name__})") from exc
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    if not out:
        raise UserError(f"{path}: the watch list names no value")
    return out
