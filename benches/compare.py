"""The same full analysis with valuescope, DuckDB, polars and pandas + scipy, side by side.

    python benches/compare.py --n 1000000            # writes the corpus if needed, runs all tools
    python benches/compare.py --n 10000000 --tools valuescope,duckdb,polars

The analysis, identical for every tool, on one synthetic feature file (``valuescope synth``):

* value counts for ``ai_values`` and ``human_values``: conversations and distinct users per value,
  published when a value has >= 15 conversations from >= 10 distinct users;
* the six default co-occurrence tables of the design (ai_values x task_cluster,
  human_values x ai_values, ai_values x response_type, human_values x response_type,
  ai_values x model, response_type x model): per cell the conversations and distinct users,
  chi-square over the full table, expected counts and adjusted (Haberman) residuals, Bonferroni
  significance with one test per row value, and the same 15 / 10 publication rule per cell.

Each tool runs in its own subprocess, so the wall time includes its start-up and imports, and the
peak RSS is that process's (``os.wait4``'s ``ru_maxrss``; for a command that starts worker
processes, the Linux kernel reports the largest single process among it and the workers it
reaped, not their sum). ``valuescope`` is the Engine fed by ``pq.ParquetFile.iter_batches`` in
one process (the Python API with pyarrow's reader); ``analyze`` is the ``valuescope analyze``
command as a user types it (valuescope's own Parquet reader, in Rust). Every tool's
published counts are reduced to a digest and compared: the script fails if any tool disagrees
with valuescope.
The input values are already normalised (the generator writes lower-case, trimmed strings), so
the SQL/dataframe versions need no normalisation step to agree with the engine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIN_CONVERSATIONS = 15
MIN_USERS = 10
ALPHA = 0.05
TABLES = [
    ("ai_values", "task_cluster"),
    ("human_values", "ai_values"),
    ("ai_values", "response_type"),
    ("human_values", "response_type"),
    ("ai_values", "model"),
    ("response_type", "model"),
]
LISTS = {"ai_values", "human_values"}
COLUMNS = [
    "conversation_id",
    "user_id",
    "subjective",
    "model",
    "task_cluster",
    "response_type",
    "ai_values",
    "human_values",
]
TOOLS = ["valuescope", "analyze", "duckdb", "polars", "pandas"]


# ------------------------------------------------------------------------------------------------
# shared helpers


def digest(rows: list[tuple[Any, ...]]) -> str:
    h = hashlib.sha256()
    for r in sorted(rows):
        h.update(repr(r).encode())
    return h.hexdigest()[:16]


def threshold(n_tests: int) -> float:
    from scipy.stats import norm

    return float(norm.isf(ALPHA / (2 * max(n_tests, 1))))


def table_summary(n: int, n_cells: int, chi2: float, n_rows: int, published, n_sig: int) -> dict:
    """published: (row, col, observed) of the cells that pass the thresholds."""
    return {
        "n": int(n),
        "n_cells": int(n_cells),
        "chi2": float(chi2),
        "n_rows": int(n_rows),
        "published_cells": len(published),
        "published_observed": int(sum(o for _, _, o in published)),
        "significant_published": int(n_sig),
        "digest": digest([(str(r), str(c), int(o)) for r, c, o in published]),
    }


def values_summary(published: list[tuple[str, int]]) -> dict:
    return {
        "published": len(published),
        "conversations": int(sum(n for _, n in published)),
        "digest": digest([(str(v), int(n)) for v, n in published]),
    }


# ------------------------------------------------------------------------------------------------
# the four implementations (each run in a worker process)


def run_valuescope(path: str) -> tuple[dict, dict]:
    import pyarrow.parquet as pq
    import valuescope

    timings = {"decode": 0.0, "count": 0.0}
    engine = valuescope.Engine(
        tables=TABLES, min_conversations=MIN_CONVERSATIONS, min_users=MIN_USERS, alpha=ALPHA
    )
    pf = pq.ParquetFile(path)
    # Read string leaves as dictionaries: the decoder then hands out small integer keys instead
    # of materialising every string, and the engine resolves each distinct string once.
    leaves = [pf.schema.column(i).path for i in range(pf.metadata.num_columns)]
    want = {"model", "task_cluster", "response_type", "ai_values", "human_values"}
    dict_cols = [p for p in leaves if p.split(".")[0] in want]
    pf = pq.ParquetFile(path, read_dictionary=dict_cols)
    it = pf.iter_batches(batch_size=131_072, columns=COLUMNS)
    mentions = 0
    while True:
        t = time.perf_counter()
        batch = next(it, None)
        timings["decode"] += time.perf_counter() - t
        if batch is None:
            break
        mentions += len(batch.column("ai_values").values) + len(batch.column("human_values").values)
        t = time.perf_counter()
        engine.update(batch)
        timings["count"] += time.perf_counter() - t
    t = time.perf_counter()
    res = engine.result()
    timings["stats"] = time.perf_counter() - t
    timings["mentions"] = mentions
    out: dict[str, Any] = {"n": res["summary"]["n_conversations"]}
    for kind in ["ai_values", "human_values"]:
        v = res[kind]
        out[kind] = values_summary(
            list(zip(v["value"].to_pylist(), v["n_conversations"].to_pylist(), strict=True))
        )
    tests = {r["table"]: r for r in res["table_tests"].to_pylist()}
    for a, b in TABLES:
        name = f"{a}__{b}"
        t = res[f"tables/{name}"]
        published = list(
            zip(t["row"].to_pylist(), t["col"].to_pylist(), t["observed"].to_pylist(), strict=True)
        )
        info = tests[name]
        n_sig = sum(t["significant"].to_pylist())
        n_rows = info.get("n_tests") or 0
        out[name] = table_summary(
            info["n"], info["n_cells"], info["chi2"], n_rows, published, n_sig
        )
    return out, timings


def run_duckdb(path: str) -> tuple[dict, dict]:
    import duckdb
    from scipy.stats import chi2 as _  # noqa: F401  (same imports as the others)

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count() or 1}")
    con.execute(
        # user ids as 64-bit hashes for the distinct counts, as valuescope and polars do
        "CREATE TEMP TABLE f AS SELECT row_number() OVER () AS conv, hash(user_id) AS user_id, "
        "model, task_cluster, response_type, ai_values, human_values FROM read_parquet(?) "
        "WHERE subjective IS NOT false",
        [path],
    )
    for c in ["ai_values", "human_values"]:
        con.execute(
            f"CREATE TEMP TABLE l_{c} AS SELECT conv, user_id, "
            f"unnest(list_distinct({c})) AS x FROM f"
        )
    for c in ["model", "task_cluster", "response_type"]:
        con.execute(
            f"CREATE TEMP VIEW l_{c} AS SELECT conv, user_id, {c} AS x FROM f WHERE {c} IS NOT NULL"
        )
    out: dict[str, Any] = {"n": con.execute("SELECT count(*) FROM f").fetchone()[0]}
    for kind in ["ai_values", "human_values"]:
        rows = con.execute(
            f"SELECT x, count(*) AS n FROM l_{kind} GROUP BY x "
            f"HAVING count(*) >= {MIN_CONVERSATIONS} "
            f"AND count(DISTINCT user_id) >= {MIN_USERS}"
        ).fetchall()
        out[kind] = values_summary(rows)
    for a, b in TABLES:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE cells AS SELECT a.x AS r, b.x AS c, count(*) AS o, "
            f"count(DISTINCT a.user_id) AS u FROM l_{a} a JOIN l_{b} b USING (conv) GROUP BY 1, 2"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE st AS SELECT *, r_n * c_n / n AS e FROM ("
            "SELECT *, sum(o) OVER (PARTITION BY r) AS r_n, sum(o) OVER (PARTITION BY c) AS c_n, "
            "sum(o) OVER () AS n FROM cells)"
        )
        n, n_cells, chi2, n_rows = con.execute(
            "SELECT any_value(n), count(*), sum(o * o / e) - any_value(n), count(DISTINCT r) "
            "FROM st"
        ).fetchone()
        z = threshold(n_rows)
        published = con.execute(
            f"SELECT r, c, o, abs((o - e) / sqrt(e * (1 - r_n / n) * (1 - c_n / n))) > {z} "
            f"FROM st WHERE o >= {MIN_CONVERSATIONS} AND u >= {MIN_USERS}"
        ).fetchall()
        out[f"{a}__{b}"] = table_summary(
            n, n_cells, chi2, n_rows, [p[:3] for p in published], sum(bool(p[3]) for p in published)
        )
    return out, {}


def run_polars(path: str) -> tuple[dict, dict]:
    import polars as pl

    # As an expert would write it: value strings as categoricals (groups on integer codes), user
    # ids as 64-bit hashes for the distinct counts (valuescope hashes them too), no joins (a
    # table explodes the lists of each row in place), and every count in one plan, so that
    # polars runs them together.
    f = (
        pl.scan_parquet(path)
        .select(COLUMNS[1:])
        .filter(pl.col("subjective").is_null() | pl.col("subjective"))
        .with_columns(
            pl.col("user_id").hash(),
            *[pl.col(c).list.unique().cast(pl.List(pl.Categorical)) for c in LISTS],
            *[pl.col(c).cast(pl.Categorical) for c in ("model", "task_cluster", "response_type")],
        )
        .collect()
    )
    frame = f.lazy()
    kinds = ["ai_values", "human_values"]
    queries = [
        frame.select("user_id", pl.col(kind).alias("x"))
        .explode("x")
        .drop_nulls("x")
        .group_by("x")
        .agg(n=pl.len(), u=pl.col("user_id").n_unique())
        .filter((pl.col("n") >= MIN_CONVERSATIONS) & (pl.col("u") >= MIN_USERS))
        for kind in kinds
    ]
    for a, b in TABLES:
        d = frame.select("user_id", pl.col(a).alias("r"), pl.col(b).alias("c"))
        for col, name in ((a, "r"), (b, "c")):
            if col in LISTS:
                d = d.explode(name)
        queries.append(
            d.drop_nulls(["r", "c"])
            .group_by("r", "c")
            .agg(o=pl.len(), u=pl.col("user_id").n_unique())
        )
    done = pl.collect_all(queries)
    out: dict[str, Any] = {"n": f.height}
    for kind, v in zip(kinds, done, strict=False):
        out[kind] = values_summary(list(zip(v["x"].to_list(), v["n"].to_list(), strict=True)))
    for (a, b), cells in zip(TABLES, done[len(kinds) :], strict=True):
        n = cells["o"].sum()
        st = cells.with_columns(
            r_n=pl.col("o").sum().over("r").cast(pl.Float64),
            c_n=pl.col("o").sum().over("c").cast(pl.Float64),
        ).with_columns(e=pl.col("r_n") * pl.col("c_n") / n)
        st = st.with_columns(
            adj=(pl.col("o") - pl.col("e"))
            / (pl.col("e") * (1 - pl.col("r_n") / n) * (1 - pl.col("c_n") / n)).sqrt()
        )
        chi2 = (st["o"].cast(pl.Float64) ** 2 / st["e"]).sum() - n
        n_rows = st["r"].n_unique()
        pub = st.filter((pl.col("o") >= MIN_CONVERSATIONS) & (pl.col("u") >= MIN_USERS))
        n_sig = int((pub["adj"].abs() > threshold(n_rows)).sum())
        published = list(
            zip(pub["r"].to_list(), pub["c"].to_list(), pub["o"].to_list(), strict=True)
        )
        out[f"{a}__{b}"] = table_summary(n, st.height, chi2, n_rows, published, n_sig)
    return out, {}


def run_pandas(path: str) -> tuple[dict, dict]:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from scipy.stats import chi2 as chi2_dist

    df = pq.read_table(path, columns=COLUMNS[1:]).to_pandas()
    df = df[df["subjective"].isna() | (df["subjective"] == True)]  # noqa: E712
    df = df.reset_index(drop=True)
    df["conv"] = np.arange(len(df))
    long: dict[str, pd.DataFrame] = {}
    for c in ["ai_values", "human_values", "model", "task_cluster", "response_type"]:
        d = df[["conv", "user_id", c]].rename(columns={c: "x"})
        if c in LISTS:
            d = d.explode("x").dropna(subset=["x"]).drop_duplicates(["conv", "x"])
        long[c] = d.dropna(subset=["x"])
    out: dict[str, Any] = {"n": len(df)}
    for kind in ["ai_values", "human_values"]:
        v = long[kind].groupby("x")["user_id"].agg(["size", "nunique"])
        v = v[(v["size"] >= MIN_CONVERSATIONS) & (v["nunique"] >= MIN_USERS)]
        out[kind] = values_summary(list(zip(v.index, v["size"], strict=True)))
    for a, b in TABLES:
        pairs = long[a].merge(long[b][["conv", "x"]].rename(columns={"x": "c"}), on="conv")
        cells = (
            pairs.groupby(["x", "c"])["user_id"]
            .agg(o="size", u="nunique")
            .reset_index()
            .rename(columns={"x": "r"})
        )
        n = cells["o"].sum()
        r_n = cells.groupby("r")["o"].transform("sum")
        c_n = cells.groupby("c")["o"].transform("sum")
        e = r_n * c_n / n
        adj = (cells["o"] - e) / np.sqrt(e * (1 - r_n / n) * (1 - c_n / n))
        chi2 = float((cells["o"] ** 2 / e).sum() - n)
        n_rows = cells["r"].nunique()
        dof = (n_rows - 1) * (cells["c"].nunique() - 1)
        chi2_dist.sf(chi2, max(dof, 1))  # the p-value, as a user would compute it
        keep = (cells["o"] >= MIN_CONVERSATIONS) & (cells["u"] >= MIN_USERS)
        pub = cells[keep]
        n_sig = int((adj[keep].abs() > threshold(n_rows)).sum())
        published = list(zip(pub["r"], pub["c"], pub["o"], strict=True))
        out[f"{a}__{b}"] = table_summary(n, len(cells), chi2, n_rows, published, n_sig)
    return out, {}


RUNNERS = {
    "valuescope": run_valuescope,
    "duckdb": run_duckdb,
    "polars": run_polars,
    "pandas": run_pandas,
}


# ------------------------------------------------------------------------------------------------
# driver


def read_analysis(out: Path) -> dict:
    """The published counts from the files `valuescope analyze` wrote."""
    import csv

    res: dict[str, Any] = {"n": json.loads((out / "summary.json").read_text())["n_conversations"]}
    for kind in ["ai_values", "human_values"]:
        with open(out / f"{kind}.csv", newline="") as fh:
            rows = [(r["value"], int(r["n_conversations"])) for r in csv.DictReader(fh)]
        res[kind] = values_summary(rows)
    for a, b in TABLES:
        name = f"{a}__{b}"
        info = json.loads((out / "tables" / f"{name}.json").read_text())
        with open(out / "tables" / f"{name}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        published = [(r["row"], r["col"], int(r["observed"])) for r in rows]
        n_sig = sum(r["significant"].lower() in ("true", "1") for r in rows)
        res[name] = table_summary(
            info["n"], info["n_cells"], info["chi2"], info["n_tests"], published, n_sig
        )
    return res


def worker(tool: str, path: str, result: str) -> None:
    t = time.perf_counter()
    out, timings = RUNNERS[tool](path)
    timings["analysis"] = time.perf_counter() - t
    Path(result).write_text(json.dumps({"result": out, "timings": timings}))


def run_tool(tool: str, path: Path, tmp: Path) -> dict:
    result = tmp / f"{tool}.json"
    if tool == "analyze":
        # the command a user types (what the `valuescope` console script runs)
        out = tmp / "analysis"
        cmd = [sys.executable, "-c", "from valuescope.cli import console; console()", "analyze"]
        cmd += [str(path), "--out", str(out), "--quiet"]
        cmd += [f"--table={a}:{b}" for a, b in TABLES]
    else:
        cmd = [sys.executable, __file__, "--worker", tool, "--file", str(path)]
        cmd += ["--result", str(result)]
    start = time.perf_counter()
    # the command's own report line would interleave with the table
    quiet = subprocess.DEVNULL if tool == "analyze" else None
    proc = subprocess.Popen(cmd, stdout=quiet)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{tool} failed (status {status})")
    if tool == "analyze":
        data = {"result": read_analysis(tmp / "analysis"), "timings": {"analysis": wall}}
    else:
        data = json.loads(result.read_text())
    data.update(tool=tool, wall=wall, rss_mb=usage.ru_maxrss / 1024)
    return data


def compare(results: list[dict]) -> list[str]:
    """Differences between each tool's published counts and the first tool's."""
    ref = results[0]
    problems = []
    for other in results[1:]:
        for key, want in ref["result"].items():
            got = other["result"].get(key)
            if isinstance(want, dict):
                for k, w in want.items():
                    g = got.get(k) if got else None
                    same = (
                        abs(g - w) <= 1e-6 * max(1.0, abs(w))
                        if isinstance(w, float) and g is not None
                        else g == w
                    )
                    if not same:
                        problems.append(f"{other['tool']}: {key}.{k} = {g}, {ref['tool']}: {w}")
            elif got != want:
                problems.append(f"{other['tool']}: {key} = {got}, {ref['tool']}: {want}")
    return problems


def markdown(results: list[dict], n: int) -> str:
    base = results[0]["wall"]
    lines = [
        "| tool | wall (s) | analysis (s) | peak RSS (MB) | time vs valuescope | conversations/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        t = r["timings"]["analysis"]
        lines.append(
            f"| {r['tool']} | {r['wall']:.2f} | {t:.2f} | {r['rss_mb']:.0f} | "
            f"{r['wall'] / base:.1f}x | {n / r['wall']:,.0f} |"
        )
    return "\n".join(lines)


def compile_package() -> None:
    """Byte-compiles valuescope's modules, as `pip install .` does and as polars and DuckDB
    are installed: an editable install run with PYTHONDONTWRITEBYTECODE would otherwise compile
    them on every `analyze` (about 40 ms)."""
    import compileall

    import valuescope

    compileall.compile_dir(Path(valuescope.__file__).parent, quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=float, default=1e6, help="conversations (default 1e6)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--file", type=Path, help="feature Parquet file (default: generated)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, valuescope first")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the best time of each is kept")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, str(args.file), args.result)
        return
    n = int(args.n)
    path = args.file or Path(tempfile.gettempdir()) / f"valuescope-synth-{n}-{args.seed}.parquet"
    if not path.exists():
        from valuescope.synth import write_corpus

        t = time.perf_counter()
        write_corpus(path, n, seed=args.seed, progress=True)
        print(
            f"generated {n:,} conversations -> {path} in {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
        )
    if args.file:
        import pyarrow.parquet as pq

        n = pq.ParquetFile(path).metadata.num_rows  # the rate is per row of the file given
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    compile_package()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # Rounds interleave the tools, so that a burst of load on a shared machine hits them
        # alike; each tool's best wall time is kept (its RSS is the same every round).
        for round_ in range(args.repeat):
            for i, tool in enumerate(tools):
                print(f"round {round_ + 1}: {tool} ...", file=sys.stderr, flush=True)
                r = run_tool(tool, path, Path(tmp))
                if round_ == 0:
                    results.append(r)
                elif r["wall"] < results[i]["wall"]:
                    results[i] = r
    problems = compare(results)
    print(
        f"\n{n:,} conversations, {path.stat().st_size / 1e6:.0f} MB Parquet, "
        f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end); thresholds "
        f"{MIN_CONVERSATIONS} conversations / {MIN_USERS} users, best of {args.repeat}\n"
    )
    print(markdown(results, n))
    vs = next((r for r in results if r["tool"] == "valuescope"), None)
    if vs:
        t = vs["timings"]
        busy = t["decode"] + t["count"] + t["stats"]
        print(
            f"\nvaluescope: {n / t['analysis']:,.0f} conversations/s, "
            f"{t['mentions'] / t['analysis']:,.0f} value mentions/s in the analysis; "
            f"Parquet decoding {100 * t['decode'] / busy:.0f}%, counting "
            f"{100 * t['count'] / busy:.0f}%, statistics {100 * t['stats'] / busy:.0f}%"
        )
    if problems:
        print("\nDISAGREEMENT:\n" + "\n".join(problems[:20]))
        sys.exit(1)
    tables = ", ".join(f"{a} x {b}" for a, b in TABLES)
    print(
        f"\nall tools agree on every published count (values and {tables}), chi-square and "
        f"significant cells"
    )


if __name__ == "__main__":
    main()
