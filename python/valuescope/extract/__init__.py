"""The extraction stage: chat logs in, one structured LLM call per conversation, features out.

conversations (readers of the chat-log formats) -> prompts (rendering) -> providers (wire formats)
-> calls (one conversation: HTTP through the shared retry policy, validation, re-asks; answer,
cache, pricing, ratelimit, redact serve it) -> batch (Anthropic's Message Batches) -> run (the
stage: concurrency, features and rejects written by output). on_dask spreads files over a cluster.
"""

from valuescope.errors import ExtractError
from valuescope.extract.options import ExtractOptions, Summary
from valuescope.extract.run import run_extract

__all__ = ["ExtractError", "ExtractOptions", "Summary", "run_extract"]
