"""Read chat logs (JSONL or Parquet) in the common public formats into one shape.

Formats, auto-detected per record or named with ``fmt``:

- ``openai``: ``messages: [{role, content}]`` (content may be a list of text parts)
- ``sharegpt``: ``conversations: [{from, value}]``
- ``wildchat``: ``conversation: [{role, content}]`` with ``model`` and ``hashed_ip`` or ``user_id``
  (WildChat, LMSYS-Chat-1M)
- ``transcript``: a plain ``transcript`` text field

A record that cannot be read becomes a :class:`Rejected` with its file, line (JSONL, 1-based) or
row (Parquet, 0-based) and a reason; reading goes on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from valuescope.errors import InputError

FORMATS = ("auto", "openai", "sharegpt", "wildchat", "transcript")

_FORMAT_KEY = {
    "openai": "messages",
    "sharegpt": "conversations",
    "wildchat": "conversation",
    "transcript": "transcript",
}
DEFAULT_ID_FIELDS = ("conversation_id", "id", "conversation_hash")
DEFAULT_USER_FIELDS = ("user_id", "hashed_ip")
DEFAULT_MODEL_FIELDS = ("model",)

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "ai": "assistant",
    "bot": "assistant",
    "chatbot": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass
class Conversation:
    conversation_id: str
    user_id: str | None
    model: str | None
    messages: list[Message]
    source: str  # "file:line" or "file:row N", for messages
    file: str = ""
    line: int | None = None  # JSONL, 1-based
    row: int | None = None  # Parquet, 0-based

    def location(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file}
        if self.line is not None:
            out["line"] = self.line
        if self.row is not None:
            out["row"] = self.row
        return out


@dataclass
class Rejected:
    source: str
    file: str
    line: int | None
    row: int | None
    reason: str
    conversation_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conversation_id": self.conversation_id, "file": self.file}
        if self.line is not None:
            out["line"] = self.line
        if self.row is not None:
            out["row"] = self.row
        out["reason"] = self.reason
        out.update(self.extra)
        return out


class RecordError(ValueError):
    """One record is malformed; the message is the reject reason."""


@dataclass(frozen=True)
class FieldMap:
    id_field: str | None = None
    user_field: str | None = None
    model_field: str | None = None


def detect_format(record: dict[str, Any]) -> str:
    for fmt in ("openai", "sharegpt", "wildchat", "transcript"):
        if _FORMAT_KEY[fmt] in record:
            return fmt
    raise RecordError(
        "unknown conversation format: no 'messages', 'conversations', 'conversation' "
        "or 'transcript' field"
    )


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts; non-text parts (images) are dropped
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    raise RecordError(f"{where}: content is {type(content).__name__}, expected text")


def _turns(value: Any, fmt: str) -> list[Message]:
    key = _FORMAT_KEY[fmt]
    if fmt == "transcript":
        if not isinstance(value, str):
            raise RecordError(f"'{key}' is {type(value).__name__}, expected a string")
        if not value.strip():
            raise RecordError("empty transcript")
        return [Message("transcript", value)]
    if not isinstance(value, list):
        raise RecordError(f"'{key}' is {type(value).__name__}, expected a list of turns")
    out: list[Message] = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RecordError(f"'{key}'[{i}] is {type(turn).__name__}, expected an object")
        if fmt == "sharegpt":
            role_raw, content = turn.get("from"), turn.get("value")
        else:
            role_raw, content = turn.get("role"), turn.get("content")
        if not isinstance(role_raw, str):
            raise RecordError(f"'{key}'[{i}] has no role")
        role = _SHAREGPT_ROLES.get(role_raw.lower(), role_raw.lower())
        out.append(Message(role, _text(content, f"'{key}'[{i}]")))
    if not any(m.content.strip() for m in out):
        raise RecordError("conversation has no text")
    if not any(m.role == "assistant" and m.content.strip() for m in out):
        # the features describe the AI's response: without one there is nothing to extract
        raise RecordError("no assistant turn with text")
    return out


def _pick(record: dict[str, Any], explicit: str | None, defaults: Iterable[str]) -> Any:
    if explicit is not None:
        return record.get(explicit)
    for name in defaults:
        if record.get(name) is not None:
            return record[name]
    return None


def _as_id(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{what} is {type(value).__name__}, expected a string or integer")
    text = str(value).strip()
    return text or None


def parse_record(
    record: Any, fmt: str, fields: FieldMap, fallback_id: str, source: str
) -> Conversation:
    if not isinstance(record, dict):
        raise RecordError(f"record is {type(record).__name__}, expected an object")
    use = detect_format(record) if fmt == "auto" else fmt
    key = _FORMAT_KEY[use]
    if key not in record:
        raise RecordError(f"format '{use}' needs a '{key}' field")
    messages = _turns(record[key], use)
    cid = _as_id(_pick(record, fields.id_field, DEFAULT_ID_FIELDS), "conversation id")
    if cid is None and fields.id_field is not None:
        raise RecordError(f"no '{fields.id_field}' field")
    user = _as_id(_pick(record, fields.user_field, DEFAULT_USER_FIELDS), "user id")
    model = _as_id(_pick(record, fields.model_field, DEFAULT_MODEL_FIELDS), "model")
    return Conversation(cid or fallback_id, user, model, messages, source)


def _jsonl(path: str) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line number, decoded record or None, error)."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, json.loads(raw), None
            except UnicodeDecodeError:
                yield lineno, None, "line is not valid UTF-8"
            except json.JSONDecodeError as exc:
                yield lineno, None, f"invalid JSON: {exc.msg} at column {exc.colno}"


def _starts_with_array(path: str) -> bool:
    """A .json file holding one JSON array (the usual ShareGPT release) rather than JSON lines."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


