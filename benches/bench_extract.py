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


STAMPS: list[float] = []
STAMP_FILE = ""


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            STAMPS.append(time.time())
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _serve(sock: socket.socket, stamp_file: str) -> None:
    import signal

    def dump(*_: object) -> None:
        Path(stamp_file).write_text("\n".join(map(repr, STAMPS)))
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)

    async def main() -> None:
        server = await asyncio.start_server(_handle, sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _start_server(stamp_file: str) -> tuple[mp.Process, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    proc = mp.get_context("fork").Process(target=_serve, args=(sock, stamp_file), daemon=True)
    proc.start()
    return proc, port


def _stamps(proc: mp.Process, stamp_file: str) -> list[float]:
    proc.terminate()
    proc.join(10)
    return [float(x) for x in Path(stamp_file).read_text().split()]


def _conversations(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            text = f"Conversation {i}: should I take the job or stay with my team?"
            msgs = [{"role": "user", "content": text}, {"role": "assistant", "content": "..."}]
            fh.write(json.dumps({"id": f"b{i}", "messages": msgs}) + "\n")


def _plain_httpx(port: int, n: int, concurrency: int) -> float:
    """Requests per CPU-second of a bare httpx loop (same pools), the floor to compare with."""
    import httpx

    body = {"model": "bench", "messages": [{"role": "user", "content": "x" * 300}]}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    async def run() -> None:
        pools = -(-concurrency // 4)
        tls = httpx.create_ssl_context()
        clients = [httpx.AsyncClient(verify=tls) for _ in range(pools)]
        left = iter(range(n))

        async def work(client: httpx.AsyncClient) -> None:
            for _ in left:
                (await client.post(url, json=body, headers={"authorization": "Bearer x"})).json()

        await asyncio.gather(*(work(clients[i % pools]) for i in range(concurrency)))
        for c in clients:
            await c.aclose()

    cpu = time.process_time()
    asyncio.run(run())
    return n / (time.process_time() - cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rpm", type=float, default=3000)
    ap.add_argument("--rpm-n", type=int, default=300)
    args = ap.parse_args()

    from valuescope.extract import ExtractOptions, run_extract

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "c.jsonl"
        _conversations(src, args.n)
        server, port = _start_server(f"{tmp}/stamps1")
        opts = ExtractOptions(
            provider="openai", model="bench", base_url=f"http://127.0.0.1:{port}/v1",
            progress=False, concurrency=args.concurrency, cache_dir=f"{tmp}/cache1",
        )  # fmt: skip
        # Warm-up on a few conversations: one-time imports (pyarrow's writer pulls in pandas)
        # are not per-request overhead.
        _conversations(Path(tmp) / "w.jsonl", 20)
        warm = ExtractOptions(**{**opts.__dict__, "cache_dir": f"{tmp}/cache0"})
        run_extract([f"{tmp}/w.jsonl"], f"{tmp}/w.parquet", warm)
        start, cpu = time.perf_counter(), time.process_time()
        s = run_extract([str(src)], f"{tmp}/f.parquet", opts)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        plain = _plain_httpx(port, args.n, args.concurrency)
        _stamps(server, f"{tmp}/stamps1")
        print(
            f"throughput: {s.requests} requests in {elapsed:.2f} s = {s.requests / elapsed:.0f} "
            f"requests/s wall, {s.requests / cpu:.0f} requests per client CPU-second "
            f"(concurrency {args.concurrency}; reading, cache, validation and output included; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
        print(f"plain httpx loop, same pools: {plain:.0f} requests per CPU-second")

        _conversations(src, args.rpm_n)
        server, port = _start_server(f"{tmp}/stamps2")
        opts = ExtractOptions(
            provider="openai", model="bench", base_url=f"http://127.0.0.1:{port}/v1",
            progress=False, concurrency=args.concurrency, cache_dir=f"{tmp}/cache2",
            rpm=args.rpm,
        )  # fmt: skip
        run_extract([str(src)], f"{tmp}/g.parquet", opts)
        stamps = sorted(_stamps(server, f"{tmp}/stamps2"))
        # The bucket starts full (one second's worth), so the held rate is measured after it.
        burst = min(max(1, int(args.rpm / 60)), len(stamps) - 2)
        steady = stamps[burst:]
        rate = (len(steady) - 1) / (steady[-1] - steady[0]) * 60
        print(
            f"rate limit: {len(stamps)} requests at --rpm {args.rpm:g}: {rate:.0f} rpm held after "
            f"the initial burst of {burst} = {100 * rate / args.rpm:.1f}% of the limit"
        )


if __name__ == "__main__":
    main()
