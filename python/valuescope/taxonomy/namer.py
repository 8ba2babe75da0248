"""Cluster names and one-sentence descriptions from an LLM, through the shared wire formats
(valuescope.providers) and retry policy (valuescope._http). Only strings that already passed the
privacy thresholds are ever sent: the namer sees cluster members, never raw conversations."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import httpx

from valuescope._http import RetriesExhausted, RetryPolicy, request
from valuescope.errors import UserError
from valuescope.providers import (
    OPENAI_MODES,
    Provider,
    ResponseShapeError,
    default_base_url,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "at most six words"},
        "description": {"type": "string", "description": "one sentence"},
    },
    "required": ["name", "description"],
    "additionalProperties": False,
}

SYSTEM = (
    "You name clusters of values that an AI assistant expressed in conversations. Reply with a "
    "short name (at most six words) that covers the cluster's members and sets it apart from the "
    "neighbouring cluster, and a one-sentence description in the past tense, e.g. 'This group of "
    "values emphasized ...'. Use no proper nouns and no personal information."
)


class LLMNamer:
    def __init__(
        self,
        provider: str,
        model: str,
        base_url: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
    ) -> None:
        if provider not in ("anthropic", "openai"):
            raise UserError(f"--namer {provider!r}: use none, anthropic or openai")
        p = Provider(provider, (base_url or default_base_url(provider)).rstrip("/"), "", model)
        p.api_key = os.environ.get(p.env_var, "")
        if provider == "anthropic" and not p.api_key:
            raise UserError(f"--namer anthropic needs {p.env_var} in the environment")
        self.provider = p
        self._client = httpx.Client(timeout=timeout)
        self._policy = RetryPolicy(retries, backoff_base=0.5, backoff_max=8.0)
        self._modes = list(OPENAI_MODES)

    def __call__(self, members: Sequence[str], neighbours: Sequence[str]) -> tuple[str, str]:
        prompt = "Cluster members, most frequent first:\n" + "\n".join(f"- {m}" for m in members)
        if neighbours:
            prompt += "\n\nNeighbouring cluster, for contrast:\n" + "\n".join(
                f"- {m}" for m in neighbours
            )
        answer = self._ask([{"role": "user", "content": prompt}])
        try:
            data = json.loads(answer)
            name, desc = str(data["name"]).strip(), str(data["description"]).strip()
        except (ValueError, KeyError, TypeError):
            return members[0], ""  # an unusable answer: fall back to the heaviest member
        return (name or members[0])[:80], desc[:400]

    def _ask(self, messages: list[dict[str, str]]) -> str:
        p = self.provider
        while True:
            body = p.body(SYSTEM, messages, SCHEMA, 300, 0.0, self._modes[0])
            try:
                r = request(
                    self._client, "POST", p.url(), self._policy, headers=p.headers(), json=body
                )
            except RetriesExhausted:
                n = self._policy.retries
                raise UserError(
                    f"namer: the {p.name} server did not answer after {n} retries"
                ) from None
            if r.status_code == 200:
                try:
                    return p.parse(r.json()).text or ""
                except (ValueError, ResponseShapeError):
                    return ""  # unusable: the caller falls back to the heaviest member
            if r.status_code == 400 and len(self._modes) > 1:
                self._modes.pop(0)  # the server rejects this structured-output mode: step down
                continue
            raise UserError(f"namer: the {p.name} server answered HTTP {r.status_code}")
