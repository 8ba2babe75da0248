"""``valuescope extract``: conversations in, features Parquet out.

``extract_options`` and ``extract_from_cli`` are shared with ``valuescope run``, which adds its
own options and calls ``extract_from_cli`` before the analysis."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from valuescope.cli.group import Group
from valuescope.errors import ExtractIncomplete, ExtractInterrupted
from valuescope.extract.conversations import FORMATS, FieldMap
from valuescope.extract.options import ExtractOptions, Summary
from valuescope.extract.run import run_extract
from valuescope.providers import OPENAI_MODES

F = TypeVar("F", bound=Callable[..., Any])


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


#: Every extraction option as (declarations, settings): shared by `extract` and `run`, and read
#: by `run` to tell its own options from the extraction's.
_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--provider",),
        dict(
            type=click.Choice(["anthropic", "openai"]),
            required=True,
            help="API family: anthropic (Messages API) or any OpenAI-compatible server.",
        ),
    ),
    (
        ("--model", "llm_model"),
        dict(required=True, help="Extraction model name."),
    ),
    (
        ("--base-url",),
        dict(
            default=None, help="Server URL (e.g. http://127.0.0.1:8080/v1 for llama.cpp or vLLM)."
        ),
    ),
    (
        ("--concurrency",),
        dict(
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            help="Requests in flight. Lowered to the server's slots where it says them "
            "(llama.cpp's /props), and halved after a time-out while others were in flight: a "
            "request waiting in the server's queue spends its --timeout there.",
        ),
    ),
    (
        ("--rpm",),
        dict(
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Requests per minute limit.",
        ),
    ),
    (
        ("--tpm",),
        dict(
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Tokens per minute limit (estimated from text length).",
        ),
    ),
    (
        ("--max-cost",),
        dict(
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Stop starting new conversations once this many USD are spent.",
        ),
    ),
    (
        ("--price",),
        dict(
            callback=_price,
            default=None,
            metavar="IN,OUT",
            help="USD per million input,output tokens (overrides the built-in table).",
        ),
    ),
    (
        ("--cache", "cache_dir"),
        dict(
            type=click.Path(file_okay=False),
            default=None,
            help="Cache directory [default: .valuescope-cache beside the output].",
        ),
    ),
    (
        ("--format", "fmt"),
        dict(
            type=click.Choice(FORMATS),
            default="auto",
            show_default=True,
            help="Conversation format.",
        ),
    ),
    (
        ("--id-field",),
        dict(
            default=None, help="Field holding the conversation id [default: conversation_id or id]."
        ),
    ),
    (
        ("--user-field",),
        dict(default=None, help="Field holding the user id [default: user_id or hashed_ip]."),
    ),
    (
        ("--model-field",),
        dict(default=None, help="Field holding the answering model's name [default: model]."),
    ),
    (
        ("--rejects", "rejects_path"),
        dict(
            type=click.Path(dir_okay=False),
            default=None,
            help="Rejects file [default: OUT.rejects.jsonl].",
        ),
    ),
    (
        ("--limit",),
        dict(type=click.IntRange(min=0), default=None, help="Only the first N input records."),
    ),
    (
        ("--batch",),
        dict(
            is_flag=True,
            help="Anthropic Message Batches API (half price, results within 24 hours).",
        ),
    ),
    (
        ("--subjectivity",),
        dict(
            type=click.Choice(["combined", "separate"]),
            default="combined",
            show_default=True,
            help="separate: a cheap subjectivity call first; non-subjective stop there.",
        ),
    ),
    (
        ("--structured",),
        dict(
            type=click.Choice(["auto", *OPENAI_MODES]),
            default="auto",
            show_default=True,
            help="OpenAI-compatible structured-output mode.",
        ),
    ),
    (("--max-tokens",), dict(type=click.IntRange(min=16), default=1024, show_default=True)),
    (
        ("--token-budget",),
        dict(
            type=click.IntRange(min=100),
            default=None,
            help="Tokens of conversation text sent; the middle is cut beyond. Default: 6000, or "
            "less where the server says its context size (llama.cpp, vLLM). A prompt the server "
            "still refuses as too long is shortened to the size it states and sent again.",
        ),
    ),
    (("--temperature",), dict(type=click.FloatRange(0, 2), default=0.0, show_default=True)),
    (
        ("--timeout",),
        dict(
            type=click.FloatRange(min=0, min_open=True),
            default=120.0,
            show_default=True,
            help="Seconds per request.",
        ),
    ),
    (
        ("--retries",),
        dict(
            type=click.IntRange(min=0),
            default=8,
            show_default=True,
            help="Transport retries per request (429, 5xx, time-outs).",
        ),
    ),
    (
        ("--reasks",),
        dict(
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="Re-asks per conversation after an invalid answer (validation budget).",
        ),
    ),
    (
        ("--retry-wait",),
        dict(
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            help="First backoff in seconds (doubles per retry, with jitter; Retry-After wins).",
        ),
    ),
    (
        ("--sample",),
        dict(
            type=click.FloatRange(0, 1, min_open=True),
            default=None,
            metavar="FRACTION",
            help="Only this fraction of the conversations, chosen by a hash of --seed and the "
            "conversation id (a rerun for `validate compare`: the same ids whatever the order).",
        ),
    ),
    (
        ("--seed",),
        dict(type=int, default=0, show_default=True, help="Seed of the --sample choice."),
    ),
    (
        ("--refresh",),
        dict(
            is_flag=True,
            help="Ask the model again instead of reading cached answers (the new answers "
            "replace them in the cache; give --cache DIR to keep the first run's).",
        ),
    ),
    (("--progress/--no-progress",), dict(default=True, show_default=True)),
    (
        ("--grace",),
        dict(
            type=click.FloatRange(min=0),
            default=5.0,
            show_default=True,
            help="After Ctrl-C or SIGTERM: seconds the requests in flight get to finish before "
            "they are cancelled; then the features and rejects of what is done are written and "
            "the run exits 130 (143 for SIGTERM). The same command resumes from the cache.",
        ),
    ),
]

#: The options of any structured LLM task, not only extraction (validate's judge and privacy
#: auditor take these and no others).
LLM_OPTION_NAMES = (
    "provider", "llm_model", "base_url", "concurrency", "rpm", "tpm", "max_cost", "price",
    "cache_dir", "structured", "max_tokens", "temperature", "timeout", "retries", "reasks",
    "retry_wait", "refresh", "progress",
)  # fmt: skip


def extract_param_names() -> list[str]:
    """The keyword names that ``extract_options`` adds (for ``run`` to split its kwargs)."""
    return [click.Option(list(decls)).name or "" for decls, _attrs in _OPTIONS]


def split_extract_kwargs(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the extraction options, everything else) from a command's kwargs."""
    names = set(extract_param_names())
    return {k: v for k, v in kw.items() if k in names}, {
        k: v for k, v in kw.items() if k not in names
    }


