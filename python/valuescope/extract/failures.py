"""How one conversation's extraction can end other than with features: the signals the runner and
the batch pass up to the stage, which turns them into rejects or a stop."""

from __future__ import annotations


class Failure(Exception):
    """One conversation failed for good; the message (already redacted) is the reject reason."""


class Fatal(Exception):
    """The whole run must stop (authentication refused): no other request can succeed."""
