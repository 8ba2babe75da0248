"""The report's Validity section: built from the files `validate` writes into the analysis
directory (lint.json, validity.json, agreement.json, privacy_audit.csv), with the figures as
computed; without them it says that nothing was validated, and the Method section says what was
and was not."""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers.report import build_analysis
from helpers.validate import planted_corpus, run_cli, scripted_judgments
from valuescope.report import write_report


def _section(html: str, title: str) -> str:
    m = re.search(rf"<h2[^>]*>{title}</h2>(.*?)(?=<h2|\Z)", html, re.S)
    assert m, title
    return m.group(1)


def test_not_validated(tmp_path: Path) -> None:
    html_path, md_path = write_report(build_analysis(tmp_path))
    html = html_path.read_text()
    assert "Not validated" in _section(html, "Validity")
    assert "Not measured" in _section(html, "Method")
    assert "## Validity" in md_path.read_text()


def test_validity_section_from_validate_files(tmp_path: Path) -> None:
    analysis = build_analysis(tmp_path)
    planted = planted_corpus(tmp_path)
    packet = tmp_path / "packet"
    p = run_cli(
        "validate", "sample", str(planted.features), "--conversations", str(planted.logs),
        "--n", "150", "--out", str(packet),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    j = tmp_path / "j.json"
    j.write_text(json.dumps(scripted_judgments(packet, planted.truth)))
    assert (
        run_cli("validate", "score", str(j), "--out", str(analysis / "validity.json")).returncode
        == 0
    )
    p = run_cli(
        "validate", "compare", str(planted.features), str(planted.features), "--out", str(analysis)
    )
    assert p.returncode == 0, p.stderr
    p = run_cli("validate", "lint", str(planted.features), "--out", str(analysis / "lint.json"))
    assert p.returncode == 0, p.stderr
    (analysis / "privacy_audit.csv").write_text(
        "string,sources,rating,error\nhonesty,ai_values.csv:value,5,\nclarity,ai_values.csv:value,4,\n"
    )
    html_path, md_path = write_report(analysis)
    sec = _section(html_path.read_text(), "Validity")
    v = json.loads((analysis / "validity.json").read_text())
    est = v["accuracy"]["ai_value_support"]["weighted"]
    assert f"{100 * est['p']:.1f}%" in sec
    assert f"{100 * est['ci95'][0]:.1f}% to {100 * est['ci95'][1]:.1f}%" in sec
    assert "98.8% (paper" in sec and "re-weighted to the corpus" in sec
    # a file compared with itself agrees perfectly
    assert "Agreement between two extraction runs" in sec and "1.000" in sec
    assert "Automatic checks over 3,000 conversations" in sec
    assert "Privacy audit" in sec and "98% of 1,237" in sec
    method = _section(html_path.read_text(), "Method")
    assert "Not measured" not in method and "validate privacy" in method
    assert "Accuracy of the extraction" in md_path.read_text()
