"""One conversation's extraction: the HTTP exchange (rate limits, the shared retry policy,
structured-output fallbacks), the re-asks after an invalid answer, the cache, the cost."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
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
    repair_features,
    validate_features,
    validate_subjectivity,
)
from valuescope.extract.cache import Cache, cache_key
from valuescope.extract.context import (
    Overflow as ContextRefusal,
)
from valuescope.extract.context import (
    ServerInfo,
    parse_models,
    parse_overflow,
    parse_props,
    server_root,
)
from valuescope.extract.conversations import Conversation, FieldMap
from valuescope.extract.failures import Failure, Fatal, Overflow
from valuescope.extract.options import DEFAULT_TOKEN_BUDGET, ExtractOptions, Summary
from valuescope.extract.prompts import (
    CHARS_PER_TOKEN,
    PROMPT_VERSION,
    Rendered,
    conversation_message,
    cut_middle,
    estimate_tokens,
    load_prompt,
    render,
)
from valuescope.extract.ratelimit import TokenBucket
from valuescope.extract.redact import redact
from valuescope.providers import (
    OPENAI_MODES,
    Answer,
    Provider,
    ResponseShapeError,
    default_base_url,
)

# httpx's connection pool does work proportional to its size on every request, so many workers
# share a few small pools (one per worker, through this context variable) instead of one big one.
POOL_SIZE = 4


#: A conversation is not cut below this (the opening request and the last answer must show).
MIN_CONVERSATION_CHARS = 400
#: The least room for an answer worth asking for (a smaller one cannot hold the features).
MIN_ANSWER_TOKENS = 256
#: Refusals for length one conversation may meet before it is rejected.
MAX_SHRINKS = 6


def _first(first_cause: str | None, later: str) -> str:
    """A reject names what went wrong first; what ended the re-ask follows."""
    return later if first_cause is None else f"{first_cause}; the re-ask then failed: {later}"


class Gate:
    """At most ``limit`` requests in flight; the limit halves after a time-out (down to one)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # made inside the running loop
            self._cond = asyncio.Condition()
        return self._cond

    async def __aenter__(self) -> None:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def __aexit__(self, *exc: object) -> None:
        cond = self._condition()
        async with cond:
            self.active -= 1
            cond.notify_all()

    def back_off(self) -> bool:
        """Halves the limit after a time-out with others in flight; True when it changed."""
        if self.limit <= 1 or self.active == 0:  # called once this request has left
            return False
        self.limit = max(1, self.limit // 2)
        return True


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
        self.token_budget = opts.token_budget or DEFAULT_TOKEN_BUDGET
        largest = self.token_budget + 4 * opts.max_tokens + 2000
        self.tpm = TokenBucket(opts.tpm, burst=max(opts.tpm / 60, largest)) if opts.tpm else None
        modes = OPENAI_MODES if opts.structured == "auto" else (opts.structured,)
        self.modes = list(modes)
        self.mode_confirmed = opts.structured != "auto"
        self.stop_reason: str | None = None
        self.system = {k: load_prompt(k) for k in ("extract", "subjectivity")}
        # Other structured tasks (validate's judge and privacy auditor) add their own kind: a
        # system prompt, an answer schema and a validator, and share everything else.
        self.schemas: dict[str, dict[str, Any]] = {
            "extract": FEATURE_SCHEMA,
            "subjectivity": SUBJECTIVITY_SCHEMA,
        }
        self.validators: dict[str, Any] = {
            "extract": validate_features,
            "subjectivity": validate_subjectivity,
        }
        self.answer_tokens: dict[str, int] = {"subjectivity": 64}
        self.client: httpx.AsyncClient | None = None
        self.server = ServerInfo()
        self.context_limit: int | None = None  # tokens, once the server has said it
        self.chars_per_token: float | None = None  # the densest text seen (counted by a server)
        self.bar: Any = None
        self._ticked = 0.0
        self.gate = Gate(opts.concurrency)

    # -- what the server says about itself -----------------------------------------------------

    async def probe(self, client: httpx.AsyncClient) -> None:
        """Asks a local OpenAI-compatible server its context size and slots (llama.cpp's
        /props, vLLM's /v1/models), to size the token budget and the concurrency. Servers
        that do not answer (OpenAI's own, any error) leave the defaults."""
        if self.opts.provider != "openai" or not self.opts.base_url:
            return
        base = self.opts.base_url.rstrip("/")
        root = server_root(base)
        context = slots = None
        tokenize = None
        try:
            resp = await client.get(f"{root}/props", headers=self.provider.headers(), timeout=5)
            if resp.status_code == 200:
                context, slots = parse_props(resp.json())
                tokenize = f"{root}/tokenize" if context else None
        except (httpx.HTTPError, ValueError):
            pass
        if context is None:
            try:
                resp = await client.get(
                    f"{base}/models", headers=self.provider.headers(), timeout=5
                )
                if resp.status_code == 200:
                    context = parse_models(resp.json(), self.opts.model)
            except (httpx.HTTPError, ValueError):
                pass
        self.server = ServerInfo(context, slots, tokenize)
        if context:
            self.context_limit = context
            if self.opts.token_budget is None:
                fixed = estimate_tokens(self.system["extract"]) + 64
                room = (
                    context - self.fit_answer(self.opts.max_tokens) - fixed - self.margin(context)
                )
                self.token_budget = max(100, min(DEFAULT_TOKEN_BUDGET, room))
        if slots and slots < self.gate.limit:
            # more requests than slots only queue inside the server, where their time-outs
            # run out while they wait
            self.note(
                f"the server computes {slots} request(s) at a time: sending {slots} at a time "
                f"(--concurrency {self.opts.concurrency})"
            )
            self.gate.limit = slots

    def note(self, text: str) -> None:
        line = f"valuescope: note: {text}"
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    # -- keys and accounting -------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "max_tokens": self.opts.max_tokens,
            "temperature": self.opts.temperature,
            "token_budget": self.token_budget,
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

    def resume_key(self, inputs: list[str], fmt: str, fields: FieldMap | None) -> str:
        """Names one command's run (inputs as files on disk, and every setting that changes
        the answers), for the progress a rerun starts from."""
        files = []
        for path in inputs:
            st = os.stat(path)
            files.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
        return cache_key(
            {
                "inputs": files,
                "format": fmt,
                "fields": [fields.id_field, fields.user_field, fields.model_field]
                if fields
                else None,
                "limit": self.opts.limit,
                "provider": self.opts.provider,
                "model": self.opts.model,
                "params": self.params(),
                "prompt_version": PROMPT_VERSION,
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
        schema = self.schemas[kind]
        est = estimate_tokens(self.system[kind]) + max_tokens
        est += sum(estimate_tokens(m["content"]) for m in messages)
        retry = Retrier(self.opts.retry_policy())
        last = ""
        while True:
            if self.summary.interrupted is not None:  # no new request, not even a retry
                raise Failure(f"not processed: {self.stop_reason}")
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
                async with self.gate:
                    resp = await client.post(
                        self.provider.url(), json=body, headers=self.provider.headers()
                    )
            except httpx.TransportError as exc:
                last = transport_error(exc)
                if isinstance(exc, httpx.TimeoutException) and self.gate.back_off():
                    # A time-out while others are in flight is most often a wait behind them
                    # in a server that computes fewer requests at once than were sent.
                    self.note(f"a request timed out: sending at most {self.gate.limit} at a time")
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
                    # Before adapt: vLLM's refusal of a max_tokens too large for the context
                    # names max_completion_tokens, which is not a request to rename the field.
                    overflow = parse_overflow(status, self.clean(resp.text))
                    if overflow is not None:
                        raise Overflow(overflow)
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

    def add_kind(
        self, kind: str, system: str, schema: dict[str, Any], validate: Any, max_tokens: int
    ) -> None:
        """Register another structured task: its system prompt, answer schema and validator."""
        self.system[kind] = system
        self.schemas[kind] = schema
        self.validators[kind] = validate
        self.answer_tokens[kind] = max_tokens

    async def call(self, kind: str, rendered: Rendered) -> tuple[Any, int, int, float, bool]:
        """(value, input tokens, output tokens, cost, shortened to fit the context)."""
        value, tokens_in, tokens_out, spent, shrunk = await self._ask(
            kind, rendered.text, conversation_message
        )
        return value, tokens_in, tokens_out, spent, shrunk or rendered.truncated

    async def call_text(self, kind: str, content: str) -> tuple[Any, int, int, float]:
        """One structured call on a prompt of its own (validate's judge and privacy auditor):
        (the validated answer, input tokens, output tokens, cost)."""
        value, tokens_in, tokens_out, spent, _ = await self._ask(kind, content, _as_is)
        return value, tokens_in, tokens_out, spent

    async def _ask(
        self, kind: str, text: str, wrap: Callable[[str], str]
    ) -> tuple[Any, int, int, float, bool]:
        """The answer validated (re-asked on an invalid one), the text shortened from the
        middle where the context refuses it: (value, tokens in, tokens out, cost, shortened)."""
        validate = self.validators[kind]
        shrinks = 0
        max_tokens = min(self.answer_tokens.get(kind, self.opts.max_tokens), self.opts.max_tokens)
        extended = False
        reasks = self.opts.validation_retries
        repair: list[dict[str, str]] = []  # a re-ask's answer and repair prompt
        first_cause: str | None = None  # what went wrong first, for the reject
        tokens_in = tokens_out = 0
        spent = 0.0
        while True:
            max_tokens = self.fit_answer(max_tokens)
            messages = [{"role": "user", "content": wrap(text)}, *repair]
            fitted = None
            if shrinks < MAX_SHRINKS:
                fitted = await self.fit_prompt(kind, text, messages, max_tokens)
            if fitted is not None:
                text, shrinks = fitted, shrinks + 1
                continue
            # The conversation is as short as it gets: what is left of the window is the
            # answer's room (a re-ask carries the bad answer and the repair prompt as well).
            max_tokens = self.answer_room(kind, messages, max_tokens)
            try:
                answer = await self.send(kind, messages, max_tokens)
            except Overflow as exc:
                smaller = self.shorten(kind, text, messages, max_tokens, exc.overflow, shrinks)
                room = self.answer_room(kind, messages, max_tokens, exc.overflow.prompt_tokens)
                if smaller is None and room < max_tokens and shrinks < MAX_SHRINKS:
                    max_tokens, shrinks = room, shrinks + 1
                    continue
                if smaller is None:
                    cause = (
                        "the conversation does not fit the model's context even shortened to "
                        f"{len(text)} characters ({exc.overflow.message})"
                    )
                    raise Failure(_first(first_cause, cause)) from None
                text, shrinks = smaller, shrinks + 1
                continue
            except Failure as exc:
                raise Failure(_first(first_cause, str(exc))) from None
            tokens_in += answer.input_tokens
            tokens_out += answer.output_tokens
            spent += self.account(answer)
            if answer.truncated and not extended:
                extended = True
                max_tokens *= 2
                self.summary.retried += 1
                continue
            try:
                value = validate(parse_json(answer.text or ""))
                if kind == "extract":
                    value, fixes = repair_features(value)
                    for k, n in fixes.items():
                        self.summary.repaired[k] = self.summary.repaired.get(k, 0) + n
                return value, tokens_in, tokens_out, spent, shrinks > 0
            except AnswerError as exc:
                reason = self.clean(str(exc))
                cut = " (the answer was cut off at max_tokens)" if answer.truncated else ""
                cause = f"invalid answer: {reason}{cut}"
                if reasks <= 0:
                    raise Failure(_first(first_cause, cause)) from None
                first_cause = first_cause or cause
                reasks -= 1
                self.summary.retried += 1
                repair = [
                    {"role": "assistant", "content": (answer.text or "(empty)")[:4000]},
                    {"role": "user", "content": load_prompt("repair").format(error=reason)},
                ]

    # -- fitting the context -------------------------------------------------------------------

    def fit_answer(self, max_tokens: int) -> int:
        """Room for the answer: at most half a known context (a doubled limit after a cut-off
        answer must not crowd out the conversation)."""
        limit = self.context_limit
        return max_tokens if limit is None else max(16, min(max_tokens, limit // 2))

    def _chars(self, kind: str, messages: list[dict[str, str]]) -> int:
        return len(self.system[kind]) + sum(len(m["content"]) for m in messages)

    async def fit_prompt(
        self, kind: str, text: str, messages: list[dict[str, str]], max_tokens: int
    ) -> str | None:
        """A shorter conversation text when the prompt will not fit a context already known
        (from the server, or from an earlier refusal); None when it fits or nothing is known.
        Where the server counts tokens (llama.cpp's /tokenize) a prompt near the limit is
        counted exactly; elsewhere the densest text seen so far sets the estimate."""
        limit = self.context_limit
        if limit is None:
            return None
        chars = self._chars(kind, messages)
        per_token = self.chars_per_token or float(CHARS_PER_TOKEN)
        estimate = chars / per_token
        room = limit - max_tokens - self.margin(limit)
        if self.server.tokenize_url and estimate > room * 0.6:
            counted = await self.count_tokens(kind, messages)
            if counted is not None:
                self.learn_density(chars, counted)
                estimate = counted
        if estimate <= room:
            return None
        return self._cut(text, chars, estimate, room)

    def answer_room(
        self, kind: str, messages: list[dict[str, str]], max_tokens: int, counted: int | None = None
    ) -> int:
        """``max_tokens``, or less where a known window leaves less (never below
        MIN_ANSWER_TOKENS: a smaller answer could not hold the features)."""
        limit = self.context_limit
        if limit is None:
            return max_tokens
        prompt = counted or self._chars(kind, messages) / (
            self.chars_per_token or float(CHARS_PER_TOKEN)
        )
        room = int(limit - prompt - self.margin(limit))
        return max_tokens if room >= max_tokens else max(MIN_ANSWER_TOKENS, room)

    def margin(self, limit: int) -> int:
        # chat template tokens and rounding in the estimate
        return 32 + limit // 50

    def learn_density(self, chars: int, tokens: int) -> None:
        if tokens > 0:
            seen = chars / tokens
            self.chars_per_token = min(self.chars_per_token or seen, seen)

    def _cut(self, text: str, chars: float, tokens: float, room: float) -> str | None:
        excess = tokens - room
        per_token = chars / max(tokens, 1.0)
        keep = len(text) - int(excess * per_token * 1.1) - 64
        keep = max(keep, MIN_CONVERSATION_CHARS)
        shorter = cut_middle(text, keep)
        return shorter if len(shorter) < len(text) else None  # None: already at its shortest

    def shorten(
        self,
        kind: str,
        text: str,
        messages: list[dict[str, str]],
        max_tokens: int,
        overflow: ContextRefusal,
        shrinks: int,
    ) -> str | None:
        """The conversation text cut to fit what a refusal says; None when it cannot be."""
        if shrinks >= MAX_SHRINKS:
            return None
        self.summary.retried += 1
        chars = self._chars(kind, messages)
        if overflow.limit is not None:
            if self.context_limit is None or overflow.limit < self.context_limit:
                self.context_limit = overflow.limit
        if overflow.prompt_tokens:
            self.learn_density(chars, overflow.prompt_tokens)
        limit = self.context_limit
        if limit is not None and overflow.prompt_tokens:
            room = limit - self.fit_answer(max_tokens) - self.margin(limit)
            return self._cut(text, chars, overflow.prompt_tokens, room)
        # the numbers are not stated: halve, and let the next refusal say more
        shorter = cut_middle(text, max(MIN_CONVERSATION_CHARS, len(text) // 2))
        return shorter if len(shorter) < len(text) else None

    async def count_tokens(self, kind: str, messages: list[dict[str, str]]) -> int | None:
        client = WORKER_CLIENT.get(self.client)
        assert client is not None and self.server.tokenize_url
        content = "\n".join([self.system[kind], *(m["content"] for m in messages)])
        try:
            resp = await client.post(self.server.tokenize_url, json={"content": content})
            tokens = resp.json().get("tokens") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return len(tokens) + 8 * (len(messages) + 1) if isinstance(tokens, list) else None

    # -- one conversation ------------------------------------------------------------------------

    async def features_for(self, conv: Conversation) -> tuple[dict[str, Any], bool, Rendered]:
        """Returns (features, from_cache, rendered)."""
        rendered = render(conv, self.token_budget)
        key = self.key_for("extract", rendered)
        hit = None if self.opts.refresh else self.cache.get(key)
        if hit is not None:
            return hit, True, rendered
        if self.stop_reason:
            raise Failure(f"not processed: {self.stop_reason}")
        if self.opts.subjectivity == "separate":
            skey = self.key_for("subjectivity", rendered)
            subjective = None if self.opts.refresh else self.cache.get(skey)
            if subjective is None:
                subjective, tin, tout, spent, _ = await self.call("subjectivity", rendered)
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
        features, tin, tout, spent, shortened = await self.call("extract", rendered)
        if shortened and not rendered.truncated:
            # kept with the answer, so that a cached row still says it was cut to fit
            features = {**features, "_shortened": True}
        self.cache.put(key, features, tin, tout, spent)
        return features, False, rendered


def _as_is(text: str) -> str:
    return text
