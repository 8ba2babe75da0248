"""Wire formats of the two provider families, as pure functions over JSON (no I/O here). Shared by
every stage that calls an LLM: the extraction (extract/calls.py, extract/batch.py) and the
taxonomy's cluster namer (taxonomy/namer.py), so neither stage imports the other for them.

- ``anthropic``: Messages API; structured output through one forced tool whose input schema is
  the feature schema. Message Batches API for half-price bulk runs.
- ``openai``: any OpenAI-compatible chat completions server. Structured output through
  ``response_format`` (``json_schema``, else ``json_object`` with the schema attached, which
  llama.cpp honours), else a forced tool, else the prompt alone. The runner steps down this list
  when a server rejects a mode before any success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ANTHROPIC_VERSION = "2023-06-01"
OPENAI_MODES = ("json_schema", "json_object", "tools", "prompt")
TOOL_NAME = "record_features"


@dataclass(frozen=True)
class Answer:
    text: str | None  # the JSON text to parse (message content or tool arguments)
    truncated: bool  # the model stopped at max_tokens
    input_tokens: int
    output_tokens: int


@dataclass
class Provider:
    name: str
    base_url: str
    api_key: str = field(repr=False)  # never in a repr, so never in a traceback or log
    model: str = ""
    # Learned from the server's refusals (OpenAI's reasoning models take max_completion_tokens
    # and only their default temperature).
    max_tokens_field: str = "max_tokens"
    send_temperature: bool = True

    @property
    def env_var(self) -> str:
        return "ANTHROPIC_API_KEY" if self.name == "anthropic" else "OPENAI_API_KEY"

    def headers(self) -> dict[str, str]:
        if self.name == "anthropic":
            return {
                "x-api-key": self.api_key,
                "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json",
            }
        headers = {"content-type": "application/json"}
        if self.api_key:  # a local server may take none; an empty bearer is an invalid header
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def url(self) -> str:
        if self.name == "anthropic":
            return f"{self.base_url}/v1/messages"
        return f"{self.base_url}/chat/completions"

    def body(
        self,
        system: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        max_tokens: int,
        temperature: float,
        mode: str = "json_schema",
    ) -> dict[str, Any]:
        if self.name == "anthropic":
            return anthropic_body(self.model, system, messages, schema, max_tokens, temperature)
        body = openai_body(self.model, system, messages, schema, max_tokens, temperature, mode)
        if self.max_tokens_field != "max_tokens":
            body[self.max_tokens_field] = body.pop("max_tokens")
        if not self.send_temperature:
            del body["temperature"]
        return body

    def adapt(self, status: int, text: str, sent: dict[str, Any]) -> bool:
        """Follow a 400 that names a parameter this model does not take; True: send again.

        Judged on the body that was sent, so concurrent refusals all resend, and a server that
        keeps refusing cannot loop (the resent body no longer has the parameter)."""
        if self.name != "openai" or status != 400:
            return False
        lowered = text.lower()
        if "max_completion_tokens" in lowered and "max_tokens" in sent:
            self.max_tokens_field = "max_completion_tokens"
            return True
        if "temperature" in lowered and "temperature" in sent:
            self.send_temperature = False
            return True
        return False

    def parse(self, data: Any) -> Answer:
        return parse_anthropic(data) if self.name == "anthropic" else parse_openai(data)


def default_base_url(provider: str) -> str:
    return "https://api.anthropic.com" if provider == "anthropic" else "https://api.openai.com/v1"


def anthropic_body(
    model: str,
    system: str,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    max_tokens: int,
    temperature: float,
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "system": system,
        "messages": messages,
        "tools": [
            {
                "name": TOOL_NAME,
                "description": "Record the features of the conversation.",
                "input_schema": schema,
            }
        ],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    }


def openai_body(
    model: str,
    system: str,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
    max_tokens: int,
    temperature: float,
    mode: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": system}, *messages],
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    if mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": TOOL_NAME, "schema": schema, "strict": True},
        }
    elif mode == "json_object":
        body["response_format"] = {"type": "json_object", "schema": schema}
    elif mode == "tools":
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": TOOL_NAME,
                    "description": "Record the features of the conversation.",
                    "parameters": schema,
                },
            }
        ]
        body["tool_choice"] = {"type": "function", "function": {"name": TOOL_NAME}}
    return body


class ResponseShapeError(ValueError):
    """A 200 answer without the fields a chat completion must have."""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_openai(data: Any) -> Answer:
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ResponseShapeError("response has no choices[0].message") from None
    usage = data.get("usage") or {}
    text = message.get("content")
    for call in message.get("tool_calls") or []:
        args = (call.get("function") or {}).get("arguments")
        if isinstance(args, str) and args.strip():
            text = args
            break
        if isinstance(args, dict):
            text = json.dumps(args)
            break
    return Answer(
        text if isinstance(text, str) else None,
        choice.get("finish_reason") == "length",
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
    )


def parse_anthropic(data: Any) -> Answer:
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ResponseShapeError("response has no content list")
    usage = data.get("usage") or {}
    text = None
    texts = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
            text = json.dumps(block["input"])
            break
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
    if text is None and texts:
        text = "".join(texts)
    return Answer(
        text,
        data.get("stop_reason") == "max_tokens",
        _int(usage.get("input_tokens")),
        _int(usage.get("output_tokens")),
    )
