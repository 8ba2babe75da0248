"""One retry policy for every HTTP caller: the extraction runner, its batches, the cluster namer and
the embeddings client.

Which answers are worth another try (time-outs, lost connections, 408, 409, 429 and 5xx), how long
to wait (exponential backoff with jitter, so that many workers refused at once do not come back at
once; never less than the server's Retry-After or retry-after-ms, up to a cap), and when to stop
are decided here; what a final answer means is left to each caller.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

#: Refusals below 500 that a later try may get past: timeout, conflict, rate limit.
RETRY_STATUSES = frozenset({408, 409, 429})


def retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


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


def retry_hint(headers: Mapping[str, str]) -> float | None:
    """The server's wait, in seconds: retry-after-ms (OpenAI's finer-grained hint) wins over
    Retry-After."""
    hint = retry_after_seconds(headers.get("retry-after"))
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            hint = max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return hint


def transport_error(exc: httpx.TransportError) -> str:
    """What went wrong without the exception's text, which can carry request details."""
    if isinstance(exc, httpx.TimeoutException):
        return "request timed out"
    return f"connection error ({type(exc).__name__})"


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 8
    #: The first wait, doubled per retry up to backoff_max.
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    #: The most a server's Retry-After may make a caller wait.
    max_retry_after: float = 120.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        d = min(self.backoff_max, self.backoff_base * 2**attempt)
        d = random.uniform(d / 2, d)
        if hint is not None:
            d = max(d, min(hint, self.max_retry_after))
        return d


class RetriesExhausted(Exception):
    """Every retry failed; `last` says how the last try went (a response when there was one)."""

    def __init__(
        self,
        last: str,
        retries: int,
        response: httpx.Response | None = None,
        error: BaseException | None = None,
    ):
        super().__init__(f"gave up after {retries} retries; last error: {last}")
        self.last = last
        self.retries = retries
        self.response = response
        self.error = error


class Retrier:
    """The retries one request has left, and the wait before the next."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.left = policy.retries
        self.attempt = 0

    def next_delay(
        self,
        last: str,
        hint: float | None = None,
        response: httpx.Response | None = None,
        error: BaseException | None = None,
    ) -> float:
        """Seconds to wait before the next try; RetriesExhausted when none is left."""
        if self.left <= 0:
            raise RetriesExhausted(last, self.policy.retries, response, error)
        self.left -= 1
        d = self.policy.delay(self.attempt, hint)
        self.attempt += 1
        return d


def _describe(resp: httpx.Response) -> str:
    return f"HTTP {resp.status_code}"


def request(
    client: httpx.Client,
    method: str,
    url: str,
    policy: RetryPolicy,
    describe: Callable[[httpx.Response], str] = _describe,
    **kwargs: Any,
) -> httpx.Response:
    """Sends until an answer that is not worth retrying, and returns it (a success or a refusal,
    for the caller to read); raises RetriesExhausted."""
    retry = Retrier(policy)
    while True:
        try:
            resp = client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            delay = retry.next_delay(transport_error(exc), error=exc)
        else:
            if not retryable(resp.status_code):
                return resp
            delay = retry.next_delay(describe(resp), retry_hint(resp.headers), response=resp)
        time.sleep(delay)


async def arequest(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    policy: RetryPolicy,
    describe: Callable[[httpx.Response], str] = _describe,
    on_retry: Callable[[], None] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """`request` for asyncio clients; `on_retry` is called before each wait."""
    retry = Retrier(policy)
    while True:
        try:
            resp = await client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            delay = retry.next_delay(transport_error(exc), error=exc)
        else:
            if not retryable(resp.status_code):
                return resp
            delay = retry.next_delay(describe(resp), retry_hint(resp.headers), response=resp)
        if on_retry is not None:
            on_retry()
        await asyncio.sleep(delay)
