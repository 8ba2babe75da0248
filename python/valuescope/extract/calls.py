"""One conversation's extraction: the HTTP exchange (rate limits, the shared retry policy,
structured-output fallbacks), the re-asks after an invalid answer, the cache, the cost."""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import Any

import httpx

from valuescope._http import Retrier, RetriesExhausted, retry_hint, retryable, transport_error
from valuescope.extract import pricing
from valuescope.extract.answer import (
    FEATURE_SCHEMA,
    SUBJECTIVITY_SCHEMA,
    AnswerError,
    parse_json,
    validate_features,
    validate_subjectivity,
)
from valuescope.extract.cache import Cache, cache_key
from valuescope.extract.conversations import Conversation
from valuescope.extract.failures import Failure, Fatal
from valuescope.extract.options import ExtractOptions, Summary
from valuescope.extract.prompts import (
    PROMPT_VERSION,
    Rendered,
    estimate_tokens,
    load_prompt,
    render,
)
from valuescope.extract.prompts import user_message as render_user_message
from valuescope.extract.providers import (
    OPENAI_MODES,
    Answer,
    Provider,
    ResponseShapeError,
    default_base_url,
)
from valuescope.extract.ratelimit import TokenBucket
from valuescope.extract.redact import redact

# httpx's connection pool does work proportional to its size on every request, so many workers
# share a few small pools (one per worker, through this context variable) instead of one big one.
POOL_SIZE = 4


WORKER_CLIENT: ContextVar[httpx.AsyncClient | None] = ContextVar(
    "valuescope_http_client", default=None
)


