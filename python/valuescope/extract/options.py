"""The extraction stage's settings and the summary it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from valuescope._http import RetryPolicy

PROVIDERS = ("anthropic", "openai")


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
    token_budget: int = 6000  # tokens of conversation text sent; the middle is cut beyond it
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

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.transport_retries, self.backoff_base, self.backoff_max, self.max_retry_after
        )


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    retried: int = 0
    requests: int = 0
    truncated: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    priced: bool = True
    stopped: str | None = None
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
        if self.stopped:
            text += f"; stopped early: {self.stopped}"
        return text
