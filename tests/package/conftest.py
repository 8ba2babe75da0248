"""The package as a whole: its layout rules (no import cycle, one error base, the public API) and
the HTTP retry policy every stage shares."""

from __future__ import annotations

import pytest
from valuescope import _http


@pytest.fixture
def waits(monkeypatch):
    """The waits of the synchronous retry loop, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(_http.time, "sleep", slept.append)
    return slept
