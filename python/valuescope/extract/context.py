"""The model's context window: reading a server's refusal of an over-long prompt, and asking the
server how large its window is.

Refusals come in each server's own words, and most state the numbers needed to shorten the
prompt just enough:

- OpenAI and vLLM: "This model's maximum context length is 4096 tokens. However, you requested
  5120 tokens (4096 in the messages, 1024 in the completion)."; newer vLLM: "... maximum context
  length is 4096 tokens and your request has 3500 input tokens (1024 > 4096 - 3500)".
- llama.cpp: "the request exceeds the available context size, try increasing it" with
  ``n_prompt_tokens`` and ``n_ctx`` beside the message (older builds: "input is too large to
  process. increase the physical batch size" or "... context shift is disabled").
- Anthropic: "prompt is too long: 210000 tokens > 200000 maximum".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_OPENAI = re.compile(r"maximum context length is (\d+) tokens", re.IGNORECASE)
_OPENAI_ASKED = re.compile(r"\((\d+) in the messages", re.IGNORECASE)
_VLLM_INPUT = re.compile(r"request has (\d+) input tokens", re.IGNORECASE)
_ANTHROPIC = re.compile(r"prompt is too long:\s*(\d+) tokens\s*>\s*(\d+)", re.IGNORECASE)
_LLAMA_WORDS = (
    "exceeds the available context size",
    "exceed_context_size",
    "context shift is disabled",
    "input is too large to process",
)
_GENERIC_WORDS = ("context_length_exceeded", "context length", "context window", "too many tokens")


@dataclass(frozen=True)
class Overflow:
    """A refusal because the prompt plus the answer's room did not fit the context."""

    limit: int | None  # the context size in tokens, where the server says it
    prompt_tokens: int | None  # the tokens it counted in the prompt, where it says them
    message: str  # the server's words, cut short (for a reject reason)


def _int_field(data: Any, *names: str) -> int | None:
    """The first integer field of these names, anywhere in the error body."""
    if isinstance(data, dict):
        for name in names:
            v = data.get(name)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        for v in data.values():
            found = _int_field(v, *names)
            if found is not None:
                return found
    return None


def parse_overflow(status: int, text: str) -> Overflow | None:
    """The refusal as an Overflow, or None when it is about something else."""
    if status not in (400, 413, 422, 500):
        return None
    lowered = text.lower()
    short = " ".join(text.split())[:200]
    m = _ANTHROPIC.search(text)
    if m:
        return Overflow(int(m.group(2)), int(m.group(1)), short)
    m = _OPENAI.search(text)
    if m:
        asked = _OPENAI_ASKED.search(text) or _VLLM_INPUT.search(text)
        return Overflow(int(m.group(1)), int(asked.group(1)) if asked else None, short)
    if any(w in lowered for w in _LLAMA_WORDS):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        return Overflow(
            _int_field(data, "n_ctx", "n_ctx_slot"), _int_field(data, "n_prompt_tokens"), short
        )
    if status in (400, 413) and any(w in lowered for w in _GENERIC_WORDS):
        return Overflow(None, None, short)
    return None


@dataclass(frozen=True)
class ServerInfo:
    """What an OpenAI-compatible server says about itself (each None where it says nothing)."""

    context: int | None = None  # tokens per request (llama.cpp: per slot)
    slots: int | None = None  # requests it computes at once (llama.cpp's total_slots)
    tokenize_url: str | None = None  # llama.cpp's /tokenize, to count a prompt exactly


def parse_props(data: Any) -> tuple[int | None, int | None]:
    """(context per slot, slots) from llama.cpp's ``GET /props``."""
    if not isinstance(data, dict):
        return None, None
    gen = data.get("default_generation_settings")
    ctx = _int_field(gen, "n_ctx") if isinstance(gen, dict) else None
    if ctx is None:
        ctx = _int_field({k: v for k, v in data.items() if k == "n_ctx"}, "n_ctx")
    slots = data.get("total_slots")
    slots = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None
    return (ctx if ctx and ctx > 0 else None), slots


def parse_models(data: Any, model: str) -> int | None:
    """vLLM's ``max_model_len`` for ``model`` from ``GET /v1/models`` (the only one served
    when the name does not match)."""
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    lens = {}
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("max_model_len"), int):
            lens[str(e.get("id"))] = e["max_model_len"]
    if model in lens:
        return lens[model]
    return next(iter(lens.values())) if len(lens) == 1 else None


def server_root(base_url: str) -> str:
    """llama.cpp serves /props and /tokenize beside /v1, not under it."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root
