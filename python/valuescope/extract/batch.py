"""Anthropic Message Batches: submit every uncached conversation, save the batch ids, poll, and
fill the cache with the results. The ordinary runner then serves those from the cache and handles
whatever the batch did not (errors, expiries, invalid answers) with synchronous calls.

Batch ids are committed to the cache before polling, so a crash between submit and collect
resumes by collecting, not by submitting (and paying) again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from valuescope._http import RetriesExhausted, arequest
from valuescope.extract.answer import (
    FEATURE_SCHEMA,
    AnswerError,
    parse_json,
    repair_features,
    validate_features,
)
from valuescope.extract.calls import Runner
from valuescope.extract.conversations import FieldMap, Rejected, read_conversations
from valuescope.extract.failures import Failure, Fatal
from valuescope.extract.options import in_sample
from valuescope.extract.prompts import render, user_message
from valuescope.providers import ResponseShapeError, parse_anthropic

BATCH_PRICE_FACTOR = 0.5


async def _http(runner: Runner, method: str, url: str, body: Any = None) -> httpx.Response:
    assert runner.client is not None

    def describe(resp: httpx.Response) -> str:
        return f"HTTP {resp.status_code}: {runner.clean(resp.text[:300])}"

    try:
        resp = await arequest(
            runner.client,
            method,
            url,
            runner.opts.retry_policy(),
            describe,
            json=body,
            headers=runner.provider.headers(),
        )
    except RetriesExhausted as exc:
        raise Failure(f"batch request failed after retries: {exc.last}") from None
    if resp.status_code == 200:
        return resp
    if resp.status_code in (401, 403):
        raise Fatal(f"authentication refused (HTTP {resp.status_code})")
    raise Failure(f"batch request failed: {describe(resp)}")


async def _submit(runner: Runner, requests: list[dict[str, Any]]) -> None:
    url = f"{runner.provider.base_url}/v1/messages/batches"
    resp = await _http(runner, "POST", url, {"requests": requests})
    batch_id = resp.json().get("id")
    if not isinstance(batch_id, str):
        raise Failure("batch submission answered without an id")
    runner.cache.add_batch(batch_id, "anthropic", [r["custom_id"] for r in requests])
    runner.summary.batch_ids.append(batch_id)
    runner.summary.requests += 1


async def _collect(runner: Runner, batch_id: str) -> bool:
    """Store the batch's valid answers in the cache; False while it is still processing."""
    base = runner.provider.base_url
    info = (await _http(runner, "GET", f"{base}/v1/messages/batches/{batch_id}")).json()
    if info.get("processing_status") != "ended":
        return False
    results_url = info.get("results_url") or f"{base}/v1/messages/batches/{batch_id}/results"
    text = (await _http(runner, "GET", results_url)).text
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            result = rec["result"]
            custom_id = rec["custom_id"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(result, dict) or result.get("type") != "succeeded":
            continue  # errored, canceled, expired: the synchronous pass retries these
        try:
            answer = parse_anthropic(result.get("message"))
        except ResponseShapeError:
            continue
        spent = runner.account(answer, BATCH_PRICE_FACTOR)
        try:
            features, fixes = repair_features(validate_features(parse_json(answer.text or "")))
        except AnswerError:
            continue
        for k, n in fixes.items():
            runner.summary.repaired[k] = runner.summary.repaired.get(k, 0) + n
        runner.cache.put(custom_id, features, answer.input_tokens, answer.output_tokens, spent)
    runner.cache.finish_batch(batch_id)
    return True


async def run_batches(
    runner: Runner, inputs: list[str], fmt: str, fields: FieldMap | None, limit: int | None
) -> None:
    opts = runner.opts
    cache = runner.cache
    pending = cache.pending_batches("anthropic")
    chunk: list[dict[str, Any]] = []
    queued: set[str] = set()
    for idx, item in enumerate(read_conversations(inputs, fmt, fields)):
        if limit is not None and idx >= limit:
            break
        if isinstance(item, Rejected):
            continue
        if opts.sample is not None and not in_sample(item.conversation_id, opts.sample, opts.seed):
            continue
        rendered = render(item, runner.token_budget)
        key = runner.key_for("extract", rendered)  # sha256 hex: a valid 64-character custom_id
        if key in queued or cache.get(key) is not None or cache.batch_of(key) is not None:
            continue
        queued.add(key)
        body = runner.provider.body(
            runner.system["extract"],
            [{"role": "user", "content": user_message(rendered)}],
            FEATURE_SCHEMA,
            opts.max_tokens,
            opts.temperature,
        )
        chunk.append({"custom_id": key, "params": body})
        if len(chunk) >= opts.batch_size:
            await _submit(runner, chunk)
            chunk = []
    if chunk:
        await _submit(runner, chunk)
    pending = cache.pending_batches("anthropic")
    while pending:
        still = [b for b in pending if not await _collect(runner, b)]
        if not still:
            break
        pending = still
        await asyncio.sleep(opts.batch_poll_interval)
