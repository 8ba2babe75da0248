"""`valuescope demo`: synthetic corpus -> analysis -> report, then a short printed summary.

Needs no network and no API key. The summary is read back from the written (already
privacy-suppressed) analysis files, never from the features.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import click

from valuescope.analyze import AnalyzeOptions, analyze_files


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run_demo(
    n: int,
    out: Path,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] = click.echo,
) -> Path:
    from valuescope.synth import write_corpus

    out.mkdir(parents=True, exist_ok=True)
    features = out / "features.parquet"
    analysis = out / "analysis"
    t0 = time.perf_counter()
    echo(f"1/4 synthesising {n:,} conversations' features -> {features}")
    write_corpus(features, n=n, seed=seed, progress=progress)
    echo("2/4 analysing")
    analyze_files([features], analysis, AnalyzeOptions(progress=progress))
    echo("3/4 building the value taxonomy (offline MiniLM embeddings, Rust k-means)")
    _taxonomy(features, analysis / "taxonomy", seed)
    echo("4/4 writing the report")
    report = _maybe_report(analysis)
    echo("")
    echo(summarize(analysis))
    echo("")
    echo(f"done in {time.perf_counter() - t0:.1f}s. Files:")
    echo(f"  features  {features}")
    echo(f"  analysis  {analysis}/ (summary.json, ai_values.csv, tables/, ...)")
    echo(f"  report    {report} (open it in a browser)")
    return analysis


def _taxonomy(features: Path, out: Path, seed: int) -> None:
    from valuescope.taxonomy_run import TaxonomyOptions, run_taxonomy

    # the synthetic corpus already has task clusters: only the value tree and the comparison
    # with the published taxonomy are needed, not a clustered copy of the features
    run_taxonomy(
        [features], out, TaxonomyOptions(reference="vitw", seed=seed, write_features=False)
    )


def _maybe_report(analysis: Path) -> Path:
    from valuescope.report import write_report

    html, _md = write_report(analysis)
    return Path(html)


def summarize(analysis: Path, top: int = 5) -> str:
    s = json.loads((analysis / "summary.json").read_text(encoding="utf-8"))
    lines = [
        f"{s['n_conversations']:,} conversations analysed; "
        f"{s['pct_with_ai_values'] or 0:.1f}% express AI values "
        f"({s['mean_ai_values'] or 0:.2f} per conversation), "
        f"{s['pct_with_human_values'] or 0:.1f}% state human values.",
        "",
        "Top AI values (% of conversations):",
    ]
    for r in _rows(analysis / "ai_values.csv")[:top]:
        lines.append(f"  {r['value']:<28} {float(r['pct_convos']):6.2f}%")
    lines += ["", "Response types (% of all / % with human values):"]
    for r in _rows(analysis / "response_types.csv"):
        wh = r["pct_with_human_values"]
        lines.append(
            f"  {r['response_type']:<24} {float(r['pct_all']):6.2f}%"
            f" / {float(wh) if wh else float('nan'):6.2f}%"
        )
    tables = sorted((analysis / "tables").glob("ai_values__task*.csv"))
    if tables:
        cells = [c for c in _rows(tables[0]) if c["significant"] == "true"]
        cells.sort(key=lambda c: -float(c["adjusted_residual"]))
        meta = json.loads(tables[0].with_suffix(".json").read_text(encoding="utf-8"))
        lines += [
            "",
            f"Strongest value-task associations (adjusted residual > "
            f"{meta['threshold']:.2f}, Bonferroni over {meta['n_tests']} tests):",
        ]
        for c in cells[:top]:
            lines.append(
                f"  {c['row']:<28} in {c['col']:<28} r = {float(c['adjusted_residual']):6.1f}"
            )
    within = analysis / "model_comparison_within_tasks.csv"
    if within.is_file():
        rows = [r for r in _rows(within) if r["feature"] == "ai_values"]
        lines += ["", "Model differences tested within task clusters (CMH, Bonferroni):"]
        for verdict in ("explained by task mix", "holds within tasks"):
            hits = [r for r in rows if r["verdict"] == verdict]
            hits.sort(key=lambda r: -abs(float(r["pct_a"]) - float(r["pct_b"])))
            for r in hits[:2]:
                lines.append(
                    f"  {r['value']:<24} {r['model_a']} {float(r['pct_a']):5.2f}% vs "
                    f"{r['model_b']} {float(r['pct_b']):5.2f}%: {verdict}"
                )
    return "\n".join(lines)
