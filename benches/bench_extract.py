"""Extraction client overhead and rate-limit fidelity against a local server that answers at once.

    python benches/bench_extract.py [--n 3000] [--concurrency 64] [--rpm 3000]

Goals (issue 4): at least 1,000 requests/s of client overhead, and at least 90% of the configured
--rpm held under a rate limit. The server is a minimal asyncio HTTP/1.1 keep-alive responder in its
own process, so that it does not compete with the client for the GIL."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import tempfile
import time
from pathlib import Path

ANSWER = json.dumps(
    {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": json.dumps(
                        {
                            "subjective": True,
                            "task": "give advice",
                            "ai_values": ["honesty", "care"],
                            "ai_values_explicit": [],
                            "human_values": [],
                            "response_type": "mild support",
                        }
                    ),
                },
            }
        ],
        "usage": {"prompt_tokens": 500, "completion_tokens": 60},
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(ANSWER)).encode()
    + b"\r\n\r\n"
    + ANSWER
)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _serve(sock: socket.socket) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_handle, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _conversations(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            text = f"Conversation {i}: should I take the job or stay with my team?"
            msgs = [{"role": "user", "content": text}, {"role": "assistant", "content": "..."}]
            fh.write(json.dumps({"id": f"b{i}", "messages": msgs}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rpm", type=float, default=3000)
    ap.add_argument("--rpm-n", type=int, default=300)
    args = ap.parse_args()

    from valuescope.extract import ExtractOptions, run_extract

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    server = mp.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    server.start()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    base = f"http://127.0.0.1:{port}/v1"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "c.jsonl"
            _conversations(src, args.n)
            opts = ExtractOptions(
                provider="openai", model="bench", base_url=base, progress=False,
                concurrency=args.concurrency, cache_dir=f"{tmp}/cache1",
            )  # fmt: skip
            start = time.perf_counter()
            s = run_extract([str(src)], f"{tmp}/f.parquet", opts)
            elapsed = time.perf_counter() - start
            print(
                f"throughput: {s.requests} requests in {elapsed:.2f} s = "
                f"{s.requests / elapsed:.0f} requests/s (concurrency {args.concurrency}; "
                f"includes reading, cache writes, validation and the Parquet output)"
            )
            _conversations(src, args.rpm_n)
            opts = ExtractOptions(
                provider="openai", model="bench", base_url=base, progress=False,
                concurrency=args.concurrency, cache_dir=f"{tmp}/cache2", rpm=args.rpm,
            )  # fmt: skip
            start = time.perf_counter()
            s = run_extract([str(src)], f"{tmp}/g.parquet", opts)
            elapsed = time.perf_counter() - start
            # The bucket starts full (one second of requests), so the steady rate is measured
            # over the requests after that first burst.
            burst = max(1, int(args.rpm / 60))
            steady = (s.requests - burst) / elapsed * 60
            print(
                f"rate limit: {s.requests} requests in {elapsed:.2f} s at --rpm {args.rpm:g}: "
                f"{steady:.0f} rpm after the initial burst = {100 * steady / args.rpm:.1f}% "
                f"of the limit (raw {s.requests / elapsed * 60:.0f} rpm)"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
