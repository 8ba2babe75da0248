"""Shared by every test folder: the helpers (tests/helpers, and the fake LLM server and the plain-
Python oracle beside this file) importable by name."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers.llama import llama_server  # noqa: E402, F401  (the session's one llama.cpp server)
