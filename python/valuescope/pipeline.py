"""The one stage sequence behind `valuescope run` and `valuescope demo`:

    features (extracted from chat logs, or synthesised) -> taxonomy -> analyze -> report

Each stage writes its files under the run directory (valuescope.layout), so any stage can be rerun
on its own afterwards with its own command. The two commands differ only in where the features
come from and in the settings they pass.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valuescope import layout
from valuescope.analyze.options import AnalyzeOptions
from valuescope.analyze.run import analyze_files
from valuescope.report import write_report
from valuescope.taxonomy.options import TaxonomyOptions
from valuescope.taxonomy.run import run_taxonomy

#: Columns an extracted features file carries about its extraction (extract.output).
PROVENANCE_COLUMNS = {"extraction_model": "model", "prompt_version": "prompt_version"}


@dataclass
class PipelineResult:
    features: Path
    analysis: Path
    report_html: Path
    report_md: Path
    summary: dict[str, Any]


def run_pipeline(
    out: Path,
    make_features: Callable[[Path], object],
    source: str,
    analyze: AnalyzeOptions,
    taxonomy: TaxonomyOptions | None = None,
    echo: Callable[[str], None] = print,
    watch: Path | None = None,
) -> PipelineResult:
    """Runs the stages into `out`: `make_features(path)` writes the features (`source` says how,
    for the progress lines), `taxonomy` builds the value tree (None: no taxonomy), `analyze`
    computes the statistics, then the report is written (`watch`: the values to watch, None:
    the default list)."""
    out.mkdir(parents=True, exist_ok=True)
    features = out / layout.FEATURES
    analysis = out / layout.ANALYSIS_DIR
    echo(f"1/4 {source}")
    make_features(features)
    inputs = [features]
    if taxonomy is not None:
        echo("2/4 building the value taxonomy (embeddings, Rust k-means)")
        tax_dir = analysis / layout.TAXONOMY_DIR
        tax = run_taxonomy([features], tax_dir, taxonomy)
        if "features" in tax.files:  # the clustered copy, with task clusters and value levels
            inputs = [tax_dir / tax.files["features"]]
    echo("3/4 analysing")
    rep = analyze_files(inputs, analysis, analyze, summary_extra=provenance(features))
    echo("4/4 writing the report")
    html, md = write_report(analysis, watch=watch)
    return PipelineResult(features, analysis, Path(html), Path(md), rep.summary)


def provenance(features: Path) -> dict[str, Any] | None:
    """The extraction model and prompt version, from the features' own columns, for the
    report's method section; None for features without them (synthesised ones)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cols = [c for c in PROVENANCE_COLUMNS if c in pq.read_schema(features).names]
    if not cols:
        return None
    table = pq.read_table(features, columns=cols)
    found = {c: sorted(v for v in pc.unique(table[c]).to_pylist() if v) for c in cols}
    return {
        "extraction": {
            key: ", ".join(found.get(col, [])) or None for col, key in PROVENANCE_COLUMNS.items()
        }
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def headline(analysis: Path, top: int = 5) -> str:
    """A few lines of findings, read back from the written (already privacy-suppressed)
    analysis files, never from the features."""
    s = json.loads((analysis / layout.SUMMARY).read_text(encoding="utf-8"))
    lines = [
        f"{s['n_conversations']:,} conversations analysed; "
        f"{s['pct_with_ai_values'] or 0:.1f}% express AI values "
        f"({s['mean_ai_values'] or 0:.2f} per conversation), "
        f"{s['pct_with_human_values'] or 0:.1f}% state human values.",
        "",
        "Top AI values (% of conversations):",
    ]
    for r in _rows(analysis / layout.RESULT_FILES["ai_values"])[:top]:
        lines.append(f"  {r['value']:<28} {float(r['pct_convos']):6.2f}%")
    lines += ["", "Response types (% of all / % with human values):"]
    for r in _rows(analysis / layout.RESULT_FILES["response_types"]):
        wh = r["pct_with_human_values"]
        lines.append(
            f"  {r['response_type']:<24} {float(r['pct_all']):6.2f}%"
            f" / {float(wh) if wh else float('nan'):6.2f}%"
        )
    tables = sorted((analysis / layout.TABLES_DIR).glob("ai_values__task*.csv"))
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
    within = analysis / layout.RESULT_FILES["model_comparison_within_tasks"]
    if within.is_file():
        raw = [r for r in _rows(within) if r["significant_raw"] == "true"]
        explained = [r for r in raw if r["significant_within"] != "true"]
        explained.sort(key=lambda r: -abs(float(r["z_raw"])))
        lines += [
            "",
            f"Model differences within tasks: of {len(raw)} significant raw differences, "
            f"{len(raw) - len(explained)} hold within task clusters (Cochran-Mantel-Haenszel) "
            f"and {len(explained)} are explained by the models' task mix"
            + (
                ", e.g. "
                + "; ".join(
                    f"{r['item']} ({r['model_a']} vs {r['model_b']})" for r in explained[:3]
                )
                if explained
                else ""
            )
            + ".",
        ]
    pairs = analysis / layout.RESULT_FILES["value_pairs"]
    if pairs.is_file():
        opposing = [r for r in _rows(pairs) if r["pattern"] == "opposing"]
        opposing.sort(key=lambda r: -float(r["residual"]))
        if opposing:
            lines += ["", "Opposing value pairs (the user's value met mostly with resistance):"]
            for r in opposing[:top]:
                lines.append(f"  {r['human_value']:<28} -> {r['ai_value']}")
    return "\n".join(lines)
