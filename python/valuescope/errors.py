"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or options: reported as one line naming the file (and row or column)."""

    exit_code = 2
