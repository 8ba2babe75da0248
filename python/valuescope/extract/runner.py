"""The extraction runner: bounded-concurrency async calls with rate limits, retries, validation,
a durable cache, cost accounting and a rejects file. Entry point: :func:`run_extract`."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import os
import random
import sys
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from valuescope.conversations import (
    Conversation,
    FieldMap,
    Rejected,
    check_inputs,
    read_conversations,
)
from valuescope.extract import pricing
from valuescope.extract.cache import Cache, cache_key
from valuescope.extract.output import write_features, write_rejects
from valuescope.extract.providers import (
    OPENAI_MODES,
    Answer,
    Provider,
    ResponseShapeError,
    default_base_url,
)
from valuescope.extract.ratelimit import TokenBucket
from valuescope.extract.redact import redact
from valuescope.extract.schema import (
    FEATURE_SCHEMA,
    SUBJECTIVITY_SCHEMA,
    AnswerError,
    parse_json,
    repair_features,
    validate_features,
    validate_subjectivity,
)
from valuescope.prompts import PROMPT_VERSION, Rendered, estimate_tokens, load_prompt, render
from valuescope.prompts import user_message as render_user_message

RETRY_STATUSES = frozenset({408, 409, 429})
# httpx's connection pool does work proportional to its size on every request, so many workers
# share a few small pools (one per worker, through this context variable) instead of one big one.
POOL_SIZE = 4
_CLIENT: ContextVar[httpx.AsyncClient | None] = ContextVar("valuescope_http_client", default=None)
PROVIDERS = ("anthropic", "openai")


class ExtractError(Exception):
    """A user-facing error that stops the run before it starts (bad options, missing key)."""


class _Failure(Exception):
    """One conversation failed for good; the message (already redacted) is the reject reason."""


class _Fatal(Exception):
    """The whole run must stop (authentication refused): no other request can succeed."""


@dataclass
class ExtractOptions:
    provider: str
    model: str
    base_url: str | None = None
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    max_cost: float | None = None
    cache_dir: str | None = None  # default: ".valuescope-cache" beside the output
    max_tokens: int = 1024
    temperature: float = 0.0
    token_budget: int = 6000  # tokens of conversation text sent; the middle is cut beyond it
    transport_retries: int = 8
    validation_retries: int = 1
    timeout: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 120.0
    subjectivity: str = "combined"  # or "separate": a cheap first call; non-subjective stop there
    structured: str = "auto"  # openai only: auto or one of OPENAI_MODES
    batch: bool = False  # anthropic only: Message Batches API
    batch_poll_interval: float = 30.0
    batch_size: int = 10_000
    limit: int | None = None
    price: tuple[float, float] | None = None  # USD per million tokens (input, output)
    progress: bool = True
    # A rerun for validation: only the conversations whose hashed id falls in the sample, and
    # fresh answers instead of the cached ones (the cache is then updated with them).
    sample: float | None = None
    seed: int = 0
    refresh: bool = False


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    retried: int = 0
    requests: int = 0
    truncated: int = 0
    skipped: int = 0  # outside --sample
    repaired: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    priced: bool = True
    stopped: str | None = None
    out: str = ""
    rejects: str = ""
    cache: str = ""
    batch_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        cost = f"${self.cost:.4f}" if self.priced else "cost unknown (no price for this model)"
        text = (
            f"{self.done} extracted ({self.cached} from cache), {self.failed} rejected, "
            f"{self.retried} retries, {self.requests} requests, "
            f"{self.input_tokens}+{self.output_tokens} tokens, {cost}"
        )
        if self.repaired:
            text += "; repaired: " + ", ".join(f"{n} {k}" for k, n in sorted(self.repaired.items()))
        if self.skipped:
            text += f"; {self.skipped} outside the --sample"
        if self.stopped:
            text += f"; stopped early: {self.stopped}"
        return text


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
        client = _CLIENT.get(self.client)
        assert client is not None
        schema = self.schemas[kind]
        est = estimate_tokens(self.system[kind]) + max_tokens
        est += sum(estimate_tokens(m["content"]) for m in messages)
        left = self.opts.transport_retries
        attempt = 0
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
            except httpx.TimeoutException:
                last = "request timed out"
            except httpx.TransportError as exc:
                # The class name only: some exception texts carry request details.
                last = f"connection error ({type(exc).__name__})"
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
                        raise _Fatal(
                            f"authentication refused (HTTP {status}); check {self.provider.env_var}"
                        )
                    if status == 404:  # no such endpoint or model: nothing else can succeed
                        raise _Fatal(f"{last[:200]}; check --base-url and --model")
                    if self.provider.adapt(status, resp.text, body):
                        continue
                    if self._step_down(mode, status, resp.text):
                        continue
                    if status not in RETRY_STATUSES and status < 500:
                        raise _Failure(last)
                    wait_hint = retry_after_seconds(resp.headers.get("retry-after"))
                    ms = resp.headers.get("retry-after-ms")  # OpenAI's finer-grained hint
                    if ms is not None:
                        try:
                            wait_hint = max(0.0, float(ms) / 1000)
                        except ValueError:
                            pass
            if left <= 0:
                raise _Failure(
                    f"gave up after {self.opts.transport_retries} retries; last error: {last}"
                )
            left -= 1
            self.summary.retried += 1
            self.tick()
            delay = min(self.opts.backoff_max, self.opts.backoff_base * 2**attempt)
            delay = random.uniform(delay / 2, delay)  # jitter: spread simultaneous retries
            if wait_hint is not None:
                delay = max(delay, min(wait_hint, self.opts.max_retry_after))
            attempt += 1
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

    async def call(self, kind: str, rendered: Rendered) -> tuple[Any, int, int, float]:
        return await self.call_text(kind, render_user_message(rendered))

    async def call_text(self, kind: str, content: str) -> tuple[Any, int, int, float]:
        """One structured call: the answer validated (re-asked on an invalid one); returns
        (the validated answer, input tokens, output tokens, cost)."""
        validate = self.validators[kind]
        first = {"role": "user", "content": content}
        messages = [first]
        max_tokens = min(self.answer_tokens.get(kind, self.opts.max_tokens), self.opts.max_tokens)
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
                result = validate(parse_json(answer.text or ""))
                if kind == "extract":
                    result, fixes = repair_features(result)
                    for k, n in fixes.items():
                        self.summary.repaired[k] = self.summary.repaired.get(k, 0) + n
                return result, tokens_in, tokens_out, spent
            except AnswerError as exc:
                reason = self.clean(str(exc))
                if reasks <= 0:
                    cut = " (the answer was cut off at max_tokens)" if answer.truncated else ""
                    raise _Failure(f"invalid answer: {reason}{cut}") from None
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
        hit = None if self.opts.refresh else self.cache.get(key)
        if hit is not None:
            return hit, True, rendered
        if self.stop_reason:
            raise _Failure(f"not processed: {self.stop_reason}")
        if self.opts.subjectivity == "separate":
            skey = self.key_for("subjectivity", rendered)
            subjective = None if self.opts.refresh else self.cache.get(skey)
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
                raise _Failure(f"not processed: {self.stop_reason}")
        features, tin, tout, spent = await self.call("extract", rendered)
        self.cache.put(key, features, tin, tout, spent)
        return features, False, rendered


def in_sample(conversation_id: str, fraction: float, seed: int) -> bool:
    """Whether a conversation is in a --sample: decided by a hash of (seed, id), so the same
    conversations are chosen whatever the order or the files they come in."""
    digest = hashlib.sha256(f"{seed}\0{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def _row(
    conv: Conversation, features: dict[str, Any], opts: ExtractOptions, truncated: bool
) -> dict[str, Any]:
    return {
        "conversation_id": conv.conversation_id,
        "user_id": conv.user_id,
        "model": conv.model,
        "subjective": features["subjective"],
        "task": features["task"],
        "task_cluster": None,
        "ai_values": features["ai_values"],
        "ai_values_explicit": features["ai_values_explicit"],
        "human_values": features["human_values"],
        "response_type": features["response_type"],
        "extraction_model": f"{opts.provider}:{opts.model}",
        "prompt_version": PROMPT_VERSION,
        "truncated": truncated,
    }


def _api_key(opts: ExtractOptions) -> str:
    var = "ANTHROPIC_API_KEY" if opts.provider == "anthropic" else "OPENAI_API_KEY"
    key = os.environ.get(var, "").strip()
    if not key and not opts.base_url:
        raise ExtractError(f"{var} is not set (keys are read from the environment only)")
    return key  # a local server given with --base-url may need none


def check_options(opts: ExtractOptions) -> None:
    if opts.provider not in PROVIDERS:
        raise ExtractError(f"unknown provider '{opts.provider}' (expected anthropic or openai)")
    if opts.concurrency < 1:
        raise ExtractError("--concurrency must be at least 1")
    for name in ("rpm", "tpm", "max_cost"):
        value = getattr(opts, name)
        if value is not None and value <= 0:
            raise ExtractError(f"--{name.replace('_', '-')} must be positive")
    if opts.subjectivity not in ("combined", "separate"):
        raise ExtractError("--subjectivity must be combined or separate")
    if opts.structured != "auto" and opts.structured not in OPENAI_MODES:
        raise ExtractError(f"--structured must be auto or one of {', '.join(OPENAI_MODES)}")
    if opts.batch and opts.provider != "anthropic":
        raise ExtractError("--batch needs --provider anthropic (the Message Batches API)")
    if opts.sample is not None and not 0 < opts.sample <= 1:
        raise ExtractError("--sample must be a fraction in (0, 1]")
    if opts.batch and opts.refresh:
        raise ExtractError("--refresh works without --batch (batches fill the cache first)")
    if opts.batch and opts.subjectivity == "separate":
        raise ExtractError("--batch works with --subjectivity combined only")


def default_cache_dir(out: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(out)), ".valuescope-cache")


def run_extract(
    inputs: Iterable[str],
    out: str,
    opts: ExtractOptions,
    fmt: str = "auto",
    fields: FieldMap | None = None,
    rejects_path: str | None = None,
) -> Summary:
    """Extract features for every conversation in ``inputs``; write ``out`` (features Parquet)
    and ``rejects_path`` (default ``out + '.rejects.jsonl'``). Every input record ends in one of
    the two. Safe to re-run after a crash: cached answers are reused, not paid for again.

    Raises ExtractError (bad options, missing key, refused authentication) and
    valuescope.conversations.InputError (unreadable input file)."""
    check_options(opts)
    inputs = list(inputs)
    check_inputs(inputs)
    api_key = _api_key(opts)
    cache_dir = opts.cache_dir or default_cache_dir(out)
    summary = Summary(
        out=out,
        rejects=rejects_path or out + ".rejects.jsonl",
        cache=os.path.join(cache_dir, "extract.sqlite3"),
    )
    cache = Cache(summary.cache)
    try:
        return asyncio.run(_run(inputs, out, opts, fmt, fields, api_key, cache, summary))
    finally:
        cache.close()


async def _run(
    inputs: list[str],
    out: str,
    opts: ExtractOptions,
    fmt: str,
    fields: FieldMap | None,
    api_key: str,
    cache: Cache,
    summary: Summary,
) -> Summary:
    from tqdm import tqdm

    from valuescope.conversations import count_records

    runner = Runner(opts, api_key, cache, summary)
    counts = [count_records(p) for p in inputs]
    total = None if None in counts else sum(c for c in counts if c is not None)
    if opts.limit is not None:
        total = opts.limit if total is None else min(total, opts.limit)
    rows: dict[int, dict[str, Any]] = {}
    rejects: dict[int, dict[str, Any]] = {}
    queue: asyncio.Queue[tuple[int, Conversation] | None] = asyncio.Queue(opts.concurrency * 4)
    fatal: list[str] = []

    timeout = httpx.Timeout(opts.timeout, connect=min(opts.timeout, 30.0))
    n_pools = -(-opts.concurrency // POOL_SIZE)
    per_pool = -(-opts.concurrency // n_pools)
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    tls = httpx.create_ssl_context()  # built once: loading the CA store costs ~25 ms a pool
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=timeout, limits=limits, verify=tls)
            )
            for _ in range(n_pools)
        ]
        runner.client = clients[0]
        if opts.batch:
            from valuescope.extract.batch import run_batches

            try:
                await run_batches(runner, inputs, fmt, fields, opts.limit)
            except _Failure as exc:
                # The synchronous pass below still does every conversation; say why it has to.
                print(f"valuescope: batch mode failed, going on without it: {exc}", file=sys.stderr)
            except _Fatal as exc:
                fatal.append(str(exc))

        bar = tqdm(
            total=total,
            disable=not opts.progress,
            unit="conv",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        runner.bar = bar if opts.progress else None

        def reject(idx: int, conv: Conversation, reason: str) -> None:
            rejects[idx] = {
                "conversation_id": conv.conversation_id,
                **conv.location(),
                "reason": reason,
            }
            summary.failed += 1

        async def worker(client: httpx.AsyncClient) -> None:
            _CLIENT.set(client)  # this task's own context: other workers keep theirs
            while True:
                item = await queue.get()
                if item is None:
                    return
                idx, conv = item
                try:
                    if fatal:
                        raise _Failure(f"not processed: {fatal[0]}")
                    features, cached, rendered = await runner.features_for(conv)
                except _Failure as exc:
                    reject(idx, conv, str(exc))
                except _Fatal as exc:
                    if not fatal:
                        fatal.append(str(exc))
                    reject(idx, conv, f"not processed: {exc}")
                else:
                    rows[idx] = _row(conv, features, opts, rendered.truncated)
                    summary.done += 1
                    summary.cached += cached
                    summary.truncated += rendered.truncated
                bar.update(1)
                runner.tick()

        workers = [
            asyncio.create_task(worker(clients[i % n_pools])) for i in range(opts.concurrency)
        ]
        try:
            idx = 0
            for item in read_conversations(inputs, fmt, fields):
                if opts.limit is not None and idx >= opts.limit:
                    break
                if isinstance(item, Rejected):
                    rejects[idx] = item.to_json()
                    summary.failed += 1
                    bar.update(1)
                elif opts.sample is not None and not in_sample(
                    item.conversation_id, opts.sample, opts.seed
                ):
                    summary.skipped += 1
                    bar.update(1)
                else:
                    await queue.put((idx, item))
                idx += 1
            summary.total = idx
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers, return_exceptions=False)
            bar.close()

    summary.stopped = fatal[0] if fatal else runner.stop_reason
    write_features(out, [rows[i] for i in sorted(rows)])
    write_rejects(summary.rejects, [rejects[i] for i in sorted(rejects)])
    return summary


@dataclass
class Task:
    """One structured call for ``run_tasks``: its cache key parts, kind and user message."""

    id: str
    kind: str
    content: str


def run_tasks(
    opts: ExtractOptions,
    tasks: list[Task],
    kinds: dict[str, tuple[str, dict[str, Any], Any, int]],
    cache_path: str,
) -> tuple[dict[str, Any], dict[str, str], Summary]:
    """Structured calls other than extraction (validate's judge and privacy auditor) through
    the same runner: concurrency, rate limits, retries, the cache, --max-cost, key redaction.
    ``kinds`` maps a kind to (system prompt, answer schema, validator, answer tokens).
    Returns (answer per task id, failure reason per task id, summary)."""
    check_options(opts)
    api_key = _api_key(opts)
    summary = Summary(total=len(tasks), cache=cache_path)
    cache = Cache(cache_path)
    try:
        return asyncio.run(_run_tasks(opts, tasks, kinds, api_key, cache, summary))
    finally:
        cache.close()


async def _run_tasks(
    opts: ExtractOptions,
    tasks: list[Task],
    kinds: dict[str, tuple[str, dict[str, Any], Any, int]],
    api_key: str,
    cache: Cache,
    summary: Summary,
) -> tuple[dict[str, Any], dict[str, str], Summary]:
    from tqdm import tqdm

    runner = Runner(opts, api_key, cache, summary)
    for kind, (system, schema, validate, tokens) in kinds.items():
        runner.add_kind(kind, system, schema, validate, tokens)
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    fatal: list[str] = []
    queue: asyncio.Queue[Task | None] = asyncio.Queue()
    for t in tasks:
        queue.put_nowait(t)
    timeout = httpx.Timeout(opts.timeout, connect=min(opts.timeout, 30.0))
    limits = httpx.Limits(
        max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
    )
    bar = tqdm(total=len(tasks), disable=not opts.progress, unit="call", file=sys.stderr)
    runner.bar = bar if opts.progress else None
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        runner.client = client

        async def worker() -> None:
            _CLIENT.set(client)
            while True:
                t = await queue.get()
                if t is None:
                    return
                key = cache_key(
                    {
                        "kind": t.kind,
                        "system": runner.system[t.kind],
                        "provider": opts.provider,
                        "model": opts.model,
                        "params": runner.params(),
                        "content": t.content,
                    }
                )
                try:
                    hit = None if opts.refresh else cache.get(key)
                    if hit is not None:
                        results[t.id] = hit
                        summary.cached += 1
                    else:
                        if fatal:
                            raise _Failure(f"not processed: {fatal[0]}")
                        if runner.stop_reason:
                            raise _Failure(f"not processed: {runner.stop_reason}")
                        answer, tin, tout, spent = await runner.call_text(t.kind, t.content)
                        cache.put(key, answer, tin, tout, spent)
                        results[t.id] = answer
                    summary.done += 1
                except _Failure as exc:
                    failures[t.id] = str(exc)
                    summary.failed += 1
                except _Fatal as exc:
                    if not fatal:
                        fatal.append(str(exc))
                    failures[t.id] = f"not processed: {exc}"
                    summary.failed += 1
                bar.update(1)

        workers = [asyncio.create_task(worker()) for _ in range(opts.concurrency)]
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
    bar.close()
    summary.stopped = fatal[0] if fatal else runner.stop_reason
    return results, failures, summary
