"""``valuescope extract``: conversations in, features Parquet out.

``extract_options`` and ``extract_from_cli`` are shared with ``valuescope run``, which adds its
own options and calls ``extract_from_cli`` before the analysis."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from valuescope.conversations import FORMATS, FieldMap, InputError
from valuescope.extract.providers import OPENAI_MODES
from valuescope.extract.runner import ExtractError, ExtractOptions, Summary, run_extract

F = TypeVar("F", bound=Callable[..., Any])


class ExtractUsageError(click.ClickException):
    """A user error: one line on stderr, exit status 2, no traceback."""

    exit_code = 2


class ExtractIncomplete(click.ClickException):
    """The run stopped early (--max-cost, refused key): outputs are written, but not complete."""

    exit_code = 3


def _price(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        a, b = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("expected IN,OUT in USD per million tokens, e.g. 0.8,4") from None
    if a < 0 or b < 0:
        raise click.BadParameter("prices must not be negative")
    return (a, b)


#: The options of any structured LLM task (extraction, the validate judge and privacy auditor).
LLM_OPTIONS = [
    click.option(
        "--provider",
        type=click.Choice(["anthropic", "openai"]),
        required=True,
        help="API family: anthropic (Messages API) or any OpenAI-compatible server.",
    ),
    click.option("--model", "llm_model", required=True, help="Extraction model name."),
    click.option(
        "--base-url",
        default=None,
        help="Server URL (e.g. http://127.0.0.1:8080/v1 for llama.cpp or vLLM).",
    ),
    click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True),
    click.option(
        "--rpm",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Requests per minute limit.",
    ),
    click.option(
        "--tpm",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Tokens per minute limit (estimated from text length).",
    ),
    click.option(
        "--max-cost",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Stop starting new conversations once this many USD are spent.",
    ),
    click.option(
        "--price",
        callback=_price,
        default=None,
        metavar="IN,OUT",
        help="USD per million input,output tokens (overrides the built-in table).",
    ),
    click.option(
        "--cache",
        "cache_dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Cache directory [default: .valuescope-cache beside the output].",
    ),
    click.option(
        "--structured",
        type=click.Choice(["auto", *OPENAI_MODES]),
        default="auto",
        show_default=True,
        help="OpenAI-compatible structured-output mode.",
    ),
    click.option("--max-tokens", type=click.IntRange(min=16), default=1024, show_default=True),
    click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=120.0,
        show_default=True,
        help="Seconds per request.",
    ),
    click.option(
        "--retries",
        type=click.IntRange(min=0),
        default=8,
        show_default=True,
        help="Transport retries per request (429, 5xx, time-outs).",
    ),
    click.option(
        "--reasks",
        type=click.IntRange(min=0),
        default=1,
        show_default=True,
        help="Re-asks per conversation after an invalid answer (validation budget).",
    ),
    click.option(
        "--retry-wait",
        type=click.FloatRange(min=0),
        default=1.0,
        show_default=True,
        help="First backoff in seconds (doubles per retry, with jitter; Retry-After wins).",
    ),
    click.option(
        "--refresh",
        is_flag=True,
        help="Ask the model again instead of reading cached answers (the new answers replace "
        "them in the cache; give --cache DIR to keep the first run's).",
    ),
    click.option("--progress/--no-progress", default=True, show_default=True),
]

_OPTIONS = [
    *LLM_OPTIONS,
    click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="auto",
        show_default=True,
        help="Conversation format.",
    ),
    click.option(
        "--id-field",
        default=None,
        help="Field holding the conversation id [default: conversation_id or id].",
    ),
    click.option(
        "--user-field",
        default=None,
        help="Field holding the user id [default: user_id or hashed_ip].",
    ),
    click.option(
        "--model-field",
        default=None,
        help="Field holding the answering model's name [default: model].",
    ),
    click.option(
        "--rejects",
        "rejects_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Rejects file [default: OUT.rejects.jsonl].",
    ),
    click.option(
        "--limit", type=click.IntRange(min=0), default=None, help="Only the first N input records."
    ),
    click.option(
        "--batch",
        is_flag=True,
        help="Anthropic Message Batches API (half price, results within 24 hours).",
    ),
    click.option(
        "--subjectivity",
        type=click.Choice(["combined", "separate"]),
        default="combined",
        show_default=True,
        help="separate: a cheap subjectivity call first; non-subjective stop there.",
    ),
    click.option(
        "--token-budget",
        type=click.IntRange(min=100),
        default=6000,
        show_default=True,
        help="Conversation tokens sent; the middle is cut beyond.",
    ),
    click.option(
        "--sample",
        type=click.FloatRange(0, 1, min_open=True),
        default=None,
        metavar="FRACTION",
        help="Only this fraction of the conversations, chosen by a hash of --seed and the "
        "conversation id (a rerun for `validate compare`: the same ids whatever the order).",
    ),
    click.option(
        "--seed", type=int, default=0, show_default=True, help="Seed of the --sample choice."
    ),
]


def extract_param_names() -> list[str]:
    """The keyword names that ``extract_options`` adds (for ``run`` to split its kwargs)."""

    def probe() -> None:
        pass

    cmd = click.command()(extract_options(probe))
    return [p.name for p in cmd.params if p.name]


def split_extract_kwargs(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the extraction options, everything else) from a command's kwargs."""
    names = set(extract_param_names())
    return {k: v for k, v in kw.items() if k in names}, {
        k: v for k, v in kw.items() if k not in names
    }


