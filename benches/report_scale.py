"""Time and memory of `valuescope report` at deployment scale.

    python benches/report_scale.py [--repeat 3]

Generates an analysis directory shaped like a 10M-conversation run (tests/helpers/large_analysis.py:
20,000 AI values, million-cell tables, 28 model pairs) and writes its report in a fresh process
each time, printing wall time, CPU time (all threads) and the child's peak RSS, and the size of
the two files. The test suite checks the report's size and capping at this scale; the time is
measured here, not asserted there.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def child(analysis: str) -> None:
    from valuescope.report import write_report

    t0, c0 = time.perf_counter(), time.process_time()
    html, md = write_report(Path(analysis))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = html.stat().st_size + md.stat().st_size
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "mb": size / 1e6}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(TESTS))
    from helpers.large_analysis import N, make_large_analysis

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        analysis = make_large_analysis(Path(tmp) / "analysis")
        took = time.perf_counter() - t0
        print(f"analysis shaped like {N:,} conversations generated in {took:.1f}s")
        for i in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(analysis)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"run {i + 1}: {r['wall_s']:.2f}s wall, {r['cpu_s']:.2f}s CPU, "
                f"peak RSS {rss:.0f} MB (max over runs so far), report {r['mb']:.2f} MB"
            )


if __name__ == "__main__":
    main()
