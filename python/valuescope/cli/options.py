"""Options shared by several commands, defined once so that their defaults and help agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from valuescope.schema import DEFAULT_ALPHA, DEFAULT_MIN_CONVERSATIONS, DEFAULT_MIN_USERS

F = TypeVar("F", bound=Callable[..., object])

min_conversations_option = click.option(
    "--min-conversations",
    type=click.IntRange(min=1),
    default=DEFAULT_MIN_CONVERSATIONS,
    show_default=True,
    help="Privacy: publish a figure only if it describes at least this many conversations...",
)
min_users_option = click.option(
    "--min-users",
    type=click.IntRange(min=1),
    default=DEFAULT_MIN_USERS,
    show_default=True,
    help="...from at least this many distinct users.",
)
alpha_option = click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=DEFAULT_ALPHA,
    show_default=True,
    help="Family-wise error rate for the Bonferroni threshold.",
)

#: report, run and demo: the values the report's "Values to watch" section looks for.
watch_option = click.option(
    "--watch",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Values to watch, one per line: each published one's significant tasks, response "
    "types and value pairs go to values_to_watch.csv and the report's 'Values to watch' "
    "section [default: a short list from the paper, such as deception and dominance].",
)


def privacy_options(func: F) -> F:
    """--min-conversations and --min-users: Clio's aggregation rule."""
    return min_conversations_option(min_users_option(func))


def statistics_options(func: F) -> F:
    """The privacy rule and the significance level."""
    return privacy_options(alpha_option(func))


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_size(text: str) -> int:
    """'512MiB', '2GB', '1048576' -> bytes."""
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abgikm")
    unit = t[len(num) :]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value < 0:
        raise ValueError(f"{text!r} is not a size (examples: 0, 256MiB, 2GB)")
    return int(value * _UNITS[unit])


def format_size(n: int) -> str:
    """Bytes as the largest binary unit that divides them: 134217728 -> '128MiB'."""
    for unit in ("GiB", "MiB", "KiB"):
        size = _UNITS[unit.lower()]
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


class SizeParam(click.ParamType):
    """A byte size with an optional unit (KB, MB, GB, KiB, MiB, GiB)."""

    name = "size"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
