"""Peak memory of reading a large JSON array of conversations (issue 20).

    python benches/json_array_rss.py --gb 1.0 [--dir DIR] [--keep]

Writes a ShareGPT-style JSON array of about ``--gb`` gigabytes (long multi-turn chats, code with
escaped quotes and newlines, one malformed record in the middle and a file cut off inside its
last record), then reads it in a fresh process with ``read_conversations``, the way
``valuescope extract`` does, and reports the records read, the rejects, the time and the child
process's peak RSS. Reading a JSON array whole took about ten times the file's size; read
record by record, memory stays at one record and a read buffer beyond the interpreter's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE = ('def f(x):\n    """Return \\"x\\" squared."""\n    return {"x": [x, x * x]}  # {[(\n') * 12


def record(i: int) -> dict:
    turns = []
    for t in range(6):
        turns.append(
            {"from": "human", "value": f"Turn {t} of chat {i}: why does this fail?\n" + CODE}
        )
        turns.append({"from": "gpt", "value": "Because the loop never ends. Try:\n" + CODE})
    return {"id": f"sharegpt-{i}", "conversations": turns}


def write(path: Path, gb: float) -> int:
    target = int(gb * 1e9)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[\n")
        written = 2
        while written < target:
            if n:
                fh.write(",\n")
            text = json.dumps(record(n))
            if n == 1000:  # a malformed record mid-array: its closing bracket is missing
                text = text[:-2] + "}"
            fh.write(text)
            written += len(text) + 2
            n += 1
        fh.write(',\n{"id": "cut", "conversations": [{"from": "human", "value": "cut o')
    return n + 1


def read(path: str) -> None:
    from valuescope.conversations import Rejected, read_conversations

    t0 = time.perf_counter()
    good = bad = 0
    reasons = []
    for item in read_conversations([path]):
        if isinstance(item, Rejected):
            bad += 1
            reasons.append(f"row {item.row}: {item.reason[:60]}")
        else:
            good += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "records": good,
                "rejects": bad,
                "reasons": reasons,
                "seconds": round(time.perf_counter() - t0, 1),
                "peak_rss_mb": round(peak, 1),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--dir", default=None, help="where to write the file (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated file")
    ap.add_argument("--read", default=None, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.read:
        read(args.read)
        return
    d = Path(args.dir or tempfile.mkdtemp(prefix="vs-json-"))
    path = d / "dump.json"
    t0 = time.perf_counter()
    n = write(path, args.gb)
    size = os.path.getsize(path)
    print(f"wrote {n:,} records, {size / 1e9:.2f} GB in {time.perf_counter() - t0:.0f}s: {path}")
    out = subprocess.run(
        [sys.executable, __file__, "--read", str(path)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    print(json.dumps(result, indent=2))
    if not args.keep:
        path.unlink()
    assert result["records"] + result["rejects"] == n, "a record was lost"


if __name__ == "__main__":
    main()