def llm_options(func: F) -> F:
    """Attach the options of a structured LLM task (provider, model, limits, retries, cache)."""
    for decls, attrs in reversed(_OPTIONS):
        if click.Option(list(decls)).name in LLM_OPTION_NAMES:
            func = click.option(*decls, **attrs)(func)
    return func


def llm_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """ExtractOptions keyword arguments from the parsed ``llm_options``."""
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
    for decls, attrs in reversed(_OPTIONS):
        func = click.option(*decls, **attrs)(func)
    return func


def extract_from_cli(conversations: tuple[str, ...], out: str, **kw: Any) -> Summary:
    """Run the extraction from the parsed options; print the summary; raise the CLI errors."""
    opts = ExtractOptions(
        **llm_settings(kw),
        limit=kw["limit"],
        batch=kw["batch"],
        subjectivity=kw["subjectivity"],
        token_budget=kw["token_budget"],
        grace=kw["grace"],
        sample=kw["sample"],
        seed=kw["seed"],
    )
    fields = FieldMap(kw["id_field"], kw["user_field"], kw["model_field"])
    # ExtractError and InputError (exit status 2) reach the command group, which prints them
    summary = run_extract(
        conversations, out, opts, kw["fmt"], fields, rejects_path=kw["rejects_path"]
    )
    click.echo(f"valuescope extract: {summary.line()}", err=True)
    click.echo(f"  features: {summary.out}\n  rejects:  {summary.rejects}", err=True)
    if opts.max_cost is not None and not summary.priced:
        click.echo(
            "  warning: no price known for this model, --max-cost was not enforced; "
            "give --price IN,OUT",
            err=True,
        )
    if summary.interrupted is not None:
        import signal

        name = signal.Signals(summary.interrupted).name
        raise ExtractInterrupted(
            f"interrupted by {name}: {summary.done} answers are cached in {summary.cache} "
            f"({summary.done - summary.cached} new this run); the conversations not processed "
            f"are listed in {summary.rejects}. Run the same command again to resume: cached "
            "answers are not paid for twice.",
            summary.interrupted,
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


def main() -> None:  # pragma: no cover - for `python -m valuescope.cli.extract`
    # under a group of its own, for the group's one-line errors and exit statuses
    Group(commands=[extract_command])(["extract", *sys.argv[1:]], prog_name="valuescope")


if __name__ == "__main__":  # pragma: no cover
    main()
