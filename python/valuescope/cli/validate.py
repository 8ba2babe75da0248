"""``valuescope validate``: how good the extraction and the taxonomy are (lint, a blinded review
sample, scores, run-to-run agreement, an LLM judge, a privacy audit). The work is in
``valuescope.validate``; this module only parses options and prints."""

from __future__ import annotations

from pathlib import Path

import click

from valuescope import layout
from valuescope.cli.extract import llm_options
from valuescope.cli.options import privacy_options


@click.group("validate")
def validate_command() -> None:
    """Measure the validity of an extraction, as the paper and Clio did.

    \b
    lint     checks that need no reviewer (rates with examples)
    sample   a blinded, stratified review packet (review.html, items.jsonl)
    score    accuracy with Wilson intervals, reviewer agreement (kappa, alpha)
    compare  agreement between two extraction runs or models
    judge    an LLM judge writing the human reviewer's judgments format
    privacy  Clio's privacy audit (1-5) of every published free-text string

    See docs/validate.md for the walk-through and the published figures to compare with.
    """


@validate_command.command("lint")
@click.argument("features", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--conversations",
    "logs",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="The conversation logs (JSONL or Parquet): adds the check that human values have "
    "support in the user's words.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the result as JSON (e.g. ANALYSIS_DIR/lint.json, shown in the report).",
)
@privacy_options
def lint_command(features, logs, out, min_conversations, min_users) -> None:
    """Check FEATURES for defects that need no reviewer.

    Rates of: values echoing the prompt's own examples in its order; values that are the
    schema's key names; values that are not short noun phrases; explicit values missing from
    the AI values; one answer repeated across many conversations; with --conversations, human
    values with no support in the user's words. Examples are shown only for values that pass
    the privacy thresholds."""
    from valuescope.validate.common import dump_json
    from valuescope.validate.lint import lint, summary_lines

    result = lint([str(f) for f in features], list(logs), min_conversations, min_users)
    for line in summary_lines(result):
        click.echo(line)
    if out is not None:
        dump_json(out, result)
        click.echo(f"-> {out}", err=True)


@validate_command.command("sample")
@click.argument("features", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--conversations",
    "logs",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="The conversation logs the features were extracted from (repeatable).",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--stratify",
    type=click.Choice(["response_type", "none"]),
    default="response_type",
    show_default=True,
    help="Equal shares per response type (rare types get reviewed too; score re-weights).",
)
@click.option(
    "--redact",
    is_flag=True,
    help="Scrub e-mail addresses, phone numbers, URLs and long digit runs from the text shown.",
)
def sample_command(features, logs, n, out, seed, stratify, redact) -> None:
    """Write a blinded review packet for N conversations of FEATURES to --out.

    review.html (one offline page: keyboard shortcuts, progress, judgments kept in the browser,
    Export to judgments.json), items.jsonl (the same items for other tools) and packet.json.
    The packet holds conversation text: it is row-level data, keep it where the logs are kept."""
    from valuescope.validate.sample import sample

    packet, paths = sample([str(f) for f in features], list(logs), n, out, seed, stratify, redact)
    strata = packet["sample"]["strata"]
    click.echo(f"sampled {packet['n']} conversations ({stratify}):")
    for s, info in strata.items():
        click.echo(f"  {s:<24} {info['sampled']:>5} of {info['population']}")
    click.echo(f"-> {paths['review']}\n-> {paths['items']}")
    click.echo("  (row-level data: keep the packet where the conversation logs are kept)", err=True)


@validate_command.command("score")
@click.argument("judgments", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(layout.VALIDITY),
    show_default=True,
    help="Write here (put it in the analysis directory for the report's Validity section).",
)
@click.option(
    "--packet",
    "packet_dir",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="The review packet directory: item ids are checked against its items.jsonl.",
)
def score_command(judgments, out, packet_dir) -> None:
    """Accuracy per claim type from JUDGMENTS files (review.html exports, validate judge).

    95% Wilson intervals, re-weighted to the corpus when the sample was stratified. With two or
    more reviewers: Cohen's kappa per pair and Krippendorff's alpha; with an LLM judge and
    humans: judge-vs-human agreement."""
    from valuescope.validate.common import dump_json
    from valuescope.validate.score import score, summary_lines

    result = score(list(judgments), packet_dir)
    dump_json(out, result)
    for line in summary_lines(result):
        click.echo(line)
    click.echo(f"-> {out}", err=True)


