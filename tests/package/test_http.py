"""The one retry policy every HTTP caller shares (valuescope._http): which answers are retried, how
long it waits, and what it says when it gives up."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from valuescope import _http
from valuescope._http import RetriesExhausted, RetryPolicy, arequest, request


def test_which_statuses_are_retried():
    assert [s for s in range(400, 600) if _http.retryable(s)] == [408, 409, 429, *range(500, 600)]
    assert not any(_http.retryable(s) for s in (200, 201, 301, 400, 401, 403, 404, 422))


def test_retry_after_ms_wins_over_retry_after():
    assert _http.retry_hint(httpx.Headers({"retry-after": "7"})) == 7.0
    assert _http.retry_hint(httpx.Headers({"retry-after": "7", "retry-after-ms": "250"})) == 0.25
    assert _http.retry_hint(httpx.Headers({"retry-after": "7", "retry-after-ms": "x"})) == 7.0
    assert _http.retry_hint(httpx.Headers({})) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _http.retry_hint(httpx.Headers({"retry-after": later})) <= 30


@given(
    attempt=st.integers(0, 20),
    base=st.floats(0.01, 5),
    cap=st.floats(0.1, 100),
    hint=st.none() | st.floats(0, 1000),
)
def test_delay_is_jittered_backoff_never_below_the_hint_up_to_its_cap(attempt, base, cap, hint):
    policy = RetryPolicy(retries=3, backoff_base=base, backoff_max=cap, max_retry_after=120)
    d = policy.delay(attempt, hint)
    full = min(cap, base * 2**attempt)
    if hint is None:
        assert full / 2 <= d <= full
    else:
        assert d >= min(hint, 120) and d <= max(full, min(hint, 120))


def test_delays_are_spread_not_equal():
    policy = RetryPolicy(backoff_base=1.0)
    assert len({policy.delay(3) for _ in range(50)}) > 40


class Script:
    """A transport answering from a list: a status (with headers) or an exception per request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.calls += 1
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        status, headers = a if isinstance(a, tuple) else (a, {})
        return httpx.Response(status, headers=headers, text=f"answer {self.calls}")


def test_request_retries_until_an_answer_worth_keeping(waits):
    script = Script(503, (429, {"retry-after": "3"}), httpx.ConnectError("no"), 200)
    with httpx.Client(transport=httpx.MockTransport(script)) as c:
        r = request(c, "GET", "http://x/", RetryPolicy(retries=5, backoff_base=0.01))
    assert r.status_code == 200 and script.calls == 4
    assert len(waits) == 3 and waits[1] >= 3  # the server's Retry-After is honoured


def test_a_refusal_is_returned_at_once_for_the_caller_to_read(waits):
    script = Script(404)
    with httpx.Client(transport=httpx.MockTransport(script)) as c:
        assert request(c, "GET", "http://x/", RetryPolicy()).status_code == 404
    assert script.calls == 1 and not waits


def test_giving_up_says_how_the_last_try_went(waits):
    script = Script(500, 502, 503)
    with httpx.Client(transport=httpx.MockTransport(script)) as c:
        with pytest.raises(RetriesExhausted, match="gave up after 2 retries; last error: HTTP 503"):
            request(c, "GET", "http://x/", RetryPolicy(retries=2))
    script = Script(httpx.ReadTimeout("slow"), httpx.ConnectError("secret-host"))
    with httpx.Client(transport=httpx.MockTransport(script)) as c:
        with pytest.raises(RetriesExhausted) as info:
            request(c, "GET", "http://x/", RetryPolicy(retries=1))
    assert info.value.response is None and isinstance(info.value.error, httpx.ConnectError)
    assert info.value.last == "connection error (ConnectError)"  # not the exception's text
    assert len(waits) == 3


def test_async_request_counts_its_retries(monkeypatch):
    async def no_wait(_s: float) -> None:
        return None

    monkeypatch.setattr(_http.asyncio, "sleep", no_wait)
    script = Script(503, (429, {"retry-after-ms": "1"}), 200)
    retries: list[int] = []

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(script)) as c:
            return await arequest(
                c, "POST", "http://x/", RetryPolicy(), on_retry=lambda: retries.append(1)
            )

    assert asyncio.run(go()).status_code == 200 and len(retries) == 2
