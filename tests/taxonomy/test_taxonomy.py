"""The taxonomy driver: tree shape and sums, privacy, task clusters, the features copy, the
reference mapping, and agreement with the published tree (scikit-learn as the oracle)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import valuescope
from click.testing import CliRunner
from valuescope.cli.taxonomy import taxonomy_command
from valuescope.taxonomy import tree as tx
from valuescope.taxonomy.reference import load_reference, map_values
from valuescope.taxonomy.run import TaxonomyOptions, run_taxonomy

# the published release as shipped in the package (identical to shared/data, same sha256)
DATA = Path(valuescope.__file__).parent / "data"
PUBLISHED_TREE = DATA / "values_tree.csv"
PUBLISHED_FREQ = DATA / "values_frequencies.csv"
N_PAPER = 308_210
PLANTED = "zebra-striped secrecy"  # rare: 3 conversations, must surface nowhere
RARE_TASK = "plan my cousin's wedding in reykjavik"
SCHEMA = pa.schema(
    [
        ("conversation_id", pa.string()),
        ("user_id", pa.string()),
        ("subjective", pa.bool_()),
        ("task", pa.string()),
        ("task_cluster", pa.string()),
        ("ai_values", pa.list_(pa.string())),
        ("human_values", pa.list_(pa.string())),
        ("response_type", pa.string()),
    ]
)


def write_rows(rows: list[dict], path: Path) -> None:
    rows = [{"subjective": None, "task_cluster": None, **r} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows, SCHEMA), path)


@pytest.fixture(scope="session")
def published():
    """The published leaves, their conversation counts and their ancestors at levels 1-3."""
    rows = list(csv.DictReader(PUBLISHED_TREE.open(encoding="utf-8")))
    by_id = {r["cluster_id"]: r for r in rows}
    leaves = [r for r in rows if r["level"] == "0"]
    freq = {r["value"]: float(r["pct_convos"]) for r in csv.DictReader(PUBLISHED_FREQ.open())}

    def ancestor(r: dict, level: int) -> str:
        while int(r["level"]) < level:
            r = by_id[r["parent_cluster_id"]]
        return r["cluster_id"]

    values = [r["cluster_id"] for r in leaves]
    counts = [max(1, round(freq[v] * N_PAPER / 100)) for v in values]
    truth = {lv: [ancestor(r, lv) for r in leaves] for lv in (1, 2, 3)}
    return values, counts, truth


@pytest.fixture(scope="session")
def published_vectors(embedder, published):
    return embedder.embed(published[0])


def make_features(path: Path, seed: int = 0) -> list[str]:
    """60 published values, each in 20-80 conversations from many users, plus a planted rare
    value and a rare task; tasks from a few themes. Returns the common values."""
    rng = random.Random(seed)
    freq = [r["value"] for r in csv.DictReader(PUBLISHED_FREQ.open())]
    common = freq[:30] + freq[200:230]
    themes = {
        "debug python code": ["fix a python bug", "debug python code", "python error help"],
        "write a cover letter": ["write a cover letter", "draft a job application letter"],
        "relationship advice": ["relationship advice", "advice on a breakup"],
        "explain history": ["explain world war one", "history of rome"],
    }
    tasks = [t for ts in themes.values() for t in ts]
    rows = []
    conv = 0
    for v in common:
        for _ in range(rng.randint(20, 80)):
            rows.append(
                {
                    "conversation_id": f"c{conv}",
                    "user_id": f"u{rng.randrange(200)}",
                    "subjective": rng.choice([True, True, None]),
                    "task": rng.choice(tasks),
                    "ai_values": [v, rng.choice(common).upper()],
                    "human_values": [],
                    "response_type": "mild support",
                }
            )
            conv += 1
    for i in range(3):
        rows[i]["ai_values"] = rows[i]["ai_values"] + [PLANTED]
        rows[i]["task"] = RARE_TASK
    rows.append(dict(rows[5], conversation_id="dropped", subjective=False, ai_values=[PLANTED]))
    write_rows(rows, path)
    return common


# --- levels ------------------------------------------------------------------------------------


def test_auto_levels_follow_the_paper_ratios():
    assert tx.auto_levels(3307) == [266, 26, 5]
    assert tx.auto_levels(33070) == [2660, 260, 50]
    small = tx.auto_levels(20)
    assert small == sorted(small, reverse=True) and small[-1] >= 1


@pytest.mark.parametrize("spec", ["0,1", "5,10", "x", "", "100,2"])
def test_bad_levels_are_user_errors(spec):
    with pytest.raises(tx.UserError):
        tx.parse_levels(spec, 50)


# --- the published values: shape, sums, agreement ----------------------------------------------


def read_tree(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == tx.TREE_COLUMNS
        return list(reader)


def test_tree_shape_and_sums(tmp_path, published, published_vectors):
    values, counts, _ = published
    nodes = tx.build_tree(values, counts, published_vectors, [266, 26, 5], seed=0)
    tx.write_tree(nodes, tmp_path / "t.csv")
    rows = read_tree(tmp_path / "t.csv")
    by_level = {lv: [r for r in rows if r["level"] == str(lv)] for lv in range(4)}
    assert [len(by_level[lv]) for lv in range(4)] == [3307, 266, 26, 5]
    for lv in range(4):
        assert abs(sum(float(r["pct_total_occurrences"]) for r in by_level[lv]) - 100) < 0.5
    ids = {r["cluster_id"]: r for r in rows}
    for r in rows:
        if r["level"] == "0":
            assert r["cluster_id"] == r["name"] and r["description"] == ""
        if r["level"] == "3":
            assert r["parent_cluster_id"] == ""
        else:
            assert ids[r["parent_cluster_id"]]["level"] == str(int(r["level"]) + 1)
    # each parent's share is the sum of its children's (up to rounding of each child)
    for parent in rows:
        kids = [r for r in rows if r["parent_cluster_id"] == parent["cluster_id"]]
        if kids:
            total = sum(float(k["pct_total_occurrences"]) for k in kids)
            assert abs(total - float(parent["pct_total_occurrences"])) <= 0.0005 * len(kids) + 1e-9


def _agreement(nodes, values, truth):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    paths = tx.leaf_paths(nodes)
    out = {}
    for lv in (1, 2, 3):
        pred = [paths[v][lv - 1] for v in values]
        out[lv] = (
            normalized_mutual_info_score(truth[lv], pred),
            adjusted_rand_score(truth[lv], pred),
        )
    return out


def test_agreement_with_the_published_tree(published, published_vectors, monkeypatch, capsys):
    """Rust k-means bottom-up vs the published tree, beside scikit-learn's KMeans on the same
    embeddings and the same bottom-up scheme; weighting by conversation counts measured too."""
    from sklearn.cluster import KMeans

    values, counts, truth = published
    rust = _agreement(tx.build_tree(values, counts, published_vectors, [266, 26, 5]), values, truth)
    weighted = _agreement(
        tx.build_tree(values, counts, published_vectors, [266, 26, 5], weighted=True),
        values,
        truth,
    )

    def sk_labels(x, k, w, seed):
        km = KMeans(k, n_init=tx.restarts(len(x)), random_state=seed)
        return km.fit(x, sample_weight=w).labels_

    monkeypatch.setattr(tx, "kmeans_labels", sk_labels)
    sk = _agreement(tx.build_tree(values, counts, published_vectors, [266, 26, 5]), values, truth)
    with capsys.disabled():
        for name, res in (("rust", rust), ("rust weighted", weighted), ("sklearn", sk)):
            cells = " ".join(f"L{k} NMI {a:.3f} ARI {b:.3f}" for k, (a, b) in res.items())
            print(f"\n{name:14s} {cells}")
    # loose floors (random labellings give NMI ~0.50 / 0.03 / 0.00 and ARI ~0)
    assert rust[1][0] > 0.62 and rust[2][0] > 0.2 and rust[3][0] > 0.07
    assert rust[3][1] > 0.02
    # as good as scikit-learn's full KMeans, within noise (one seed: level-3 NMI varies by about
    # 0.02 from seed to seed for both; benches/taxonomy_agreement.py averages seeds)
    assert rust[1][0] >= sk[1][0] - 0.03 and rust[2][0] >= sk[2][0] - 0.05
    assert rust[3][0] >= sk[3][0] - 0.06


def test_upper_levels_reach_sklearn_kmeans_inertia(published, published_vectors):
    """The top level (26 centroids of the published values -> 5) is where the tree disagreed
    most with the published one: the mini-batch k-means stopped short of a local minimum there.
    The k-means the tree uses on it now reaches scikit-learn's KMeans inertia, over seeds."""
    from sklearn.cluster import KMeans

    values, counts, _ = published
    nodes = tx.build_tree(values, counts, published_vectors, [266, 26])
    level2 = [n for n in nodes if n.level == 2]
    x = np.stack([n.centroid for n in level2]).astype(np.float64)
    votes = np.array([len(n.members) for n in level2], dtype=np.float64)

    def inertia(labels):
        total = 0.0
        for c in np.unique(labels):
            m = labels == c
            mu = np.average(x[m], axis=0, weights=votes[m])
            total += float((votes[m] * ((x[m] - mu) ** 2).sum(1)).sum())
        return total

    ours = [inertia(tx.kmeans_labels(x, 5, votes, s)) for s in range(20)]
    sk = [
        inertia(
            KMeans(5, n_init=tx.restarts(len(x)), random_state=s)
            .fit(x, sample_weight=votes)
            .labels_
        )
        for s in range(20)
    ]
    assert np.mean(ours) <= 1.01 * np.mean(sk)
    assert all(len(set(tx.kmeans_labels(x, 5, votes, s))) == 5 for s in range(3))


