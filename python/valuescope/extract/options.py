"""The extraction stage's settings and the summary it reports."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from valuescope._http import RetryPolicy

PROVIDERS = ("anthropic", "openai")
DEFAULT_TOKEN_BUDGET = 6000


@dataclass
class ExtractOptions:
    provider: str
    model: str
    base_url: str | None = None
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    max_cost: float | None = None
    cache_dir: str | None = None  # default: ".valuescope-cache" beside the output
    max_tokens: int = 1024
    temperature: float = 0.0
    #: Tokens of conversation text sent; the middle is cut beyond it. None: DEFAULT_TOKEN_BUDGET,
    #: or less where the server says its context is smaller (llama.cpp, vLLM).
    token_budget: int | None = None
    transport_retries: int = 8
    validation_retries: int = 1
    timeout: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 120.0
    subjectivity: str = "combined"  # or "separate": a cheap first call; non-subjective stop there
    structured: str = "auto"  # openai only: auto or one of OPENAI_MODES
    batch: bool = False  # anthropic only: Message Batches API
    batch_poll_interval: float = 30.0
    batch_size: int = 10_000
    limit: int | None = None
    price: tuple[float, float] | None = None  # USD per million tokens (input, output)
    progress: bool = True
    #: After SIGINT/SIGTERM, seconds the requests already sent get to finish before they are
    #: cancelled (their answers are cached if they make it).
    grace: float = 5.0
    # A rerun for validation: only the conversations whose hashed id falls in the sample, and
    # fresh answers instead of the cached ones (the cache is then updated with them).
    sample: float | None = None
    seed: int = 0
    refresh: bool = False

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.transport_retries, self.backoff_base, self.backoff_max, self.max_retry_after
        )


def in_sample(conversation_id: str, fraction: float, seed: int) -> bool:
    """Whether a conversation is in a --sample: decided by a hash of (seed, id), so the same
    conversations are chosen whatever the order or the files they come in."""
    digest = hashlib.sha256(f"{seed}\0{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    retried: int = 0
    requests: int = 0
    truncated: int = 0
    skipped: int = 0  # outside --sample
    repaired: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    priced: bool = True
    stopped: str | None = None
    interrupted: int | None = None  # the signal that stopped the run
    scrubbed: int = 0  # values dropped because nothing but a scrub placeholder was left
    out: str = ""
    rejects: str = ""
    cache: str = ""
    batch_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        cost = f"${self.cost:.4f}" if self.priced else "cost unknown (no price for this model)"
        text = (
            f"{self.done} extracted ({self.cached} from cache), {self.failed} rejected, "
            f"{self.retried} retries, {self.requests} requests, "
            f"{self.input_tokens}+{self.output_tokens} tokens, {cost}"
        )
        if self.scrubbed:
            text += f"; {self.scrubbed} values dropped as personal details (scrubbed)"
        if self.repaired:
            text += "; repaired: " + ", ".join(f"{n} {k}" for k, n in sorted(self.repaired.items()))
        if self.skipped:
            text += f"; {self.skipped} outside the --sample"
        if self.stopped:
            text += f"; stopped early: {self.stopped}"
        return text
