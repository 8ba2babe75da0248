"""Reading one side of a diff: an analysis directory's published counts (already suppressed by
the engine) and its number of analysed conversations. Nothing else of the analysis is read."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuescope.errors import UserError
from valuescope.layout import RESULT_FILES, SUMMARY

#: diff.csv's feature name -> (the analysis file's key in RESULT_FILES, its name column)
FEATURES = {
    "ai_values": ("ai_values", "value"),
    "human_values": ("human_values", "value"),
    "response_type": ("response_types", "response_type"),
    # the share of conversations that state the value outright (appendix B.6)
    "ai_values_explicit": ("ai_values_explicit", "value"),
}
#: features an analysis may lack (one written before valuescope counted them): compared only
#: where both sides have them
OPTIONAL = {"ai_values_explicit"}


@dataclass
class Side:
    path: Path
    n_conversations: int
    min_conversations: int | None
    min_users: int | None
    #: feature -> published name -> conversations (an OPTIONAL feature it lacks is absent)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def thresholds(self) -> tuple[int | None, int | None]:
        return self.min_conversations, self.min_users


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def read_side(path: str | Path) -> Side:
    """One analysis directory; a UserError naming the directory or file when it is not one."""
    d = Path(path)
    if not d.is_dir():
        raise UserError(f"{d}: no such analysis directory")
    summary_path = d / SUMMARY
    if not summary_path.is_file():
        raise UserError(f"{d}: not an analysis directory (no {SUMMARY}; run valuescope analyze)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{summary_path}: damaged analysis file (not JSON)") from None
    n = _int(summary.get("n_conversations")) if isinstance(summary, dict) else None
    if n is None or n < 0:
        raise UserError(f"{summary_path}: not an analysis summary (no n_conversations)")
    if n == 0:
        raise UserError(f"{d}: the analysis has no analysed conversations to compare")
    t = summary.get("thresholds") or {}
    side = Side(d, n, _int(t.get("min_conversations")), _int(t.get("min_users")))
    for feature, (key, name_col) in FEATURES.items():
        path = d / RESULT_FILES[key]
        if feature in OPTIONAL and not path.is_file():
            continue
        side.counts[feature] = _read_counts(path, name_col, n)
    return side


def _read_counts(path: Path, name_col: str, n: int) -> dict[str, int]:
    if not path.is_file():
        raise UserError(f"{path.parent}: not a complete analysis directory (no {path.name})")
    out: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {name_col, "n_conversations"} - set(reader.fieldnames or ())
            if missing:
                raise UserError(f"{path}: damaged analysis file (no {', '.join(sorted(missing))})")
            for line, row in enumerate(reader, start=2):
                try:
                    k = int(row["n_conversations"])
                except (TypeError, ValueError):
                    k = -1
                if not 0 <= k <= n or row[name_col] is None:
                    raise UserError(f"{path}: damaged analysis file (line {line})")
                out[row[name_col]] = k
    except UnicodeDecodeError:
        raise UserError(f"{path}: damaged analysis file (not UTF-8)") from None
    except csv.Error as exc:
        raise UserError(f"{path}: damaged analysis file ({str(exc)[:120]})") from None
    return out