# --- the driver on a feature file ---------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder):
    d = tmp_path_factory.mktemp("tax")
    common = make_features(d / "features.parquet")
    opts = TaxonomyOptions(levels="12,4,2", reference="vitw", task_clusters="4")
    summary = run_taxonomy([d / "features.parquet"], d / "out", opts, embedder=embedder)
    return d, common, summary


def test_driver_outputs(built):
    d, common, summary = built
    out = d / "out"
    rows = read_tree(out / "values_tree.csv")
    assert sorted(r["name"] for r in rows if r["level"] == "0") == sorted(common)
    assert [sum(r["level"] == str(lv) for r in rows) for lv in (1, 2, 3)] == [12, 4, 2]
    assert summary.n_values == 60 and summary.n_values_suppressed >= 1
    feats = pq.read_table(out / "features_clustered.parquet").to_pylist()
    assert len(feats) == len(pq.read_table(d / "features.parquet"))
    names_l1 = {r["name"] for r in rows if r["level"] == "1"}
    for r in feats:
        if r["subjective"] is False:
            continue
        assert r["task_cluster"] is not None
        assert set(r["ai_values_l1"]) <= names_l1 and r["ai_values_l1"]
    # the planted value's conversations still count at cluster level, under a published name
    planted_rows = [r for r in feats if r["ai_values"] and PLANTED in r["ai_values"]]
    assert all(r["ai_values_l1"] for r in planted_rows)


