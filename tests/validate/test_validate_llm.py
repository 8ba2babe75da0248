"""validate judge and validate privacy through the extraction's runner, against the local
fault-injecting server (tests/fakellm.py): retries, the cache, --max-cost, the judgments format
that score reads beside a human's, redaction of failing strings, and the API key written
nowhere."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from fakellm import FakeLLM
from helpers.validate import planted_corpus, run_cli, scripted_judgments
from valuescope.extract.options import ExtractOptions
from valuescope.validate.common import load_judgments
from valuescope.validate.privacy import auditor_accuracy

KEY = "sk-test-VALIDATEKEY-0123456789abcdef"


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["OPENAI_API_KEY"] = KEY
    env["TMPDIR"] = str(tmp_path)
    return env


def _llm_args(fake: FakeLLM, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--provider", "openai", "--model", "judge-model", "--base-url", f"{fake.url}/v1",
        "--cache", str(tmp_path / "cache"), "--retry-wait", "0.01", "--no-progress", *extra,
    ]  # fmt: skip


def _no_key_anywhere(tmp_path: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text and KEY[:12] not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and KEY[-8:].encode() not in data, path


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return planted_corpus(tmp_path_factory.mktemp("planted"))


def test_judge_packet_beside_human(planted, fake: FakeLLM, tmp_path: Path) -> None:
    packet = tmp_path / "packet"
    p = run_cli(
        "validate", "sample", str(planted.features), "--conversations", str(planted.logs),
        "--n", "24", "--out", str(packet),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    fake.default_actions = ["500", "ok"]  # every first attempt fails: the runner retries
    out = tmp_path / "judge.json"
    args = ["validate", "judge", "--packet", str(packet), "--out", str(out)]
    p = run_cli(*args, *_llm_args(fake, tmp_path), env=_env(tmp_path))
    assert p.returncode == 0, p.stderr
    items = [json.loads(x) for x in (packet / "items.jsonl").read_text().splitlines()]
    data = json.loads(out.read_text())
    assert data["kind"] == "llm" and data["failed"] == []
    assert len(data["judgments"]) == len(items) == 24
    by_item = {j["item"]: j for j in data["judgments"]}
    for it in items:
        j = by_item[it["item"]]
        f = it["features"]
        # complete: every extracted claim judged; the scripted judge doubts the first AI value
        assert list(j["ai_values"]) == f["ai_values"]
        assert [ok for ok in j["ai_values"].values()] == [False] + [True] * (
            len(f["ai_values"]) - 1
        )
        assert list(j["human_values"]) == f["human_values"]
        assert j["response_type"] == f["response_type"]
    assert load_judgments(out, {it["item"] for it in items}).kind == "llm"
    retried = sum(1 for r in fake.requests("/chat/completions") if r["status"] == 500)
    assert retried >= 24
    # a second run is served from the cache: no new request
    before = len(fake.requests("/chat/completions"))
    p = run_cli(*args, *_llm_args(fake, tmp_path), env=_env(tmp_path))
    assert p.returncode == 0 and len(fake.requests("/chat/completions")) == before
    # --refresh asks again
    p = run_cli(*args, *_llm_args(fake, tmp_path, "--refresh"), env=_env(tmp_path))
    assert p.returncode == 0 and len(fake.requests("/chat/completions")) > before
    # score takes the human's and the judge's judgments together
    human = tmp_path / "human.json"
    human.write_text(json.dumps(scripted_judgments(packet, planted.truth)))
    validity = tmp_path / "validity.json"
    p = run_cli("validate", "score", str(human), str(out), "--out", str(validity))
    assert p.returncode == 0, p.stderr
    res = json.loads(validity.read_text())
    assert res["accuracy_source"] == "human"
    (label,) = res["judge_vs_human"]
    assert label.startswith("llm:llm-judge:openai:judge-model")
    assert res["judge_vs_human"][label]["response_type"]["alpha"]["n_units"] == 24
    _no_key_anywhere(tmp_path, p.stdout, p.stderr)


def test_judge_max_cost_stops(planted, fake: FakeLLM, tmp_path: Path) -> None:
    out = tmp_path / "judge.json"
    args = [
        "validate", "judge", str(planted.features), "--conversations", str(planted.logs),
        "--n", "30", "--out", str(out),
    ]  # fmt: skip
    extra = ("--price", "1000,1000", "--max-cost", "2", "--concurrency", "1")
    p = run_cli(*args, *_llm_args(fake, tmp_path, *extra), env=_env(tmp_path))
    assert p.returncode == 3, p.stderr
    assert "--max-cost" in p.stderr and len(p.stderr.strip().splitlines()) <= 3
    data = json.loads(out.read_text())
    assert 0 < len(data["judgments"]) < 30
    assert len(data["judgments"]) + len(data["failed"]) == 30
    _no_key_anywhere(tmp_path, p.stdout, p.stderr)


def test_key_echoed_by_server_is_not_written(planted, fake: FakeLLM, tmp_path: Path) -> None:
    fake.default_actions = ["400echo"]
    out = tmp_path / "judge.json"
    args = [
        "validate", "judge", str(planted.features), "--conversations", str(planted.logs),
        "--n", "5", "--out", str(out),
    ]  # fmt: skip
    p = run_cli(*args, *_llm_args(fake, tmp_path), env=_env(tmp_path))
    data = json.loads(out.read_text())
    assert len(data["failed"]) == 5 and all("HTTP 400" in f["reason"] for f in data["failed"])
    _no_key_anywhere(tmp_path, p.stdout, p.stderr)


@pytest.fixture
def analysis(tmp_path: Path) -> Path:
    from valuescope import synth
    from valuescope.analyze import AnalyzeOptions, analyze_files
    from valuescope.report import write_report

    features = tmp_path / "synth.parquet"
    synth.write_corpus(features, 4000, seed=1, progress=False)
    out = tmp_path / "analysis"
    analyze_files([features], out, AnalyzeOptions(progress=False))
    # a leaked name among the published values, as if an extraction had let one through
    with (out / "ai_values.csv").open() as fh:
        rows = list(csv.reader(fh))
    rows.insert(2, ["Jane Doe"] + rows[2][1:])
    with (out / "ai_values.csv").open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    write_report(out)
    assert "Jane Doe" in (out / "report.html").read_text()
    return out


def test_privacy_audit_and_redaction(analysis: Path, fake: FakeLLM, tmp_path: Path) -> None:
    args = ["validate", "privacy", str(analysis), "--redact-below", "3"]
    p = run_cli(*args, *_llm_args(fake, tmp_path), env=_env(tmp_path))
    assert p.returncode == 0, p.stderr
    audit = list(csv.DictReader((analysis / "privacy_audit.csv").open()))
    values = [r[0] for r in csv.reader((analysis / "ai_values.csv").open())][1:]
    assert len(audit) >= len(values) > 0
    assert all(r["rating"] in {"1", "5"} for r in audit)
    flagged = [r for r in audit if r["rating"] == "1"]
    assert len(flagged) == 1 and flagged[0]["string"].startswith("[withheld")
    for path in analysis.rglob("*"):
        if path.is_file() and not path.name.endswith(".sqlite3"):
            assert "Jane Doe" not in path.read_text(errors="ignore"), path
    html = (analysis / "report.html").read_text()
    assert "[withheld by the privacy audit 1]" in html and "Privacy audit" in html
    _no_key_anywhere(tmp_path, p.stdout, p.stderr)


def test_auditor_accuracy_measured(fake: FakeLLM, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    from helpers.privacy_labels import LABELLED

    opts = ExtractOptions(
        provider="openai", model="audit", base_url=f"{fake.url}/v1", progress=False,
        backoff_base=0.01,
    )  # fmt: skip
    res = auditor_accuracy(LABELLED, opts, str(tmp_path / "cache"))
    assert res["n"] == len(LABELLED) and res["failed"] == 0
    # the scripted auditor flags e-mail addresses, digits and capitalised names: count by hand
    import re

    want = sum(
        (
            (
                "@" in s
                or bool(re.search(r"\d", s))
                or bool(re.search(r"\b[A-Z][a-z]+\s+[A-Z][a-z]+\b", s))
            )
            == lab
        )
        for s, lab in LABELLED
    )
    assert res["accuracy"] == pytest.approx(want / len(LABELLED))


def test_redaction_replaces_whole_cells_and_inside_descriptions_only(tmp_path: Path) -> None:
    from valuescope.validate.privacy import redact

    (tmp_path / "t.csv").write_text(
        "value,n_conversations,description\n1234,12345,members: 1234 and Jane Roe\nJane Roe,99,x\n"
    )
    (tmp_path / "s.json").write_text(json.dumps({"top": ["Jane Roe", "Jane Roe!"], "n": 1234}))
    labels = redact(tmp_path, ["1234", "Jane Roe"])
    rows = list(csv.reader((tmp_path / "t.csv").open()))
    one, two = labels["1234"], labels["Jane Roe"]
    assert rows[1] == [one, "12345", f"members: {one} and {two}"]  # the number is left whole
    assert rows[2] == [two, "99", "x"]
    assert json.loads((tmp_path / "s.json").read_text()) == {"top": [two, "Jane Roe!"], "n": 1234}
