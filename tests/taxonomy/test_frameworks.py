"""Value frameworks on the value tree: the shipped lists, the mapping against an independent numpy
computation, privacy (only the tree's published names), the option, and the report section."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import valuescope
from click.testing import CliRunner
from helpers.features import to_table
from valuescope.cli import Group
from valuescope.cli.taxonomy import taxonomy_command
from valuescope.errors import UserError
from valuescope.report import TITLES, write_report
from valuescope.taxonomy.frameworks import parse_frameworks
from valuescope.taxonomy.run import TaxonomyOptions, run_taxonomy

DATA = Path(valuescope.__file__).parent / "data"
FRAMEWORKS = DATA / "frameworks"
RARE = "zqx velvet rarity"  # 3 conversations, one user: below the thresholds


def read(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def published_values() -> list[str]:
    return [r["value"] for r in read(DATA / "values_frequencies.csv")]


# -- the reference lists ------------------------------------------------------------------------


def test_the_shipped_lists():
    lists = {p.stem: read(p) for p in FRAMEWORKS.glob("*.csv")}
    assert set(lists) == {"schwartz", "schwartz_refined", "rokeach"}
    for rows in lists.values():
        assert list(rows[0]) == ["framework", "value", "kind", "definition"]
        assert len({r["value"] for r in rows}) == len(rows)
        for r in rows:
            assert len(r["definition"].split()) >= 5 and r["value"] not in ("", r["definition"])
    kinds = {name: sorted(r["kind"] for r in rows) for name, rows in lists.items()}
    assert kinds["schwartz"] == ["basic"] * 10
    assert kinds["schwartz_refined"] == ["refined"] * 19
    assert kinds["rokeach"] == ["instrumental"] * 18 + ["terminal"] * 18
    assert "stimulation" in {r["value"] for r in lists["schwartz"]}


def test_parse_frameworks():
    assert parse_frameworks("schwartz,rokeach") == ["schwartz", "rokeach"]
    assert parse_frameworks(" Rokeach , rokeach") == ["rokeach"]
    assert parse_frameworks("none") == []
    for bad in ("", "maslow", "schwartz,maslow", ","):
        with pytest.raises(UserError, match="--frameworks"):
            parse_frameworks(bad)


# -- the mapping --------------------------------------------------------------------------------


def make_features(path: Path, seed: int = 0) -> None:
    """48 published values in 20-60 conversations each from many users, and a rare one."""
    rng = random.Random(seed)
    pool = published_values()
    common = pool[:24] + pool[300:324]
    rows = []
    for v in common:
        for _ in range(rng.randint(20, 60)):
            rows.append(
                {
                    "conversation_id": f"c{len(rows)}",
                    "user_id": f"u{rng.randrange(300)}",
                    "subjective": True,
                    "task": "help",
                    "task_cluster": None,
                    "ai_values": [v, rng.choice(common)],
                    "human_values": [],
                    "response_type": "mild support",
                }
            )
    for i in range(3):
        rows[i]["ai_values"] = [*rows[i]["ai_values"], RARE]
        rows[i]["user_id"] = "rare-user"
    pq.write_table(to_table(rows), path)


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder) -> Path:
    d = tmp_path_factory.mktemp("fw")
    make_features(d / "features.parquet")
    opts = TaxonomyOptions(levels="10,4", task_clusters="none", frameworks="schwartz,rokeach")
    summary = run_taxonomy([d / "features.parquet"], d / "out", opts, embedder=embedder)
    assert summary.files["framework_mapping"] == "framework_mapping.csv"
    return d / "out"


def _members(tree: list[dict]) -> dict[tuple[int, str], list[str]]:
    """(level, published name) -> the leaf values under it, from the tree's parent links."""
    by_id = {r["cluster_id"]: r for r in tree}
    out: dict[tuple[int, str], list[str]] = {}
    for r in tree:
        if r["level"] != "0":
            continue
        node = r
        while True:
            out.setdefault((int(node["level"]), node["name"]), []).append(r["name"])
            if not node["parent_cluster_id"]:
                break
            node = by_id[node["parent_cluster_id"]]
    return out