def test_task_clusters_group_themes(built):
    d, _, summary = built
    feats = pq.read_table(d / "out" / "features_clustered.parquet").to_pylist()
    by_task: dict[str, set] = {}
    for r in feats:
        if r["subjective"] is not False:
            by_task.setdefault(r["task"], set()).add(r["task_cluster"])
    assert all(len(s) == 1 for s in by_task.values())  # one cluster per distinct task
    assert by_task["fix a python bug"] == by_task["debug python code"]
    assert by_task["fix a python bug"] != by_task["relationship advice"]
    assert 2 <= summary.n_task_clusters <= 4


def test_privacy_nothing_rare_in_any_output(built):
    d, _, _ = built
    out = d / "out"
    for f in out.iterdir():
        if f.name == "features_clustered.parquet":
            # the input rows themselves (row-level data, not an aggregate): only the added
            # columns must not carry the rare strings
            t = pq.read_table(f, columns=["task_cluster", "ai_values_l1", "ai_values_l2"])
            text = json.dumps(t.to_pylist()).lower()
        else:
            text = f.read_text(encoding="utf-8").lower()
        assert PLANTED not in text, f.name
        assert "reykjavik" not in text, f.name


def test_rare_task_cluster_is_folded(tmp_path, embedder):
    """Two tiny tasks unlike the rest: with as many clusters as themes they would form their own,
    which is below the thresholds, so it is folded into a neighbour and never named."""
    rows = []
    for i in range(200):
        rows.append(
            {
                "conversation_id": f"c{i}",
                "user_id": f"u{i % 50}",
                "task": ["debug python code", "write a poem"][i % 2],
                "ai_values": ["helpfulness"],
                "human_values": [],
                "response_type": "mild support",
            }
        )
    for i in range(4):
        rows.append(dict(rows[0], conversation_id=f"r{i}", task=RARE_TASK, user_id=f"x{i}"))
    write_rows(rows, tmp_path / "f.parquet")
    s = run_taxonomy(
        [tmp_path / "f.parquet"],
        tmp_path / "out",
        TaxonomyOptions(levels="1,1,1", task_clusters="3"),
        embedder=embedder,
    )
    assert s.n_task_clusters_folded >= 1
    feats = pq.read_table(tmp_path / "out" / "features_clustered.parquet").to_pylist()
    names = {r["task_cluster"] for r in feats}
    assert all("reykjavik" not in n for n in names)
    assert {r["task_cluster"] for r in feats if r["task"] == RARE_TASK} <= names - {None}