class Runner:
    def __init__(self, opts: ExtractOptions, api_key: str, cache: Cache, summary: Summary) -> None:
        self.opts = opts
        self.secrets = [api_key] if api_key else []
        self.provider = Provider(
            opts.provider,
            (opts.base_url or default_base_url(opts.provider)).rstrip("/"),
            api_key,
            opts.model,
        )
        self.cache = cache
        self.summary = summary
        self.price = pricing.price_for(opts.model, opts.price)
        summary.priced = self.price is not None
        self.rpm = TokenBucket(opts.rpm) if opts.rpm else None
        # A one-second burst, but never smaller than one large request (a request bigger than
        # the bucket would otherwise be clamped and let the rate drift above the limit).
        largest = opts.token_budget + 4 * opts.max_tokens + 2000
        self.tpm = TokenBucket(opts.tpm, burst=max(opts.tpm / 60, largest)) if opts.tpm else None
        modes = OPENAI_MODES if opts.structured == "auto" else (opts.structured,)
        self.modes = list(modes)
        self.mode_confirmed = opts.structured != "auto"
        self.stop_reason: str | None = None
        self.system = {k: load_prompt(k) for k in ("extract", "subjectivity")}
        self.client: httpx.AsyncClient | None = None
        self.bar: Any = None
        self._ticked = 0.0

    # -- keys and accounting -------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "max_tokens": self.opts.max_tokens,
            "temperature": self.opts.temperature,
            "token_budget": self.opts.token_budget,
            "subjectivity": self.opts.subjectivity,
        }

    def key_for(self, kind: str, rendered: Rendered) -> str:
        return cache_key(
            {
                "prompt_version": PROMPT_VERSION,
                "kind": kind,
                "provider": self.opts.provider,
                "model": self.opts.model,
                "params": self.params(),
                "conversation": rendered.text,
            }
        )

    def account(self, answer: Answer, factor: float = 1.0) -> float:
        s = self.summary
        s.input_tokens += answer.input_tokens
        s.output_tokens += answer.output_tokens
        spent = pricing.cost(self.price, answer.input_tokens, answer.output_tokens) * factor
        s.cost += spent
        if self.opts.max_cost is not None and s.cost >= self.opts.max_cost and not self.stop_reason:
            self.stop_reason = f"--max-cost ${self.opts.max_cost:g} reached"
        self.tick()
        return spent

    def tick(self) -> None:
        # Postfix formatting costs more than a request's own bookkeeping: a few times a second.
        now = time.monotonic()
        if self.bar is not None and now - self._ticked >= 0.25:
            self._ticked = now
            s = self.summary
            self.bar.set_postfix(
                cached=s.cached,
                retried=s.retried,
                failed=s.failed,
                tokens=s.input_tokens + s.output_tokens,
                cost=f"${s.cost:.3f}",
                refresh=False,
            )

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    # -- one HTTP exchange with transport retries -----------------------------------------------

    async def send(self, kind: str, messages: list[dict[str, str]], max_tokens: int) -> Answer:
        client = WORKER_CLIENT.get(self.client)
        assert client is not None
        schema = FEATURE_SCHEMA if kind == "extract" else SUBJECTIVITY_SCHEMA
        est = estimate_tokens(self.system[kind]) + max_tokens
        est += sum(estimate_tokens(m["content"]) for m in messages)
        retry = Retrier(self.opts.retry_policy())
        last = ""
        while True:
            mode = self.modes[0]
            body = self.provider.body(
                self.system[kind], messages, schema, max_tokens, self.opts.temperature, mode
            )
            if self.rpm:
                await self.rpm.take(1)
            if self.tpm:
                await self.tpm.take(est)
            self.summary.requests += 1
            wait_hint: float | None = None
            try:
                resp = await client.post(
                    self.provider.url(), json=body, headers=self.provider.headers()
                )
            except httpx.TransportError as exc:
                last = transport_error(exc)
            else:
                status = resp.status_code
                if status == 200:
                    try:
                        answer = self.provider.parse(resp.json())
                    except (ValueError, ResponseShapeError) as exc:
                        last = f"malformed 200 response ({self.clean(str(exc))[:120]})"
                    else:
                        self.mode_confirmed = True
                        return answer
                else:
                    snippet = self.clean(resp.text[:300]).replace("\n", " ")
                    last = f"HTTP {status}: {snippet}"
                    if status in (401, 403):
                        raise Fatal(
                            f"authentication refused (HTTP {status}); check {self.provider.env_var}"
                        )
                    if status == 404:  # no such endpoint or model: nothing else can succeed
                        raise Fatal(f"{last[:200]}; check --base-url and --model")
                    if self.provider.adapt(status, resp.text, body):
                        continue
                    if self._step_down(mode, status, resp.text):
                        continue
                    if not retryable(status):
                        raise Failure(last)
                    wait_hint = retry_hint(resp.headers)
            try:
                delay = retry.next_delay(last, wait_hint)
            except RetriesExhausted as exc:
                raise Failure(str(exc)) from None
            self.summary.retried += 1
            self.tick()
            await asyncio.sleep(delay)

    def _step_down(self, mode: str, status: int, text: str) -> bool:
        """An OpenAI-compatible server refused the structured-output mode: try the next one.

        Only before any success with the mode, and only for refusals that name the feature
        (llama.cpp answers an unsupported json_schema with a 500 that names response_format)."""
        if self.opts.provider != "openai":
            return False
        if self.modes[0] != mode:
            # Another request already stepped down: resend in the current mode. Checked before
            # mode_confirmed, which a resent request may already have set while this refusal of
            # the old mode was still on its way (it used to cost this conversation a reject).
            return True
        if self.mode_confirmed or len(self.modes) < 2:
            return False
        # Only refusals that name the feature: a 400 for one over-long conversation must not
        # cost every other conversation its structured output.
        lowered = text.lower()
        named = any(w in lowered for w in ("response_format", "schema", "tool", "grammar"))
        if named and (status in (400, 415, 422) or status >= 500):
            self.modes.pop(0)
            return True
        return False

    # -- one structured call with validation -----------------------------------------------------

    async def call(self, kind: str, rendered: Rendered) -> tuple[Any, int, int, float]:
        validate = validate_features if kind == "extract" else validate_subjectivity
        first = {"role": "user", "content": render_user_message(rendered)}
        messages = [first]
        max_tokens = self.opts.max_tokens if kind == "extract" else min(64, self.opts.max_tokens)
        extended = False
        reasks = self.opts.validation_retries
        tokens_in = tokens_out = 0
        spent = 0.0
        while True:
            answer = await self.send(kind, messages, max_tokens)
            tokens_in += answer.input_tokens
            tokens_out += answer.output_tokens
            spent += self.account(answer)
            if answer.truncated and not extended:
                extended = True
                max_tokens *= 2
                self.summary.retried += 1
                continue
            try:
                return validate(parse_json(answer.text or "")), tokens_in, tokens_out, spent
            except AnswerError as exc:
                reason = self.clean(str(exc))
                if reasks <= 0:
                    cut = " (the answer was cut off at max_tokens)" if answer.truncated else ""
                    raise Failure(f"invalid answer: {reason}{cut}") from None
                reasks -= 1
                self.summary.retried += 1
                messages = [
                    first,
                    {"role": "assistant", "content": (answer.text or "(empty)")[:4000]},
                    {"role": "user", "content": load_prompt("repair").format(error=reason)},
                ]

    # -- one conversation ------------------------------------------------------------------------

    async def features_for(self, conv: Conversation) -> tuple[dict[str, Any], bool, Rendered]:
        """Returns (features, from_cache, rendered)."""
        rendered = render(conv, self.opts.token_budget)
        key = self.key_for("extract", rendered)
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True, rendered
        if self.stop_reason:
            raise Failure(f"not processed: {self.stop_reason}")
        if self.opts.subjectivity == "separate":
            skey = self.key_for("subjectivity", rendered)
            subjective = self.cache.get(skey)
            if subjective is None:
                subjective, tin, tout, spent = await self.call("subjectivity", rendered)
                self.cache.put(skey, subjective, tin, tout, spent)
            if subjective is False:
                # Not analysed downstream; the row is still written so nothing goes missing.
                features: dict[str, Any] = {
                    "subjective": False,
                    "task": None,
                    "ai_values": [],
                    "ai_values_explicit": None,
                    "human_values": [],
                    "response_type": "no values",
                }
                self.cache.put(key, features, 0, 0, 0.0)
                return features, False, rendered
            if self.stop_reason:
                raise Failure(f"not processed: {self.stop_reason}")
        features, tin, tout, spent = await self.call("extract", rendered)
        self.cache.put(key, features, tin, tout, spent)
        return features, False, rendered