@validate_command.command("compare")
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option(
    "--taxonomy",
    type=click.Path(exists=True),
    default=None,
    help="A taxonomy directory (values_tree.csv): agreement at each tree level too.",
)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path))
@privacy_options
def compare_command(a, b, taxonomy, out, min_conversations, min_users) -> None:
    """Agreement between two extraction runs A and B over the same conversations.

    Writes agreement.json (response type and subjectivity: share equal, Cohen's kappa,
    confusion; value sets: mean Jaccard and Krippendorff's alpha with the MASI distance, per
    tree level with --taxonomy; rows in only one file counted) and least_stable_values.csv
    (values passing the privacy thresholds only)."""
    from valuescope.validate.compare import compare, summary_lines

    result = compare(a, b, out, taxonomy, min_conversations, min_users)
    for line in summary_lines(result):
        click.echo(line)
    click.echo(f"-> {out}/", err=True)


def _llm(kw: dict) -> object:
    from valuescope.cli.extract import llm_settings
    from valuescope.extract.options import ExtractOptions

    return ExtractOptions(**llm_settings(kw))


@validate_command.command("judge")
@click.argument("features", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--conversations",
    "logs",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="The conversation logs (with FEATURES; not needed with --packet).",
)
@click.option(
    "--packet",
    "packet_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Judge the items of a review packet (validate sample), so that score can set the "
    "judge beside the human reviewers.",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", "sample_seed", type=int, default=0, show_default=True)
@click.option(
    "--stratify",
    type=click.Choice(["response_type", "none"]),
    default="response_type",
    show_default=True,
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("judgments-llm.json"),
    show_default=True,
)
@llm_options
def judge_command(features, logs, packet_dir, n, sample_seed, stratify, out, **kw) -> None:
    """An LLM judge over a review sample, writing the human reviewers' judgments format.

    Give FEATURES with --conversations (a fresh stratified sample of --n), or --packet
    REVIEW_DIR (the items the humans judge). Through the extraction's runner: rate limits,
    retries, cache, --max-cost; API keys from the environment only, never written."""
    from valuescope.errors import UserError
    from valuescope.validate.judge import judge

    if packet_dir is None and not (features and logs):
        raise UserError("give FEATURES with --conversations, or --packet REVIEW_DIR")
    data, summary, failures = judge(
        _llm(kw),
        out,
        packet_dir=packet_dir,
        features=[str(f) for f in features],
        conversation_files=list(logs),
        n=n,
        seed=sample_seed,
        stratify=stratify,
        cache_dir=kw["cache_dir"],
    )
    click.echo(f"valuescope validate judge: {summary.line()}", err=True)
    click.echo(f"judged {len(data['judgments'])} items, {len(failures)} failed -> {out}")
    _stopped(summary)


@validate_command.command("privacy")
@click.argument("analysis", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--redact-below",
    type=click.IntRange(2, 5),
    default=None,
    help="Replace every string rated below this (e.g. 3) with a neutral label in the analysis "
    "files and the report, and re-render the report.",
)
@llm_options
def privacy_command(analysis, redact_below, **kw) -> None:
    """Clio's privacy audit of ANALYSIS: every published string that came from free text
    (values, task clusters, value-cluster names and descriptions) rated 1-5 by an LLM (1:
    identifies someone; 5: nothing identifying), written to ANALYSIS/privacy_audit.csv."""
    from valuescope.validate.privacy import run_privacy

    rows, summary, labels = run_privacy(analysis, _llm(kw), redact_below, kw["cache_dir"])
    click.echo(f"valuescope validate privacy: {summary.line()}", err=True)
    rated = [r["rating"] for r in rows if r["rating"] is not None]
    low = sum(1 for x in rated if x < 3)
    click.echo(
        f"audited {len(rows)} strings: {len(rated)} rated, {low} below 3"
        + (f", {len(labels)} redacted" if redact_below is not None else "")
        + f" -> {analysis}/privacy_audit.csv"
    )
    _stopped(summary)


def _stopped(summary) -> None:
    from valuescope.errors import ExtractIncomplete

    if summary.stopped:
        raise ExtractIncomplete(
            f"stopped early: {summary.stopped}; run the same command again to finish "
            "(cached answers are reused)"
        )
