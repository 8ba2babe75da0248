"""Requests- and tokens-per-minute limits as async token buckets."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Refills at ``per_minute / 60`` per second up to ``burst``; ``take`` waits its turn (FIFO
    through a lock, so a large request is not starved by small ones)."""

    def __init__(self, per_minute: float, burst: float | None = None) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        # A one-second burst keeps the achieved rate near the limit without front-loading a
        # whole minute's requests into the first instant (servers count in shorter windows too).
        self.capacity = max(1.0, burst if burst is not None else self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float = 1.0) -> None:
        amount = min(amount, self.capacity)  # a request larger than the bucket still goes, alone
        async with self.lock:
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate)
                self._refill()
            self.level -= amount
