"""The extraction stage: every conversation of the inputs through the runner, on bounded
concurrency, into the features Parquet or the rejects file. Entry point: :func:`run_extract`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from valuescope.errors import ExtractError
from valuescope.extract.answer import SCRUBBED_KEY
from valuescope.extract.cache import Cache, cache_key
from valuescope.extract.calls import POOL_SIZE, WORKER_CLIENT, Runner
from valuescope.extract.conversations import (
    Conversation,
    FieldMap,
    Rejected,
    check_inputs,
    read_conversations,
)
from valuescope.extract.failures import Failure, Fatal
from valuescope.extract.options import PROVIDERS, ExtractOptions, Summary, in_sample
from valuescope.extract.output import write_extracted_features, write_rejects
from valuescope.extract.prompts import PROMPT_VERSION
from valuescope.extraction_summary import reject_kind, summary_path, write_summary
from valuescope.layout import EXTRACT_CACHE_DB, EXTRACT_CACHE_DIR, EXTRACT_REJECTS_SUFFIX
from valuescope.providers import OPENAI_MODES


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
        "truncated": truncated or bool(features.get("_shortened")),
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
    return os.path.join(os.path.dirname(os.path.abspath(out)), EXTRACT_CACHE_DIR)


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
    valuescope.extract.conversations.InputError (unreadable input file)."""
    check_options(opts)
    inputs = list(inputs)
    check_inputs(inputs)
    api_key = _api_key(opts)
    cache_dir = opts.cache_dir or default_cache_dir(out)
    summary = Summary(
        out=out,
        rejects=rejects_path or out + EXTRACT_REJECTS_SUFFIX,
        cache=os.path.join(cache_dir, EXTRACT_CACHE_DB),
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

    from valuescope.extract.conversations import count_records

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
        await runner.probe(clients[0])
        if opts.batch:
            from valuescope.extract.batch import run_batches

            try:
                await run_batches(runner, inputs, fmt, fields, opts.limit)
            except Failure as exc:
                # The synchronous pass below still does every conversation; say why it has to.
                print(f"valuescope: batch mode failed, going on without it: {exc}", file=sys.stderr)
            except Fatal as exc:
                fatal.append(str(exc))

        # What was cached when an earlier run of this command stopped: the bar starts there,
        # and that many cache hits do not move it again.
        resume_key = runner.resume_key(inputs, fmt, fields)
        head = cache.progress(resume_key)
        head_start = [head if total is None else min(head, total)]
        bar = tqdm(
            total=total,
            initial=head_start[0],
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

        inflight: set[asyncio.Future[Any]] = set()
        loop = asyncio.get_running_loop()

        def cancel_inflight() -> None:
            for fut in list(inflight):
                fut.cancel()

        def on_signal(signum: int) -> None:
            if summary.interrupted is None:
                summary.interrupted = signum
                name = signal.Signals(signum).name
                runner.stop_reason = runner.stop_reason or f"interrupted ({name})"
                if opts.progress:
                    bar.write(
                        f"valuescope: {name}: stopping; waiting up to {opts.grace:g}s for the "
                        "requests in flight, then writing what is done",
                        file=sys.stderr,
                    )
                loop.call_later(opts.grace, cancel_inflight)
            else:  # a second signal: no more waiting
                cancel_inflight()

        async def worker(client: httpx.AsyncClient) -> None:
            WORKER_CLIENT.set(client)  # this task's own context: other workers keep theirs
            while True:
                item = await queue.get()
                if item is None:
                    return
                idx, conv = item
                cached = False
                try:
                    if fatal:
                        raise Failure(f"not processed: {fatal[0]}")
                    fut = asyncio.ensure_future(runner.features_for(conv))
                    inflight.add(fut)
                    try:
                        features, cached, rendered = await fut
                    finally:
                        inflight.discard(fut)
                except Failure as exc:
                    reject(idx, conv, str(exc))
                except Fatal as exc:
                    if not fatal:
                        fatal.append(str(exc))
                    reject(idx, conv, f"not processed: {exc}")
                except asyncio.CancelledError:
                    # Only the request is cancelled (after the grace period), not this worker.
                    reject(idx, conv, f"not processed: {runner.stop_reason}")
                else:
                    rows[idx] = _row(conv, features, opts, rendered.truncated)
                    summary.scrubbed += int(features.get(SCRUBBED_KEY, 0))
                    summary.done += 1
                    summary.cached += cached
                    summary.truncated += rendered.truncated
                if cached and head_start[0] > 0:
                    head_start[0] -= 1  # already counted in the bar's starting point
                else:
                    bar.update(1)
                runner.tick()

        workers = [
            asyncio.create_task(worker(clients[i % n_pools])) for i in range(opts.concurrency)
        ]
        handled = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
                handled.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            idx = 0
            for item in read_conversations(inputs, fmt, fields):
                if opts.limit is not None and idx >= opts.limit:
                    break
                if isinstance(item, Rejected):
                    rejects[idx] = item.to_json()
                    summary.failed += 1
                    bar.update(1)
                elif summary.interrupted is not None:
                    # Read on, so that every record is accounted for, but send nothing more.
                    reject(idx, item, f"not processed: {runner.stop_reason}")
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
            for signum in handled:
                loop.remove_signal_handler(signum)
            bar.close()
        cache.set_progress(resume_key, summary.done)

    summary.stopped = fatal[0] if fatal else runner.stop_reason
    with _signals_deferred():  # a second Ctrl-C must not cut the files short
        write_extracted_features(out, [rows[i] for i in sorted(rows)])
        write_rejects(summary.rejects, [rejects[i] for i in sorted(rejects)])
        write_summary(summary_path(out), extraction_record(summary, rejects.values(), opts, fields))
    return summary


def extraction_record(
    summary: Summary,
    rejects: Iterable[dict[str, Any]],
    opts: ExtractOptions,
    fields: FieldMap | None,
) -> dict[str, Any]:
    """What the report needs to know about the extraction: counts and reject reasons only
    (never a conversation id or any text from a conversation)."""
    reasons: dict[str, int] = {}
    for r in rejects:
        kind = reject_kind(str(r.get("reason", "")))
        reasons[kind] = reasons.get(kind, 0) + 1
    return {
        "records": summary.total,
        "extracted": summary.done,
        "rejected": summary.failed,
        "reject_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "truncated": summary.truncated,
        "scrubbed_values": summary.scrubbed,
        "model": f"{opts.provider}:{opts.model}",
        "prompt_version": PROMPT_VERSION,
        "stopped": summary.stopped,
        "interrupted": summary.interrupted is not None,
    }


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (the writes are atomic anyway; this
    keeps a second Ctrl-C from throwing away the work of the first)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {
        s: signal.signal(s, lambda n, _f: got.append(n)) for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if got:
            signal.raise_signal(got[0])


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
            WORKER_CLIENT.set(client)
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
                            raise Failure(f"not processed: {fatal[0]}")
                        if runner.stop_reason:
                            raise Failure(f"not processed: {runner.stop_reason}")
                        answer, tin, tout, spent = await runner.call_text(t.kind, t.content)
                        cache.put(key, answer, tin, tout, spent)
                        results[t.id] = answer
                    summary.done += 1
                except Failure as exc:
                    failures[t.id] = str(exc)
                    summary.failed += 1
                except Fatal as exc:
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
