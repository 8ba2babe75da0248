"""The extraction answer: JSON schema, lenient parsing, strict validation, scrubbing."""

from __future__ import annotations

import json
import re
from typing import Any

from valuescope.schema import ANSWER_JSON_SCHEMA, ANSWER_KEYS, RESPONSE_TYPES

#: The answer's keys and JSON schema are the feature schema's (valuescope.schema).
FEATURE_KEYS = ANSWER_KEYS
FEATURE_SCHEMA = ANSWER_JSON_SCHEMA
MAX_VALUES = 25
MAX_STRING = 300

SUBJECTIVITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"subjective": {"type": "boolean"}},
    "required": ["subjective"],
    "additionalProperties": False,
}


class AnswerError(ValueError):
    """The model's answer is unusable; the message says why (fed back in the re-ask)."""


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _balance(text: str) -> str:
    """Close strings, arrays and objects left open by a cut-off answer."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    out = text + ('"' if in_str else "")
    out = out.rstrip().rstrip(",")
    return out + "".join(reversed(stack))


def parse_json(text: str) -> Any:
    """Parse a model's answer: as is, else without code fences and prose around the object, else
    after light repair (trailing commas, unclosed brackets). Raises AnswerError."""
    if not isinstance(text, str) or not text.strip():
        raise AnswerError("empty answer")
    candidates = [text.strip()]
    fence = _FENCE.search(text)
    if fence:
        candidates.append(fence.group(1).strip())
    start = text.find("{")
    if start >= 0:
        end = text.rfind("}")
        if end > start:
            candidates.append(text[start : end + 1])
        candidates.append(text[start:])
    for cand in candidates:
        for attempt in (cand, _TRAILING_COMMA.sub(r"\1", cand)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError:
                pass
    if start >= 0:
        try:
            return json.loads(_balance(_TRAILING_COMMA.sub(r"\1", text[start:])))
        except json.JSONDecodeError:
            pass
    raise AnswerError("the answer is not a JSON object")


def _str_list(obj: dict[str, Any], key: str) -> list[str]:
    value = obj[key]
    if not isinstance(value, list):
        raise AnswerError(f"'{key}' must be a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise AnswerError(f"'{key}' must hold only strings, got {type(item).__name__}")
        item = scrub(item.strip())[:MAX_STRING]
        if item and item not in out:
            out.append(item)
    return out[:MAX_VALUES]


def validate_features(obj: Any) -> dict[str, Any]:
    """Check types, keys and the response-type enum; return a cleaned, scrubbed copy."""
    if not isinstance(obj, dict):
        raise AnswerError(f"the answer must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in FEATURE_KEYS if k not in obj]
    if missing:
        raise AnswerError(f"missing keys: {', '.join(missing)}")
    extra = sorted(k for k in obj if k not in FEATURE_KEYS)
    if extra:
        raise AnswerError(f"unexpected keys: {', '.join(extra)}")
    if not isinstance(obj["subjective"], bool):
        raise AnswerError("'subjective' must be true or false")
    task = obj["task"]
    if task is not None and not isinstance(task, str):
        raise AnswerError("'task' must be a string")
    rtype = obj["response_type"]
    if not isinstance(rtype, str) or rtype.strip().lower() not in RESPONSE_TYPES:
        raise AnswerError(
            f"'response_type' must be one of: {', '.join(RESPONSE_TYPES)} (got {rtype!r:.60})"
        )
    return {
        "subjective": obj["subjective"],
        "task": (scrub(task.strip())[:MAX_STRING] or None) if task else None,
        "ai_values": _str_list(obj, "ai_values"),
        "ai_values_explicit": _str_list(obj, "ai_values_explicit"),
        "human_values": _str_list(obj, "human_values"),
        "response_type": rtype.strip().lower(),
    }


def validate_subjectivity(obj: Any) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("subjective"), bool):
        raise AnswerError('the answer must be {"subjective": true} or {"subjective": false}')
    return bool(obj["subjective"])


# Scrubbing: the prompts ask for no personal information; this catches what slips through.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w])\+?\(?\d[\d\s().-]{6,}\d(?![\w])")
_DIGITS = re.compile(r"\d{5,}")


def _phone_or_keep(m: re.Match[str]) -> str:
    return "[phone]" if sum(c.isdigit() for c in m.group(0)) >= 7 else m.group(0)


def scrub(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _URL.sub("[url]", text)
    text = _PHONE.sub(_phone_or_keep, text)
    return _DIGITS.sub("[number]", text)
