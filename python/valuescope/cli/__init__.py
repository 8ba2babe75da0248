"""The `valuescope` command line."""

from __future__ import annotations

import os
import sys

import click

from valuescope._core import __version__
from valuescope.cli.group import Group

# One module per command, imported only when named: `analyze` then starts without loading the
# extraction stack (httpx, asyncio), about 0.1 s and 20 MB.
LAZY_COMMANDS = {
    "analyze": "valuescope.cli.analyze:analyze_command",
    "demo": "valuescope.cli.demo:demo_command",
    "diff": "valuescope.cli.diff:diff_command",
    "extract": "valuescope.cli.extract:extract_command",
    "report": "valuescope.cli.report:report_command",
    "run": "valuescope.cli.run:run_command",
    "validate": "valuescope.cli.validate:validate_command",
    "synth": "valuescope.cli.synth:synth_command",
    "taxonomy": "valuescope.cli.taxonomy:taxonomy_command",
}


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="valuescope")
def main() -> None:
    """Measure which values language models express in real conversations.

    Stages: extract (LLM features) -> taxonomy -> analyze (statistics) -> report.
    Start with `valuescope demo`: no data and no API key needed.
    """
    # OpenBLAS (loaded with numpy, under pyarrow) starts a worker per core that spins while
    # idle: 4% of analyze's CPU on 2 cores, taken from the engine. valuescope's own matrix
    # products are small (taxonomy similarities), so one BLAS thread serves. Set before numpy
    # loads; a value the user set wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # pyarrow's default pool (mimalloc) keeps the pages of freed batches: reading a file
    # batch by batch peaks 30-75 MB higher than with the system allocator, at the same speed
    # (benches/RESULTS.md). Chosen before pyarrow loads: switched after, pyarrow's readers
    # have already started a mimalloc arena (about 30 MB more at 2M rows).
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


main.lazy_commands = LAZY_COMMANDS


def console() -> None:
    """The `valuescope` console script: `main`, then a fast exit once a command has succeeded.

    By then every command has closed what it opened (files, pools, clusters, connections) in
    with-blocks; all the interpreter's own teardown would still do is free memory and unload
    modules, about 45 ms after a 2M-row `analyze` (1 s). Failures exit the normal way, so that
    nothing about an error is cut short. In-process callers (tests, notebooks) use `main`.
    """
    try:
        main.main(prog_name="valuescope")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that has gone, a stream already closed
        pass
    os._exit(0)


if __name__ == "__main__":
    console()