def test_reference_comparison(built):
    d, _, _ = built
    rows = list(csv.DictReader((d / "out" / "reference_comparison.csv").open(encoding="utf-8")))
    for lv in ("1", "2", "3"):
        level = [r for r in rows if r["level"] == lv]
        assert abs(sum(float(r["user_pct"]) for r in level) - 100) < 0.5
        assert abs(sum(float(r["published_pct"]) for r in level) - 100) < 0.5
    mapping = list(csv.DictReader((d / "out" / "reference_mapping.csv").open(encoding="utf-8")))
    assert all(r["value"] == r["reference_value"] for r in mapping)  # published values: themselves


def test_reference_maps_every_published_value_onto_itself(embedder, published):
    values = published[0]
    ref = [n.cluster_id for n in load_reference("vitw") if n.level == 0]
    mapped, sims = map_values(values, ref, embedder)
    assert mapped == values
    assert min(sims) > 0.999
    mapped, _ = map_values(["being really helpful to the user"], ref, embedder)
    assert "help" in mapped[0]


# --- the command line ---------------------------------------------------------------------------


def test_cli_runs_and_reports(tmp_path, monkeypatch, built):
    d, _, _ = built
    cache = tmp_path / "cache"
    monkeypatch.setenv("VALUESCOPE_CACHE_DIR", str(cache))
    res = CliRunner().invoke(
        taxonomy_command,
        [str(d / "features.parquet"), "--out", str(tmp_path / "o"), "--levels", "auto"],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "values_tree.csv").is_file()
    assert "60 values" in res.output
    summary = json.loads((tmp_path / "o" / "taxonomy.json").read_text())
    assert summary["levels"] == tx.auto_levels(60)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--levels", "500,2,1"], "at most 60"),
        (["--embedder", "word2vec"], "unknown embedder"),
        (["--reference", "/nonexistent.csv"], "no such file"),
        (["--min-conversations", "100000"], "no value passes"),
        (["--namer", "openai"], "--namer-model"),
    ],
)
def test_cli_user_errors(tmp_path, built, args, message):
    from valuescope.cli import Group

    group = Group(commands={"taxonomy": taxonomy_command})  # as cli.main wires it
    d, _, _ = built
    res = CliRunner().invoke(
        group, ["taxonomy", str(d / "features.parquet"), "--out", str(tmp_path / "o"), *args]
    )
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(tx.UserError):
        run_taxonomy([tmp_path / "nope.parquet"], tmp_path / "o")


