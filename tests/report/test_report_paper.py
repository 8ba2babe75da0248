"""The report's sections for the paper's further analyses (within tasks, explicit values, value
pairs) and the values to watch: rendered from the files, absent files said, privacy kept."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.features import make_rows
from helpers.paper_files import EXPLICIT_BY_RT, VALUE_PAIRS, WITHIN_TASKS, write_paper_files
from helpers.report import build_analysis
from valuescope import layout
from valuescope.cli import Group
from valuescope.cli.report import report_command
from valuescope.report import write_report
from valuescope.report.watch import NOT_PUBLISHED, read_watch_list

NEW_SECTIONS = {
    "Model differences within tasks": "model_comparison_within_tasks.csv",
    "Explicit values by response type": "explicit_by_response_type.csv",
    "Value pairs: mirroring, supporting, opposing": "value_pairs.csv",
}


def section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_absent_files_are_said_not_computed(analysis, tmp_path):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    for name in NEW_SECTIONS.values():
        (d / name).unlink(missing_ok=True)
    _, md_path = write_report(d)
    md = md_path.read_text()
    for title, name in NEW_SECTIONS.items():
        body = section(md, title).strip()
        assert body.startswith("Not computed") and name in body, (title, body)


@pytest.fixture(scope="module")
def with_files(analysis, tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("paper") / "an"
    shutil.copytree(analysis, d)
    write_paper_files(d)
    html, md = write_report(d)
    return html.read_text(), md.read_text()


def test_within_tasks_says_which_differences_survive(with_files):
    html, md = with_files
    s = section(md, "Model differences within tasks")
    raw = [r for r in WITHIN_TASKS if r[17] == "true"]
    holds = [r for r in raw if r[18] == "true"]
    only = [r for r in WITHIN_TASKS if r[17] == "false" and r[18] == "true"]
    assert (
        f"Of {len(raw)} raw differences, {len(holds)} hold within tasks and "
        f"{len(raw) - len(holds)} does not" in s
    )
    assert f"{len(only)} more appear only within tasks" in s
    assert "creative freedom: model-c vs model-a" in s  # the confounded one, named
    rows = {line.split(" | ")[0].strip("| "): line for line in s.splitlines() if "|" in line}
    assert "explained by the task mix" in rows["creative freedom"]
    assert "holds within tasks" in rows["intellectual curiosity"]
    assert "2.51 (2.10 to 3.00)" in rows["intellectual curiosity"]
    assert "helpfulness" not in rows  # significant neither raw nor within: not shown
    # Breslow-Day below the threshold: the common ratio is said to hide unequal strata
    assert "differs between task clusters for strong resistance: model-c vs model-b" in s


def test_explicit_section_pools_resistance_and_support(with_files):
    _, md = with_files
    s = section(md, "Explicit values by response type")

    def pooled(types):
        sel = [r for r in EXPLICIT_BY_RT if r[0] in types]
        return 100 * sum(r[2] for r in sel) / sum(r[1] for r in sel)

    resist = pooled({"mild resistance", "strong resistance"})
    support = pooled({"strong support", "mild support"})
    assert f"{resist:.1f}% of resisted conversations" in s
    assert f"against {support:.1f}% of supported ones" in s
    assert "more often made explicit when the AI pushes back" in s
    assert "ethical boundaries (0.50), honesty (0.30) and helpfulness (0.15)" in s
    assert "0.47 to 0.53" in s


def test_pairs_section_lists_the_opposing_pairs(with_files):
    html, md = with_files
    s = section(md, "Value pairs: mirroring, supporting, opposing")
    kinds = pd.Series([r[7] for r in VALUE_PAIRS]).value_counts()
    assert (
        f"{kinds['mirroring']} mirroring, {kinds['supporting']} supporting and "
        f"{kinds['opposing']} opposing" in s
    )
    opposing = sorted((r for r in VALUE_PAIRS if r[7] == "opposing"), key=lambda r: -r[3])
    first = opposing[0]
    assert f"{first[0]} -&gt; {first[1]}" in s or f"{first[0]} -> {first[1]}" in s
    resisted = first[5][4] + first[5][5]
    assert f"{resisted:.1f}%" in s
    assert "Opposing pairs" in s
    # one more figure each: the forest plot, the explicit bars, the pairs' response mix
    assert html.count("<svg") >= 13


# -- values to watch -----------------------------------------------------------------------------

RARE_WATCHED = "zqx watched rare neighbour"
WATCHED = "deception"
ABSENT = "zqx never seen watch value"


@pytest.fixture(scope="module")
def watched(tmp_path_factory) -> Path:
    """An analysis where the watched value concentrates in one task and in strong resistance,
    and a value below the thresholds sits in those very conversations."""
    tmp = tmp_path_factory.mktemp("watch")
    rows = make_rows(4000, seed=11)
    for i, r in enumerate(rows[:300]):
        r.update(
            user_id=f"w{i % 30}",
            subjective=True,
            task="coding help",
            task_cluster="coding help",
            response_type="strong resistance",
            ai_values=[*(r["ai_values"] or []), WATCHED],
        )
    for r in rows[:3]:  # one user, three conversations: below the privacy thresholds
        r.update(
            user_id="w0",
            ai_values=[*r["ai_values"], RARE_WATCHED],
            human_values=[RARE_WATCHED],
        )
    return build_analysis(tmp, rows=rows)


def _cli() -> Group:
    group = Group()
    group.add_command(report_command)
    return group


def test_watched_values_show_their_significant_contexts(watched, tmp_path):
    watch = tmp_path / "watch.txt"
    watch.write_text(f"# my list\n{WATCHED.upper()}\n\n{ABSENT}\nhonesty\n", encoding="utf-8")
    res = CliRunner().invoke(_cli(), ["report", str(watched), "--watch", str(watch)])
    assert res.exit_code == 0, res.output
    out = pd.read_csv(watched / layout.VALUES_TO_WATCH, keep_default_na=False)
    # the oracle: the published tables' significant positive cells, counted with pandas
    want = set()
    for table, context in [
        ("ai_values__task_cluster", "task cluster"),
        ("ai_values__response_type", "response type"),
        ("human_values__task_cluster", "task cluster"),
        ("human_values__response_type", "response type"),
    ]:
        path = watched / "tables" / f"{table}.csv"
        if not path.is_file():  # the engine writes only the tables its columns allow
            continue
        cells = pd.read_csv(path, keep_default_na=False)
        sig = cells[
            cells["row"].isin([WATCHED, "honesty"])
            & (cells["significant"].astype(str).str.lower() == "true")
            & (cells["adjusted_residual"] > 0)
        ]
        side = "AI value" if table.startswith("ai") else "human value"
        want |= {(r.row, side, context, r.col) for r in sig.itertuples()}
    got = {
        (r.value, r.side, r.context, r.category)
        for r in out.itertuples()
        if r.status == "published" and r.category
    }
    assert got == want
    assert (WATCHED, "AI value", "task cluster", "coding help") in got  # the check can fail
    assert (WATCHED, "AI value", "response type", "strong resistance") in got
    absent = out[out["value"] == ABSENT]
    assert list(absent["status"]) == [NOT_PUBLISHED]
    assert (absent[["side", "context", "category", "n_conversations"]] == "").all().all()
    md = (watched / layout.REPORT_MD).read_text()
    s = section(md, "Values to watch")
    assert "coding help" in s and "strong resistance" in s
    assert f"{NOT_PUBLISHED}: {ABSENT}" in s
    assert "from watch.txt" in s


def test_a_rare_value_in_a_watched_values_tasks_appears_nowhere(watched):
    write_report(watched)  # the default list, which holds the planted value
    with (watched / layout.VALUES_TO_WATCH).open() as fh:
        assert any(r["value"] == WATCHED and r["category"] for r in csv.DictReader(fh))
    for f in watched.rglob("*"):
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace").lower()
            assert RARE_WATCHED not in text and "zqx watched" not in text, f


def test_the_default_list_holds_the_papers_values():
    w = read_watch_list()
    assert w.source == "the default list"
    for v in ["sexual exploitation", "dominance", "amorality", "rule-breaking", "moral nihilism"]:
        assert v in w.values
    assert not any(v.startswith("#") for v in w.values)


def test_a_bad_watch_file_is_one_line(watched, tmp_path):
    missing = CliRunner().invoke(_cli(), ["report", str(watched), "--watch", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    res = CliRunner().invoke(_cli(), ["report", str(watched), "--watch", str(binary)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "binary.txt" in lines[0], res.output


def test_watched_values_list_their_value_pairs(analysis, tmp_path):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    write_paper_files(d)
    watch = tmp_path / "watch.txt"
    watch.write_text("honesty\n", encoding="utf-8")
    write_report(d, watch=watch)
    out = pd.read_csv(d / layout.VALUES_TO_WATCH, keep_default_na=False)
    paired = out[out["context"].str.startswith("paired")]
    want = {(f"paired human value ({r[7]})", r[0]) for r in VALUE_PAIRS if r[1] == "honesty"}
    assert want and set(zip(paired["context"], paired["category"], strict=True)) == want
    md = (d / layout.REPORT_MD).read_text()
    assert "deception" in section(md, "Values to watch")


def test_the_synthetic_corpus_gives_the_default_list_something_to_show(tmp_path):
    from valuescope import synth
    from valuescope.analyze import AnalyzeOptions, analyze_files

    corpus = synth.write_corpus(tmp_path / "c.parquet", 150_000, seed=3, progress=False)
    out = tmp_path / "analysis"
    analyze_files([corpus], out, AnalyzeOptions(progress=False))
    write_report(out)
    rows = pd.read_csv(out / layout.VALUES_TO_WATCH, keep_default_na=False)
    got = set(zip(rows["value"], rows["context"], rows["category"], strict=True))
    planted = {
        (v, "task cluster", c) for ctx, c, v, _ in synth.CONTEXT_PLANTS if ctx == "task_cluster"
    }
    watched = set(read_watch_list().values)
    want = {p for p in planted if p[0] in watched}
    assert want and want <= got
    assert ("deception", "response type", "strong resistance") in got
