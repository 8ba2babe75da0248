"""validate sample and score: the packet is complete, blinded and reproducible; planted truth
judged by a scripted reviewer gives intervals that hold the planted rates, and the stratified
sample re-weighted recovers the corpus rate where the unweighted share does not; bad judgments
files get one line naming the file and the item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.validate import PII, STRATA, planted_corpus, run_cli, scripted_judgments
from valuescope.validate.common import load_judgments
from valuescope.validate.sample import allocate
from valuescope.validate.score import score


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    return planted_corpus(tmp_path_factory.mktemp("planted"))


def _sample(planted, out: Path, *extra: str) -> None:
    p = run_cli(
        "validate", "sample", str(planted.features), "--conversations", str(planted.logs),
        "--out", str(out), *extra,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


def _items(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]


def test_allocate_equal_then_shared() -> None:
    assert allocate({"a": 1000, "b": 10, "c": 3}, 60) == {"a": 47, "b": 10, "c": 3}
    assert allocate({"a": 5, "b": 5}, 100) == {"a": 5, "b": 5}
    got = allocate({"a": 100, "b": 100, "c": 100}, 100)
    assert sum(got.values()) == 100 and max(got.values()) - min(got.values()) <= 1


def test_packet_complete_blinded_reproducible(planted, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _sample(planted, a, "--n", "120", "--seed", "3")
    _sample(planted, b, "--n", "120", "--seed", "3")
    assert (a / "items.jsonl").read_bytes() == (b / "items.jsonl").read_bytes()
    items = _items(a)
    packet = json.loads((a / "packet.json").read_text())
    assert len(items) == 120 == packet["n"]
    ids = [it["conversation_id"] for it in items]
    assert len(set(ids)) == 120
    # every stratum represented, counts as recorded, rare ones over-sampled
    counts = {}
    for it in items:
        counts[it["stratum"]] = counts.get(it["stratum"], 0) + 1
    assert counts == {s: v["sampled"] for s, v in packet["sample"]["strata"].items()}
    assert set(counts) == set(STRATA)
    assert {s: v["population"] for s, v in packet["sample"]["strata"].items()} == {
        s: size for s, (size, _) in STRATA.items()
    }
    html = (a / "review.html").read_text()
    # every sampled conversation is in the page, with its text
    for it in items:
        assert f"conversation {it['conversation_id']}:" in html
        assert it["item"] in html
    # blinded: the extraction model's name appears nowhere a reviewer looks
    for f in ("review.html", "items.jsonl", "packet.json"):
        assert "secret-model-name" not in (a / f).read_text()
    # offline: no external resource
    for needle in ("http://", "https://", "src=", "<link", "@import"):
        assert needle not in html.replace(PII, "").replace("https://example.org/x", ""), needle
    assert "row-level data" in html
    # a different seed gives a different sample
    c = tmp_path / "c"
    _sample(planted, c, "--n", "120", "--seed", "4")
    assert [it["conversation_id"] for it in _items(c)] != ids


def test_redact(planted, tmp_path: Path) -> None:
    _sample(planted, tmp_path, "--n", "20", "--redact")
    text = (tmp_path / "review.html").read_text() + (tmp_path / "items.jsonl").read_text()
    for secret in ("jo.smith@example.com", "555", "example.org", "99887766"):
        assert secret not in text
    assert "[email]" in text and "[url]" in text


def test_missing_logs_is_an_error(planted, tmp_path: Path) -> None:
    logs = tmp_path / "few.jsonl"
    logs.write_text("".join(planted.logs.read_text().splitlines(keepends=True)[:10]))
    p = run_cli(
        "validate", "sample", str(planted.features), "--conversations", str(logs),
        "--out", str(tmp_path / "p"), "--n", "50",
    )  # fmt: skip
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "not in the conversation logs" in p.stderr


def _contains(entry: dict, rate: float) -> bool:
    lo, hi = entry["ci95"]
    return lo <= rate <= hi


def test_planted_truth_stratified_reweighting(planted, tmp_path: Path) -> None:
    packet = tmp_path / "packet"
    _sample(planted, packet, "--n", "300", "--seed", "11")
    j = tmp_path / "judgments.json"
    j.write_text(json.dumps(scripted_judgments(packet, planted.truth)))
    out = tmp_path / "validity.json"
    p = run_cli("validate", "score", str(j), "--out", str(out), "--packet", str(packet))
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    acc = res["accuracy"]
    assert res["reweighted"] is True
    for claim in ("ai_value_support", "subjective", "human_value_precision", "response_type"):
        assert _contains(acc[claim]["weighted"], planted.rates[claim]), (claim, acc[claim])
    # response types are wrong far more often in the rare strata, which the stratified sample
    # over-represents: the plain share misses the corpus rate, the re-weighted one finds it
    rt = acc["response_type"]
    assert not _contains(rt["unweighted"], planted.rates["response_type"]), rt
    assert abs(rt["weighted"]["p"] - planted.rates["response_type"]) < abs(
        rt["unweighted"]["p"] - planted.rates["response_type"]
    )
    # the confusion matrix counts every judged item, the wrong ones off the diagonal
    m = rt["confusion"]["matrix"]
    assert sum(map(sum, m)) == 300
    off = sum(m[i][k] for i in range(len(m)) for k in range(len(m)) if i != k)
    assert off == round((1 - rt["unweighted"]["p"]) * 300)


def test_planted_truth_simple_sample(planted, tmp_path: Path) -> None:
    packet = tmp_path / "packet"
    _sample(planted, packet, "--n", "400", "--seed", "5", "--stratify", "none")
    files = []
    for name in ("ann", "bob"):
        j = tmp_path / f"{name}.json"
        j.write_text(json.dumps(scripted_judgments(packet, planted.truth, reviewer=name)))
        files.append(j)
    res = score(files)
    assert res["reweighted"] is False
    for claim in ("ai_value_support", "subjective", "human_value_precision", "response_type"):
        assert _contains(res["accuracy"][claim]["unweighted"], planted.rates[claim]), claim
    # two reviewers who agree on everything: alpha and kappa 1 where both codes vary
    agree = res["reviewer_agreement"]
    assert agree["ai_values"]["alpha"]["alpha"] == pytest.approx(1.0)
    (kappa,) = agree["response_type"]["kappa"].values()
    assert kappa["kappa"] == pytest.approx(1.0)


def _judgments_file(tmp_path: Path, planted, mutate) -> Path:
    packet = tmp_path / "packet"
    if not packet.exists():
        _sample(planted, packet, "--n", "30")
    data = scripted_judgments(packet, planted.truth)
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "label, mutate, needle",
    [
        (
            "unknown id",
            lambda d: d["judgments"][3].update(item="item-9999"),
            "item item-9999: unknown item id",
        ),
        ("duplicate", lambda d: d["judgments"].append(dict(d["judgments"][2])), "judged twice"),
        (
            "wrong shape",
            lambda d: d["judgments"][1].update(ai_values=["x"]),
            "'ai_values' must be an object",
        ),
        (
            "bad bool",
            lambda d: d["judgments"][4].update(subjective="yes"),
            "'subjective' must be true",
        ),
        (
            "bad type",
            lambda d: d["judgments"][0].update(response_type="agree"),
            "not one of the seven",
        ),
        (
            "no item",
            lambda d: d["judgments"][0].pop("item"),
            "judgment 0: each judgment needs an 'item'",
        ),
        ("not a list", lambda d: d.update(judgments={}), "'judgments' must be a list"),
        ("format", lambda d: d.update(format="other"), "not a valuescope judgments file"),
    ],
)
def test_bad_judgments_one_line(planted, tmp_path: Path, label, mutate, needle) -> None:
    path = _judgments_file(tmp_path, planted, mutate)
    p = run_cli("validate", "score", str(path), "--out", str(tmp_path / "v.json"))
    assert p.returncode == 2, (label, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, (label, p.stderr)
    assert str(path) in lines[0] and needle in lines[0], (label, lines[0])
    assert not (tmp_path / "v.json").exists()


def test_unknown_id_against_packet(planted, tmp_path: Path) -> None:
    packet = tmp_path / "packet"
    _sample(planted, packet, "--n", "30")
    data = scripted_judgments(packet, planted.truth)
    # an id that the file's own sample table claims, but the packet does not have
    data["sample"]["items"]["item-0999"] = dict(data["sample"]["items"]["item-0001"])
    data["judgments"][0]["item"] = "item-0999"
    path = tmp_path / "j.json"
    path.write_text(json.dumps(data))
    assert load_judgments(path).judgments  # consistent in itself
    p = run_cli(
        "validate", "score", str(path), "--packet", str(packet), "--out", str(tmp_path / "v.json")
    )
    assert p.returncode == 2 and "item item-0999: unknown item id" in p.stderr
