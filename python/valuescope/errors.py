"""valuescope's errors: one base a library user can catch, ValuescopeError.

- ValuescopeError (from the native core)
  - SchemaError (also a ValueError): a batch or file whose columns break the feature schema
  - ParquetReadError (also an OSError): a file valuescope's Parquet reader cannot decode
  - ConfigError, StateError, DataError, KMeansError (also ValueErrors): settings the engine
    refuses, damaged state bytes, malformed Arrow data, k-means parameters or input
  - SpillError (also an OSError): the engine's spill files
  - UserError: bad input or options, reported by the CLI as one line naming the file (and row
    or column), exit status 2, no traceback
    - InputError (also a ValueError): a conversation file that cannot be used at all
    - ExtractError: the extraction cannot start (bad options, a missing key)
  - ExtractIncomplete: the extraction stopped early (--max-cost, a refused key); its outputs are
    written but not complete, exit status 3

The CLI shows each of these as one line; none carries a traceback.
"""

from __future__ import annotations

from valuescope._core import (
    ConfigError,
    DataError,
    KMeansError,
    ParquetReadError,
    SchemaError,
    SpillError,
    StateError,
    ValuescopeError,
)


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


class ExtractInterrupted(ExtractIncomplete):
    """SIGINT or SIGTERM stopped the extraction: outputs are written for what was done; the exit
    status is 128 + the signal (130, 143), as for a process the signal had ended."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


__all__ = [
    "ConfigError",
    "DataError",
    "ExtractError",
    "ExtractIncomplete",
    "ExtractInterrupted",
    "InputError",
    "KMeansError",
    "ParquetReadError",
    "SchemaError",
    "SpillError",
    "StateError",
    "UserError",
    "ValuescopeError",
]
