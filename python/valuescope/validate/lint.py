"""``validate lint``: the checks of an extraction that need no reviewer, as rates with examples.

Each check found its defect in real conversations run through a small local model: values that
echo the prompt's own examples in the prompt's order, values that are the schema's key names,
values that are not short noun phrases (a comma-joined list as one value, "Custom Column 1"),
explicitly stated values missing from the AI values, one answer repeated across many
conversations, and (given the logs) human values with no support in the user's words.

Examples are only ever strings that pass the privacy thresholds over the whole file (at least
``min_conversations`` conversations from ``min_users`` distinct users); any other hit is counted,
never named.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from valuescope.extract.prompts import load_prompt
from valuescope.validate.common import (
    DEFAULT_MIN_CONVERSATIONS,
    DEFAULT_MIN_USERS,
    load_conversations,
    normalize,
)

#: Words a value may have and still be a short noun phrase (the prompt asks for one to four).
MAX_WORDS = 5
MAX_CHARS = 60
#: An answer (task and every value list) shared by at least this many conversations, and by at
#: least this share of them, is a repeated answer.
REPEAT_MIN = 3
REPEAT_SHARE = 0.005
#: Consecutive prompt examples, in the prompt's order, that make an echo.
ECHO_RUN = 3
EXAMPLES_SHOWN = 5

_STOP = frozenset(
    "a an the of to for and or in on with without at by from as is be being being their his her "
    "its our your my own other others others' not no".split()
)
_WORD = re.compile(r"[a-z]+")
_PLACEHOLDER = re.compile(r"\b(column|field|item|value|label|example|placeholder)\s*\d+\b")


def prompt_examples() -> list[str]:
    """The example AI values the extraction prompt gives, in its order (read from the prompt
    itself, so a new prompt version is linted against its own examples)."""
    text = load_prompt("extract")
    for line in text.splitlines():
        if line.lstrip("- ").startswith("ai_values:"):
            m = re.search(r"\(for example ([^)]*)\)", line)
            if m:
                return [normalize(x) for x in re.findall(r'"([^"]+)"', m.group(1))]
    return []


def schema_key_names() -> set[str]:
    from valuescope.schema import FEATURE_COLUMNS

    keys = {normalize(k) for k in FEATURE_COLUMNS}
    return keys | {k.replace("_", " ") for k in keys}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def not_a_noun_phrase(value: str) -> str | None:
    """Why ``value`` is not a short noun phrase, or None when it is one."""
    v = normalize(value)
    if any(c in v for c in ",;\n|"):
        return "a list joined into one value"
    if _PLACEHOLDER.search(v):
        return "a placeholder"
    if any(c.isdigit() for c in v):
        return "holds digits"
    if len(v.split()) > MAX_WORDS or len(v) > MAX_CHARS:
        return "longer than a short phrase"
    if not _WORD.search(v):
        return "no words"
    return None


def _stem(word: str) -> str:
    return word[:5]


def supported_by(value: str, text_words: set[str]) -> bool:
    """A lexical check: some content word of the value (its first five letters, a crude stem)
    starts a word of the user's messages."""
    content = [w for w in _words(value) if w not in _STOP and len(w) >= 3]
    if not content:
        return True  # nothing to look for: not counted against the extraction
    stems = {_stem(w) for w in text_words}
    return any(_stem(w) in stems for w in content)


@dataclass
class Check:
    name: str
    description: str
    unit: str  # what the rate is over
    hits: int = 0
    units: int = 0
    conversations: set[str] = field(default_factory=set)
    strings: Counter[str] = field(default_factory=Counter)

    def result(self, shown: Iterable[str]) -> dict[str, Any]:
        return {
            "description": self.description,
            "unit": self.unit,
            "hits": self.hits,
            "units": self.units,
            "rate": self.hits / self.units if self.units else None,
            "conversations": len(self.conversations),
            "examples": list(shown),
        }


def _echo(values: Sequence[str], examples: Sequence[str]) -> bool:
    if len(examples) < ECHO_RUN:
        return False
    # From the prompt's first example on: later runs of frequent values ("harm prevention,
    # professionalism, clarity") also come out of sound extractions ordered by frequency.
    run = tuple(examples[:ECHO_RUN])
    return any(tuple(values[i : i + ECHO_RUN]) == run for i in range(len(values) - ECHO_RUN + 1))


