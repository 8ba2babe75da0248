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


def _str_list(obj: dict[str, Any], key: str, scrubbed: list[int]) -> list[str]:
    value = obj[key]
    if not isinstance(value, list):
        raise AnswerError(f"'{key}' must be a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise AnswerError(f"'{key}' must hold only strings, got {type(item).__name__}")
        stripped = item.strip()
        item = scrub_value(stripped)[:MAX_STRING]
        if not item and stripped:
            scrubbed[0] += 1
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
    scrubbed = [0]
    out = {
        "subjective": obj["subjective"],
        "task": (scrub(task.strip())[:MAX_STRING] or None) if task else None,
        "ai_values": _str_list(obj, "ai_values", scrubbed),
        "ai_values_explicit": _str_list(obj, "ai_values_explicit", scrubbed),
        "human_values": _str_list(obj, "human_values", scrubbed),
        "response_type": rtype.strip().lower(),
    }
    if scrubbed[0]:
        out[SCRUBBED_KEY] = scrubbed[0]  # for the run's summary; not a feature column
    return out


_LIST_SEPARATORS = re.compile(r"\s*[,;]\s*")
#: A part of a joined list longer than this many words is prose, not a value: left joined.
_PART_WORDS = 4


def repair_features(features: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """What the schema can catch beyond types, repaired and counted: a list of values joined
    into one string ("fear, compassion, kindness") is split into its values; an explicitly
    stated value missing from the AI values is added to them (explicit values are a subset of
    the AI values by definition). Returns the repaired copy and the counts per repair."""
    fixes: dict[str, int] = {}
    out = dict(features)
    for key in ("ai_values", "ai_values_explicit", "human_values"):
        values: list[str] = []
        for v in out[key] or []:
            parts = [p for p in _LIST_SEPARATORS.split(v) if p]
            if len(parts) > 1 and all(len(p.split()) <= _PART_WORDS for p in parts):
                fixes["joined lists split"] = fixes.get("joined lists split", 0) + 1
                values.extend(parts)
            else:
                values.append(v)
        deduped: list[str] = []
        for v in values:
            if v not in deduped:
                deduped.append(v)
        out[key] = deduped[:MAX_VALUES]
    lowered = {v.lower() for v in out["ai_values"]}
    for v in out["ai_values_explicit"] or []:
        if v.lower() not in lowered:
            fixes["explicit values added to ai_values"] = (
                fixes.get("explicit values added to ai_values", 0) + 1
            )
            out["ai_values"] = [*out["ai_values"], v][:MAX_VALUES]
            lowered.add(v.lower())
    return out, fixes


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


SCRUBBED_KEY = "_scrubbed"
PLACEHOLDERS = ("[email]", "[url]", "[phone]", "[number]")
_PLACEHOLDER = re.compile(r"\w*\[(?:email|url|phone|number)\]\w*")
# Words left dangling where a placeholder ended a value ("privacy at [email]").
_DANGLING = re.compile(
    r"(?:[\s,;:/()-]+(?:at|to|of|for|with|on|in|via|from|by|and|or|no\.?|#))*[\s,;:/()#-]*$",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]{2,}")


def scrub_value(text: str) -> str:
    """A value with its personal details taken out entirely: a placeholder is no value, so it
    goes with any letters fused to it ("M[number]") and any word it leaves dangling; what has
    no word left is dropped (returns "")."""
    cleaned = scrub(text)
    if cleaned == text and "[" not in text:
        return text
    cleaned = _PLACEHOLDER.sub(" ", cleaned)
    cleaned = " ".join(cleaned.split())
    cleaned = _DANGLING.sub("", " " + cleaned).strip(" ,;:/()-#")
    return cleaned if _WORD.search(cleaned) else ""


def scrub(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _URL.sub("[url]", text)
    text = _PHONE.sub(_phone_or_keep, text)
    return _DIGITS.sub("[number]", text)