def test_cluster_ids_are_deterministic(published, published_vectors):
    values, counts, _ = published
    a = tx.build_tree(values[:300], counts[:300], published_vectors[:300], [20, 4, 2], seed=3)
    b = tx.build_tree(values[:300], counts[:300], published_vectors[:300], [20, 4, 2], seed=3)
    assert [n.cluster_id for n in a] == [n.cluster_id for n in b]
    assert np.allclose(np.stack([n.centroid for n in a]), np.stack([n.centroid for n in b]))


def test_auto_keeps_existing_task_clusters(tmp_path, embedder):
    rows = [
        {
            "conversation_id": f"c{i}",
            "user_id": f"u{i % 40}",
            "task": f"task text {i % 7}",
            "task_cluster": ["coding", "writing"][i % 2],
            "ai_values": ["helpfulness"],
            "human_values": [],
            "response_type": "mild support",
        }
        for i in range(120)
    ]
    write_rows(rows, tmp_path / "f.parquet")
    opts = TaxonomyOptions(levels="1,1,1")
    s = run_taxonomy([tmp_path / "f.parquet"], tmp_path / "a", opts, embedder=embedder)
    assert s.n_task_clusters == 0
    got = pq.read_table(tmp_path / "a" / "features_clustered.parquet").column("task_cluster")
    assert got.to_pylist() == [r["task_cluster"] for r in rows]
    opts.task_clusters = "2"  # an explicit count reclusters the task texts
    s = run_taxonomy([tmp_path / "f.parquet"], tmp_path / "b", opts, embedder=embedder)
    got = pq.read_table(tmp_path / "b" / "features_clustered.parquet").column("task_cluster")
    assert s.n_task_clusters == 2 and not set(got.to_pylist()) & {"coding", "writing"}


class FakeChat:
    """OpenAI-compatible chat completions on 127.0.0.1 that names clusters; refuses
    response_format json_schema (as some local servers do) so the namer steps down."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.bodies.append(body)
                fmt = (body.get("response_format") or {}).get("type")
                if fmt == "json_schema":
                    status, payload = 400, {"error": "json_schema unsupported"}
                else:
                    content = json.dumps(
                        {"name": f"Named cluster {len(owner.bodies)}", "description": "One line."}
                    )
                    status = 200
                    payload = {
                        "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                    }
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_llm_namer(tmp_path, embedder):
    fake = FakeChat()
    try:
        make_features(tmp_path / "f.parquet")
        opts = TaxonomyOptions(
            levels="6,3,2",
            task_clusters="3",
            namer="openai",
            namer_model="m",
            namer_url=fake.url,
        )
        run_taxonomy([tmp_path / "f.parquet"], tmp_path / "o", opts, embedder=embedder)
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    rows = read_tree(tmp_path / "o" / "values_tree.csv")
    clusters = [r for r in rows if r["level"] != "0"]
    assert len(clusters) == 11
    assert all(r["name"].startswith("Named cluster") for r in clusters)
    assert all(r["description"] == "One line." for r in clusters)
    tasks = set(
        pq.read_table(tmp_path / "o" / "features_clustered.parquet")["task_cluster"].to_pylist()
    )
    assert all(t.startswith("Named cluster") for t in tasks if t)
    # the namer is shown value strings that passed the thresholds, never the planted one
    sent = json.dumps(fake.bodies[:12]).lower()  # the value clusters come first
    assert PLANTED not in sent
    assert fake.bodies[0]["response_format"]["type"] == "json_schema"
    assert fake.bodies[1]["response_format"]["type"] == "json_object"
