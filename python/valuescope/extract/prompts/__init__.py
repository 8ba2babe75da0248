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
    omitted = len(text) - budget_chars
    head = budget_chars * 3 // 5  # the request usually sits at the start; keep a little more of it
    tail = budget_chars - head
    cut = f"\n\n[... {omitted} characters omitted from the middle ...]\n\n"
    return Rendered(text[:head] + cut + text[len(text) - tail :], True, omitted)


def user_message(rendered: Rendered) -> str:
    return f"<conversation>\n{rendered.text}\n</conversation>"
