"""Versioned extraction prompts (package data) and conversation rendering.

A prompt file is never edited in place once released: a change gets a new file and a new
``PROMPT_VERSION``, because the version is part of every cache key and of every output row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from valuescope.extract.conversations import Conversation

PROMPT_VERSION = "v1"
_FILES = {
    "extract": "extract_v1.md",
    "subjectivity": "subjectivity_v1.md",
    "repair": "repair_v1.md",
    "judge": "judge_v1.md",
    "privacy": "privacy_v1.md",
}

# Rough but provider-independent: about four characters per token for English text. Used only for
# the truncation budget and the tokens-per-minute limiter; costs use the provider's own counts.
CHARS_PER_TOKEN = 4

_ROLE_LABEL = {"user": "User", "assistant": "AI", "system": "System", "transcript": "Transcript"}


@cache
def load_prompt(name: str) -> str:
    return resources.files(__package__).joinpath(_FILES[name]).read_text("utf-8").strip()


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Rendered:
    text: str
    truncated: bool
    omitted_chars: int


def render(conv: Conversation, token_budget: int) -> Rendered:
    """The conversation as labelled turns, cut from the middle to ``token_budget`` tokens.

    The middle goes first because the opening states the task and the end holds the outcome."""
    parts = []
    for m in conv.messages:
        label = _ROLE_LABEL.get(m.role, m.role.capitalize() or "Unknown")
        parts.append(f"{label}: {m.content.strip()}")
    text = "\n\n".join(parts)
    budget_chars = max(200, token_budget * CHARS_PER_TOKEN)
    if len(text) <= budget_chars:
        return Rendered(text, False, 0)
    return Rendered(cut_middle(text, budget_chars), True, len(text) - budget_chars)


def cut_middle(text: str, keep: int) -> str:
    """``text`` with its middle replaced by a note, ``keep`` characters of it left.

    The middle goes first because the opening states the task and the end holds the outcome;
    the request usually sits at the start, so a little more of the start is kept."""
    if len(text) <= keep:
        return text
    omitted = len(text) - keep
    head = keep * 3 // 5
    tail = keep - head
    cut = f"\n\n[... {omitted} characters omitted from the middle ...]\n\n"
    return text[:head] + cut + text[len(text) - tail :]


def conversation_message(text: str) -> str:
    return f"<conversation>\n{text}\n</conversation>"


def user_message(rendered: Rendered) -> str:
    return conversation_message(rendered.text)