def llm_options(func: F) -> F:
    """Attach the options of a structured LLM task (provider, model, limits, retries, cache)."""
    for option in reversed(LLM_OPTIONS):
        func = option(func)
    return func


def llm_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """ExtractOptions keyword arguments from the parsed ``LLM_OPTIONS``."""
    return {
        "provider": kw["provider"],
        "model": kw["llm_model"],
        "base_url": kw["base_url"],
        "concurrency": kw["concurrency"],
        "rpm": kw["rpm"],
        "tpm": kw["tpm"],
        "max_cost": kw["max_cost"],
        "price": kw["price"],
        "cache_dir": kw["cache_dir"],
        "structured": kw["structured"],
        "max_tokens": kw["max_tokens"],
        "temperature": kw["temperature"],
        "timeout": kw["timeout"],
        "transport_retries": kw["retries"],
        "backoff_base": kw["retry_wait"],
        "validation_retries": kw["reasks"],
        "refresh": kw["refresh"],
        "progress": kw["progress"],
    }


def extract_options(func: F) -> F:
    """Attach every extraction option (shared by ``extract`` and ``run``)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def extract_from_cli(conversations: tuple[str, ...], out: str, **kw: Any) -> Summary:
    """Run the extraction from the parsed options; print the summary; raise the CLI errors."""
    opts = ExtractOptions(
        **llm_settings(kw),
        limit=kw["limit"],
        batch=kw["batch"],
        subjectivity=kw["subjectivity"],
        token_budget=kw["token_budget"],
        sample=kw["sample"],
        seed=kw["seed"],
    )
    fields = FieldMap(kw["id_field"], kw["user_field"], kw["model_field"])
    try:
        summary = run_extract(
            conversations, out, opts, kw["fmt"], fields, rejects_path=kw["rejects_path"]
        )
    except (ExtractError, InputError) as exc:
        raise ExtractUsageError(str(exc)) from None
    click.echo(f"valuescope extract: {summary.line()}", err=True)
    click.echo(f"  features: {summary.out}\n  rejects:  {summary.rejects}", err=True)
    if opts.max_cost is not None and not summary.priced:
        click.echo(
            "  warning: no price known for this model, --max-cost was not enforced; "
            "give --price IN,OUT",
            err=True,
        )
    if summary.stopped:
        raise ExtractIncomplete(
            f"stopped early: {summary.stopped}; the conversations not processed are in "
            f"{summary.rejects}; run the same command again to finish (cached answers are reused)"
        )
    return summary


@click.command("extract")
@click.argument("conversations", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False), help="Features Parquet to write."
)
@extract_options
def extract_command(conversations: tuple[str, ...], out: str, **kw: Any) -> None:
    """Extract per-conversation features (values, task, response type) with an LLM.

    CONVERSATIONS are JSONL or Parquet files of chat logs. API keys are read from
    ANTHROPIC_API_KEY or OPENAI_API_KEY only."""
    extract_from_cli(conversations, out, **kw)


def main() -> None:  # pragma: no cover - for `python -m valuescope.cli_extract`
    extract_command(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
