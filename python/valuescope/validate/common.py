"""Shared by the validate commands: the facts they rely on (imported from their one home),
reading features and conversations, and the judgments format that human reviewers (review.html),
other tools and the LLM judge all write, with its checks.

A judgments file (``judgments.json``)::

    {"format": "valuescope-judgments", "version": 1,
     "packet": "<id of the review packet>", "reviewer": "<name>", "kind": "human" | "llm",
     "sample": {"stratify": "response_type" | "none",
                "strata": {"<stratum>": {"population": N, "sampled": n}},
                "items": {"<item id>": {"stratum": "<stratum>",
                                        "response_type": "<extracted>",
                                        "subjective": true | false | null}}},
     "judgments": [{"item": "<item id>",
                    "ai_values": {"<value>": true | false, ...},
                    "human_values": {"<value>": true | false, ...},
                    "human_missing": true | false,
                    "response_type": "<the right type>",
                    "subjective": true | false,
                    "task_ok": true | false}, ...]}

In a judgment ``subjective`` is whether the extracted label is right, ``response_type`` is the
type the reviewer holds right (the extracted one when it is), and a key left out or ``null`` is
not judged. ``sample`` travels with every judgments file, so that ``score`` can re-weight without
the packet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valuescope import layout
from valuescope._core import normalize
from valuescope.errors import UserError
from valuescope.extract.conversations import Conversation, FieldMap, read_conversations
from valuescope.schema import DEFAULT_MIN_CONVERSATIONS, DEFAULT_MIN_USERS, RESPONSE_TYPES

__all__ = [
    "DEFAULT_MIN_CONVERSATIONS",
    "DEFAULT_MIN_USERS",
    "RESPONSE_TYPES",
    "normalize",
]

JUDGMENTS_FORMAT = "valuescope-judgments"
JUDGMENTS_VERSION = 1
ITEMS_FILE = layout.REVIEW_ITEMS
REVIEW_FILE = layout.REVIEW_PAGE
PACKET_FILE = layout.REVIEW_PACKET

FEATURE_COLUMNS = (
    "conversation_id",
    "user_id",
    "model",
    "subjective",
    "task",
    "ai_values",
    "ai_values_explicit",
    "human_values",
    "response_type",
)
LIST_COLUMNS = ("ai_values", "ai_values_explicit", "human_values")
JUDGED_CLAIMS = (
    "ai_values",
    "human_values",
    "human_missing",
    "response_type",
    "subjective",
    "task_ok",
)


def load_features(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rows of one or more features files (the columns validate needs; absent optional columns
    read as null). Duplicate conversation ids across the files are a user error."""
    import pyarrow.parquet as pq

    from valuescope.features import expand_paths

    rows: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for path in expand_paths(paths):
        try:
            pf = pq.ParquetFile(path)
            names = set(pf.schema_arrow.names)
            if "conversation_id" not in names:
                raise UserError(f"{path}: no conversation_id column (not a features file)")
            table = pf.read(columns=[c for c in FEATURE_COLUMNS if c in names])
        except UserError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"{path}: not a readable features Parquet file ({first})") from None
        for i, row in enumerate(table.to_pylist()):
            cid = row.get("conversation_id")
            if cid is None:
                raise UserError(f"{path}: row {i}: conversation_id is null")
            if cid in seen:
                raise UserError(f"{path}: row {i}: duplicate conversation id (also in {seen[cid]})")
            seen[cid] = path
            for c in FEATURE_COLUMNS:
                row.setdefault(c, None)
            for c in LIST_COLUMNS:
                if row[c] is None and c != "ai_values_explicit":
                    row[c] = []
            row["_source"] = f"{path}: row {i}"
            rows.append(row)
    return rows


def load_conversations(
    paths: Sequence[str], wanted: set[str] | None = None, fmt: str = "auto"
) -> dict[str, Conversation]:
    """Conversations by id (only ``wanted`` when given); unreadable records are skipped here,
    since extract already reported them."""
    out: dict[str, Conversation] = {}
    # an unusable file raises InputError, a UserError: one line naming it
    for item in read_conversations(list(paths), fmt, FieldMap()):
        if isinstance(item, Conversation) and (wanted is None or item.conversation_id in wanted):
            out[item.conversation_id] = item
    return out


