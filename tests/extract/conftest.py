"""The extraction stage against a real local HTTP server that injects faults (tests/fakellm.py), and
against llama.cpp's server where it is installed."""

from __future__ import annotations

from typing import Any

import pytest
from fakellm import FakeLLM


@pytest.fixture
def fake() -> Any:
    """A fault-injecting LLM server on 127.0.0.1; slow requests take 1.5 s."""
    with FakeLLM(slow_seconds=1.5) as server:
        yield server
