"""valuescope's errors: one base a library user can catch, ValuescopeError.

- ValuescopeError (from the native core)
  - SchemaError (also a ValueError): a batch or file whose columns break the feature schema
  - ParquetReadError (also an OSError): a file valuescope's Parquet reader cannot decode
  - UserError: bad input or options, reported by the CLI as one line naming the file (and row
    or column), exit status 2, no traceback
    - InputError (also a ValueError): a conversation file that cannot be used at all
    - ExtractError: the extraction cannot start (bad options, a missing key)
  - ExtractIncomplete: the extraction stopped early (--max-cost, a refused key); its outputs are
    written but not complete, exit status 3

The CLI shows each of these as one line; none carries a traceback.
"""

from __future__ import annotations

from valuescope._core import ParquetReadError, SchemaError, ValuescopeError


class UserError(ValuescopeError):
    """Bad input or options: reported as one line naming the file (and row or column)."""

    exit_code = 2


class InputError(UserError, ValueError):
    """The input file itself cannot be used (missing, unknown extension): the run cannot start."""


class ExtractError(UserError):
    """A user-facing error that stops the extraction before it starts (bad options, missing key)."""


class ExtractIncomplete(ValuescopeError):
    """The run stopped early (--max-cost, refused key): outputs are written, but not complete."""

    exit_code = 3


__all__ = [
    "ExtractError",
    "ExtractIncomplete",
    "InputError",
    "ParquetReadError",
    "SchemaError",
    "UserError",
    "ValuescopeError",
]