def value_set(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(normalize(v) for v in values or () if v and normalize(v))


# -- judgments --------------------------------------------------------------------------------


@dataclass
class JudgmentFile:
    path: Path
    packet: str
    reviewer: str
    kind: str  # "human" or "llm"
    stratify: str
    strata: dict[str, dict[str, int]]
    items: dict[str, dict[str, Any]]
    judgments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.reviewer}"

    def weight(self, item: str) -> float:
        info = self.strata[self.items[item]["stratum"]]
        return info["population"] / info["sampled"] if info["sampled"] else 0.0


def _fail(path: Path, where: str, what: str) -> UserError:
    return UserError(f"{path}: {where}: {what}")


def _bool_or_none(path: Path, where: str, key: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _fail(path, where, f"'{key}' must be true, false or null, got {type(value).__name__}")


def _claims(path: Path, where: str, key: str, value: Any) -> dict[str, bool | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, where, f"'{key}' must be an object of value -> true/false")
    out: dict[str, bool | None] = {}
    for v, ok in value.items():
        out[v] = _bool_or_none(path, where, f"{key}.{v}", ok)
    return out


def check_judgment(path: Path, where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(path, where, f"a judgment must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"item", *JUDGED_CLAIMS, "note"})
    if unknown:
        raise _fail(path, where, f"unknown keys: {', '.join(unknown)}")
    rtype = raw.get("response_type")
    if rtype is not None and rtype not in RESPONSE_TYPES:
        raise _fail(path, where, f"'response_type' is not one of the seven types: {rtype!r:.60}")
    return {
        "item": raw["item"],
        "ai_values": _claims(path, where, "ai_values", raw.get("ai_values")),
        "human_values": _claims(path, where, "human_values", raw.get("human_values")),
        "human_missing": _bool_or_none(path, where, "human_missing", raw.get("human_missing")),
        "response_type": rtype,
        "subjective": _bool_or_none(path, where, "subjective", raw.get("subjective")),
        "task_ok": _bool_or_none(path, where, "task_ok", raw.get("task_ok")),
    }


def load_judgments(path: str | Path, known_items: set[str] | None = None) -> JudgmentFile:
    """Reads and checks one judgments file. Every problem is one line naming the file and the
    item: not JSON, the wrong format, an unknown item id, an item judged twice, a wrong shape."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != JUDGMENTS_FORMAT:
        raise UserError(f'{p}: not a valuescope judgments file (no "format": "{JUDGMENTS_FORMAT}")')
    if data.get("version") != JUDGMENTS_VERSION:
        raise UserError(f"{p}: judgments version {data.get('version')!r} is not supported")
    sample = data.get("sample")
    if not isinstance(sample, dict) or not isinstance(sample.get("items"), dict):
        raise UserError(f"{p}: 'sample' must hold the packet's items and strata")
    strata = sample.get("strata") or {}
    items: dict[str, dict[str, Any]] = {}
    for item, meta in sample["items"].items():
        if not isinstance(meta, dict) or not isinstance(meta.get("stratum"), str):
            raise UserError(f"{p}: item {item}: the sample entry needs a stratum")
        items[str(item)] = meta
        s = meta["stratum"]
        info = strata.get(s)
        if not isinstance(info, dict) or not all(
            isinstance(info.get(k), int) and info[k] >= 0 for k in ("population", "sampled")
        ):
            raise UserError(f"{p}: item {item}: stratum {s!r} has no population and sample size")
    known = set(items) if known_items is None else known_items
    raw_list = data.get("judgments")
    if not isinstance(raw_list, list):
        raise UserError(f"{p}: 'judgments' must be a list")
    out = JudgmentFile(
        p,
        str(data.get("packet", "")),
        str(data.get("reviewer") or p.stem),
        "llm" if data.get("kind") == "llm" else "human",
        str(sample.get("stratify", "none")),
        {str(k): dict(v) for k, v in strata.items()},
        items,
    )
    for i, raw in enumerate(raw_list):
        where = f"judgment {i}"
        if not isinstance(raw, dict) or not isinstance(raw.get("item"), str):
            raise _fail(p, where, "each judgment needs an 'item' id (a string)")
        item = raw["item"]
        where = f"item {item}"
        if item not in known or item not in items:
            raise _fail(p, where, "unknown item id (not in the review packet)")
        if item in out.judgments:
            raise _fail(p, where, "judged twice in one file")
        out.judgments[item] = check_judgment(p, where, raw)
    return out


def finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def dump_json(path: Path, data: Any) -> None:
    from valuescope.atomic import write_text

    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=finite_or_none) + "\n")
