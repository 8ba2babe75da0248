"""The whole pipeline as a user runs it: `valuescope demo` and `run` in subprocesses, the console
script, bad inputs of every kind, the privacy rule across every output, the synthetic corpus."""

from __future__ import annotations

import pytest
from fakellm import FakeLLM


@pytest.fixture
def fake():
    """A fault-injecting LLM server on 127.0.0.1 (tests/fakellm.py)."""
    with FakeLLM() as server:
        yield server
