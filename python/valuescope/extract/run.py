"""The extraction stage: every conversation of the inputs through the runner, on bounded
concurrency, into the features Parquet or the rejects file. Entry point: :func:`run_extract`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable
from contextlib import AsyncExitStack
from typing import Any

import httpx

from valuescope.errors import ExtractError
from valuescope.extract.cache import Cache
from valuescope.extract.calls import POOL_SIZE, WORKER_CLIENT, Runner
from valuescope.extract.conversations import (
    Conversation,
    FieldMap,
    Rejected,
    check_inputs,
    read_conversations,
)
from valuescope.extract.failures import Failure, Fatal
from valuescope.extract.options import PROVIDERS, ExtractOptions, Summary
from valuescope.extract.output import write_extracted_features, write_rejects
from valuescope.extract.prompts import PROMPT_VERSION
from valuescope.extract.providers import OPENAI_MODES
from valuescope.layout import EXTRACT_CACHE_DB, EXTRACT_CACHE_DIR, EXTRACT_REJECTS_SUFFIX


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
        if opts.batch:
            from valuescope.extract.batch import run_batches

            try:
                await run_batches(runner, inputs, fmt, fields, opts.limit)
            except Failure as exc:
                # The synchronous pass below still does every conversation; say why it has to.
                print(f"valuescope: batch mode failed, going on without it: {exc}", file=sys.stderr)
            except Fatal as exc:
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
            WORKER_CLIENT.set(client)  # this task's own context: other workers keep theirs
            while True:
                item = await queue.get()
                if item is None:
                    return
                idx, conv = item
                try:
                    if fatal:
                        raise Failure(f"not processed: {fatal[0]}")
                    features, cached, rendered = await runner.features_for(conv)
                except Failure as exc:
                    reject(idx, conv, str(exc))
                except Fatal as exc:
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
    write_extracted_features(out, [rows[i] for i in sorted(rows)])
    write_rejects(summary.rejects, [rejects[i] for i in sorted(rejects)])
    return summary
