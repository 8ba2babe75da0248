"""How one conversation's extraction can end other than with features: the signals the runner and
the batch pass up to the stage, which turns them into rejects or a stop."""

from __future__ import annotations

from valuescope.extract.context import Overflow as ContextRefusal


class Failure(Exception):
    """One conversation failed for good; the message (already redacted) is the reject reason."""


class Fatal(Exception):
    """The whole run must stop (authentication refused): no other request can succeed."""


class Overflow(Exception):
    """The server refused the prompt as longer than its context."""

    def __init__(self, overflow: ContextRefusal) -> None:
        super().__init__(overflow.message)
        self.overflow = overflow