def lint_rows(
    rows: Sequence[dict[str, Any]],
    conversations: dict[str, Any] | None = None,
    min_conversations: int = DEFAULT_MIN_CONVERSATIONS,
    min_users: int = DEFAULT_MIN_USERS,
) -> dict[str, Any]:
    examples = prompt_examples()
    keys = schema_key_names()
    checks = {
        "prompt_echo": Check(
            "prompt_echo",
            f"AI values that repeat the prompt's first {ECHO_RUN} example values "
            "in the prompt's order",
            "conversations with AI values",
        ),
        "key_names": Check(
            "key_names",
            "values that are the schema's key names",
            "values",
        ),
        "not_noun_phrase": Check(
            "not_noun_phrase",
            f"values that are not short noun phrases (lists joined into one value, placeholders, "
            f"digits, more than {MAX_WORDS} words)",
            "values",
        ),
        "explicit_not_in_ai": Check(
            "explicit_not_in_ai",
            "explicitly stated AI values that are not among the AI values",
            "explicit values",
        ),
        "repeated_answer": Check(
            "repeated_answer",
            f"conversations whose whole answer (task and value lists) is shared by at least "
            f"{REPEAT_MIN} conversations and {REPEAT_SHARE:.1%} of them",
            "conversations with AI values",
        ),
    }
    if conversations is not None:
        checks["unsupported_human_value"] = Check(
            "unsupported_human_value",
            "human values none of whose words appear in the user's messages (a lexical check)",
            "human values",
        )
    # Per string: conversations and distinct users, for the privacy rule on examples.
    convs_of: Counter[str] = Counter()
    users_of: dict[str, set[str]] = defaultdict(set)

    def saw(check: Check, cid: str, user: str, string: str | None) -> None:
        check.hits += 1
        check.conversations.add(cid)
        if string is not None:
            check.strings[string] += 1

    signatures: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        ai = [normalize(v) for v in row["ai_values"] or [] if v]
        if ai:
            key = (
                normalize(row["task"] or ""),
                tuple(ai),
                tuple(normalize(v) for v in row["human_values"] or []),
                row["response_type"],
            )
            signatures[key] += 1
    n_with_ai = sum(1 for r in rows if r["ai_values"])
    repeat_floor = max(REPEAT_MIN, REPEAT_SHARE * n_with_ai)

    missing_logs = 0
    for row in rows:
        cid = row["conversation_id"]
        user = row["user_id"] if row["user_id"] is not None else f"\0{cid}"
        ai = [normalize(v) for v in row["ai_values"] or [] if v]
        human = [normalize(v) for v in row["human_values"] or [] if v]
        explicit = [normalize(v) for v in row["ai_values_explicit"] or [] if v]
        for v in {*ai, *human, *explicit}:
            convs_of[v] += 1
            users_of[v].add(user)
        if ai:
            checks["prompt_echo"].units += 1
            if _echo(ai, examples):
                saw(checks["prompt_echo"], cid, user, None)
            checks["repeated_answer"].units += 1
            key = (
                normalize(row["task"] or ""),
                tuple(ai),
                tuple(human),
                row["response_type"],
            )
            if signatures[key] >= repeat_floor:
                saw(checks["repeated_answer"], cid, user, None)
        for v in [*ai, *human, *explicit]:
            checks["key_names"].units += 1
            if v in keys or v.replace(" ", "_") in keys:
                saw(checks["key_names"], cid, user, v)
            checks["not_noun_phrase"].units += 1
            if not_a_noun_phrase(v) is not None:
                saw(checks["not_noun_phrase"], cid, user, v)
        ai_set = set(ai)
        for v in explicit:
            checks["explicit_not_in_ai"].units += 1
            if v not in ai_set:
                saw(checks["explicit_not_in_ai"], cid, user, v)
        if conversations is not None and human:
            conv = conversations.get(cid)
            if conv is None:
                missing_logs += 1
                continue
            words = set()
            for m in conv.messages:
                if m.role == "user":
                    words.update(_words(m.content))
            for v in human:
                checks["unsupported_human_value"].units += 1
                if not supported_by(v, words):
                    saw(checks["unsupported_human_value"], cid, user, v)

    def publishable(s: str) -> bool:
        return convs_of[s] >= min_conversations and len(users_of[s]) >= min_users

    out: dict[str, Any] = {
        "n_conversations": len(rows),
        "thresholds": {"min_conversations": min_conversations, "min_users": min_users},
        "prompt_examples": examples,
        "checks": {},
    }
    for name, check in checks.items():
        shown = [s for s, _ in check.strings.most_common() if publishable(s)][:EXAMPLES_SHOWN]
        out["checks"][name] = check.result(shown)
    if conversations is not None:
        out["conversations_not_in_logs"] = missing_logs
    return out


def lint(
    features: Sequence[str],
    conversation_files: Sequence[str] = (),
    min_conversations: int = DEFAULT_MIN_CONVERSATIONS,
    min_users: int = DEFAULT_MIN_USERS,
) -> dict[str, Any]:
    from valuescope.validate.common import load_features

    rows = load_features(features)
    convs = None
    if conversation_files:
        wanted = {r["conversation_id"] for r in rows if r["human_values"]}
        convs = load_conversations(conversation_files, wanted)
    return lint_rows(rows, convs, min_conversations, min_users)


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"{result['n_conversations']} conversations"]
    for name, c in result["checks"].items():
        rate = "n/a" if c["rate"] is None else f"{100 * c['rate']:.1f}%"
        ex = f"  e.g. {', '.join(repr(x) for x in c['examples'][:3])}" if c["examples"] else ""
        lines.append(f"  {name:<24} {rate:>7} of {c['units']} {c['unit']}{ex}")
    return lines
