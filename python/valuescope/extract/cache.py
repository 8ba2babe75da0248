"""Durable answer cache (sqlite3), so a crashed or interrupted run never pays twice.

Keys are hashes of everything that determines an answer (prompt version, provider, model,
parameters, rendered conversation); never the API key. Each success is committed as soon as it
arrives, so a SIGKILL loses at most the requests in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_items (
    custom_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    extracted INTEGER NOT NULL,
    updated REAL NOT NULL
);
"""


def cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _wal(db: sqlite3.Connection, wait: float = 60.0) -> None:
    """Switches the database to write-ahead logging. The switch takes a lock that sqlite does
    not wait for (the connection's timeout does not apply): when several processes open one new
    cache together (Dask workers), all but one are refused at once, so retry for a while."""
    deadline = time.monotonic() + wait
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Cache:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        # The runner is one thread of asyncio; sqlite calls are short enough to run inline.
        # A generous lock timeout: Dask workers may share one cache file (writes serialise).
        self.db = sqlite3.connect(path, isolation_level=None, timeout=60)
        _wal(self.db)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def get(self, key: str) -> Any:
        """The stored JSON value, or None when absent."""
        row = self.db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any, input_tokens: int, output_tokens: int, cost: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
            (key, json.dumps(value), input_tokens, output_tokens, cost, time.time()),
        )

    def progress(self, run_key: str) -> int:
        """Conversations the last run of the same command (same inputs and settings) had
        extracted when it ended or was interrupted: where a resumed run's progress starts."""
        row = self.db.execute("SELECT extracted FROM runs WHERE run_key = ?", (run_key,)).fetchone()
        return int(row[0]) if row else 0

    def set_progress(self, run_key: str, extracted: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", (run_key, extracted, time.time())
        )

    def add_batch(self, batch_id: str, provider: str, custom_ids: list[str]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, 'submitted', ?)",
                (batch_id, provider, time.time()),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO batch_items VALUES (?, ?)",
                [(cid, batch_id) for cid in custom_ids],
            )

    def pending_batches(self, provider: str) -> list[str]:
        rows = self.db.execute(
            "SELECT batch_id FROM batches WHERE provider = ? AND status = 'submitted' "
            "ORDER BY created",
            (provider,),
        )
        return [r[0] for r in rows]

    def batch_of(self, custom_id: str) -> str | None:
        row = self.db.execute(
            "SELECT b.batch_id FROM batch_items i JOIN batches b USING (batch_id) "
            "WHERE i.custom_id = ? AND b.status = 'submitted'",
            (custom_id,),
        ).fetchone()
        return row[0] if row else None

    def finish_batch(self, batch_id: str) -> None:
        self.db.execute("UPDATE batches SET status = 'collected' WHERE batch_id = ?", (batch_id,))

    def close(self) -> None:
        self.db.close()
