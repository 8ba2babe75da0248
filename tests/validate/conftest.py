"""The validate stage: lint, the review packet and page (in a real browser), scores against
independent oracles with planted truth, run-to-run agreement, the LLM judge and the privacy
auditor against the fault-injecting fake and, where installed, llama.cpp."""

from __future__ import annotations

from typing import Any

import pytest
from fakellm import FakeLLM


@pytest.fixture
def fake() -> Any:
    """A fault-injecting LLM server on 127.0.0.1."""
    with FakeLLM() as server:
        yield server