def _json_array(path: str) -> Iterator[tuple[int, Any, str | None]]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of conversations or JSON lines")
    yield from ((i, rec, None) for i, rec in enumerate(data))


def _parquet(path: str) -> Iterator[tuple[int, Any, str | None]]:
    import pyarrow.parquet as pq

    try:
        # without pre_buffer: it would keep every chunk read until the file is closed
        pf = pq.ParquetFile(path, pre_buffer=False)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    row = 0
    batches = pf.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:  # a damaged page: the rows from here on cannot be read
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(
                f"{path}: cannot read Parquet data at or after row {row} ({first})"
            ) from None
        if batch is None:
            return
        try:
            records = batch.to_pylist()
        except UnicodeDecodeError:  # Parquet readers do not check UTF-8: find the bad rows
            records = None
        for i in range(batch.num_rows):
            rec, err = (records[i], None) if records is not None else _one_row(batch, i)
            yield row, rec, err
            row += 1


def _one_row(batch: Any, i: int) -> tuple[Any, str | None]:
    try:
        return batch.slice(i, 1).to_pylist()[0], None
    except UnicodeDecodeError:
        return None, "row is not valid UTF-8"


def count_records(path: str) -> int | None:
    """Cheap record count for the progress bar; None when it would need a full parse."""
    if path.lower().endswith(".json") and _starts_with_array(path):
        return None
    if _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _is_parquet(path: str) -> bool:
    return path.lower().endswith((".parquet", ".pq"))


def check_inputs(paths: Iterable[str]) -> None:
    """Fail before any request is made if an input file is missing or of an unknown type."""
    for path in paths:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")
        if os.path.getsize(path) == 0:
            raise InputError(f"{path}: empty file (0 bytes)")
        if not (_is_parquet(path) or path.lower().endswith(_JSONL_EXT)):
            raise InputError(f"{path}: unknown file type (expected .jsonl, .ndjson or .parquet)")


_JSONL_EXT = (".jsonl", ".ndjson", ".json", ".jsonl.txt")


def read_conversations(
    paths: Iterable[str], fmt: str = "auto", fields: FieldMap | None = None
) -> Iterator[Conversation | Rejected]:
    """Yield conversations in input order, with a :class:`Rejected` for each unreadable record.

    Duplicate conversation ids are rejected (the feature schema needs one row per id)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}' (expected one of {', '.join(FORMATS)})")
    fields = fields or FieldMap()
    seen: set[str] = set()
    for path in paths:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")
        lower = path.lower()
        if _is_parquet(path):
            records, is_rows = _parquet(path), True
        elif lower.endswith(_JSONL_EXT):
            records, is_rows = _jsonl(path), False
            if lower.endswith(".json") and _starts_with_array(path):
                records, is_rows = _json_array(path), True  # positions are array indices
        else:
            raise InputError(f"{path}: unknown file type (expected .jsonl, .ndjson or .parquet)")
        name = os.path.basename(path)
        for pos, rec, err in records:
            line, row = (None, pos) if is_rows else (pos, None)
            source = f"{path}:{'row ' if is_rows else ''}{pos}"
            if err is not None:
                yield Rejected(source, path, line, row, err)
                continue
            try:
                conv = parse_record(rec, fmt, fields, f"{name}:{pos}", source)
                conv.file, conv.line, conv.row = path, line, row
            except RecordError as exc:
                cid = None
                if isinstance(rec, dict):
                    try:
                        cid = _as_id(_pick(rec, fields.id_field, DEFAULT_ID_FIELDS), "id")
                    except RecordError:
                        cid = None
                yield Rejected(source, path, line, row, str(exc), cid)
                continue
            if conv.conversation_id in seen:
                yield Rejected(
                    source, path, line, row, "duplicate conversation id", conv.conversation_id
                )
                continue
            seen.add(conv.conversation_id)
            yield conv