def test_mapping_is_the_numpy_argmax(built, embedder):
    tree = read(built / "values_tree.csv")
    mapping = read(built / "framework_mapping.csv")
    members = _members(tree)
    leaves = [r["name"] for r in tree if r["level"] == "0"]
    vec = dict(zip(leaves, embedder.embed(leaves), strict=True))
    fw = read(FRAMEWORKS / "schwartz.csv") + read(FRAMEWORKS / "rokeach.csv")
    x = embedder.embed([f"{r['value']}: {r['definition']}" for r in fw])
    got: dict[tuple[str, str, int], list[tuple[str, float]]] = {}
    for r in mapping:
        key = (r["framework"], r["framework_value"], int(r["level"]))
        got.setdefault(key, []).append((int(r["rank"]), r["cluster"], float(r["similarity"])))
    levels = sorted({lv for lv, _ in members})
    assert levels == [0, 1, 2]
    assert len(got) == len(fw) * len(levels)
    for level in levels:
        names = [n for lv, n in members if lv == level]
        c = np.stack([np.mean([vec[m] for m in members[(level, n)]], axis=0) for n in names])
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        sims = x @ c.T
        for i, r in enumerate(fw):
            ranked = sorted(got[(r["framework"], r["value"], level)])
            assert [k for k, _, _ in ranked] == list(range(1, min(3, len(names)) + 1))
            best = int(np.argmax(sims[i]))
            assert ranked[0][1] == names[best]
            assert ranked[0][2] == pytest.approx(sims[i, best], abs=1e-4)
            order = np.argsort(-sims[i])[: len(ranked)]
            assert [n for _, n, _ in ranked] == [names[j] for j in order]


def test_mapping_names_only_what_the_tree_publishes(built):
    tree = {(int(r["level"]), r["name"]) for r in read(built / "values_tree.csv")}
    mapping = read(built / "framework_mapping.csv")
    assert mapping and all((int(r["level"]), r["cluster"]) in tree for r in mapping)
    for f in built.iterdir():
        if f.suffix in (".csv", ".json"):
            assert RARE not in f.read_text(encoding="utf-8"), f.name


def test_frameworks_none_writes_and_leaves_nothing(tmp_path, embedder, built):
    make_features(tmp_path / "features.parquet")
    out = tmp_path / "out"
    out.mkdir()
    (out / "framework_mapping.csv").write_text("stale\n")  # from an earlier run
    opts = TaxonomyOptions(levels="10,4", task_clusters="none", frameworks="none")
    summary = run_taxonomy([tmp_path / "features.parquet"], out, opts, embedder=embedder)
    assert not (out / "framework_mapping.csv").exists()
    assert "framework_mapping" not in summary.files


def test_cli_option(tmp_path):
    group = Group()
    group.add_command(taxonomy_command)
    res = CliRunner().invoke(
        group, ["taxonomy", str(tmp_path / "x.parquet"), "--frameworks", "maslow"]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "--frameworks 'maslow'" in lines[0], res.output


# -- the report ---------------------------------------------------------------------------------


def test_report_section_present_only_with_a_mapping(built, tmp_path):
    from helpers.report import build_analysis

    analysis = build_analysis(tmp_path)
    html_path, md_path = write_report(analysis)
    assert "Value frameworks" not in html_path.read_text()
    assert re.findall(r"<h2>(.*?)</h2>", html_path.read_text()) == list(TITLES.values())
    tax = analysis / "taxonomy"
    tax.mkdir()
    for name in ("values_tree.csv", "framework_mapping.csv"):
        (tax / name).write_bytes((built / name).read_bytes())
    with (tax / "framework_mapping.csv").open("a", encoding="utf-8") as fh:
        fh.write("schwartz,power,1,9,zqx not in the tree,0.99\n")  # a stale row: never shown
    html_path, md_path = write_report(analysis)
    html, md = html_path.read_text(), md_path.read_text()
    heads = re.findall(r"<h2>(.*?)</h2>", html)
    # the frameworks section comes right after the reference comparison
    cut = list(TITLES).index("reference") + 1
    titles = list(TITLES.values())
    assert heads == [*titles[:cut], "Value frameworks", *titles[cut:]]
    section = md.split("## Value frameworks\n", 1)[1].split("\n## ", 1)[0]
    assert "Schwartz's basic values" in section and "Rokeach's values" in section
    assert "stimulation" in section and "<svg" in html.split('id="frameworks"', 1)[1]
    assert "zqx not in the tree" not in html + md
    level1 = {r["name"] for r in read(built / "values_tree.csv") if r["level"] == "1"}
    assert any(name in section for name in level1)


def test_report_finds_the_mapping_in_a_taxonomy_given_by_option(built, tmp_path):
    """`valuescope report ANALYSIS --taxonomy DIR`: the mapping is read from DIR like the tree."""
    from helpers.report import build_analysis

    analysis = build_analysis(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("values_tree.csv", "framework_mapping.csv"):
        (elsewhere / name).write_bytes((built / name).read_bytes())
    html_path, _ = write_report(analysis)
    assert "Value frameworks" not in html_path.read_text()
    html_path, _ = write_report(analysis, taxonomy=elsewhere)
    assert "<h2>Value frameworks</h2>" in html_path.read_text()
