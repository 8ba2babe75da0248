"""Personal details inside extracted values: scrubbing leaves no placeholder ("[phone]",
"M[number]") as a value in the features, any analysis file or the report, and the dropped values
are counted as scrubbed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from fakellm import FakeLLM
from helpers.conversations import write_conversations
from helpers.extraction import options
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.extract import run_extract
from valuescope.report import write_report

N = 30


def test_planted_phone_numbers_leave_no_placeholder_anywhere(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    write_conversations(src, [""] * N)
    out = tmp_path / "features.parquet"
    with FakeLLM() as fake:
        fake.default_actions = ["placeholder"]
        s = run_extract([str(src)], str(out), options(fake, tmp_path))
    assert s.done == N
    # each answer: the phone number, "M1234567" (M[number]) and "[phone]" twice (two columns)
    assert s.scrubbed == 3 * N
    side = json.loads(Path(f"{out}.summary.json").read_text())
    assert side["scrubbed_values"] == 3 * N and side["extracted"] == N
    analysis = tmp_path / "analysis"
    # thresholds at their lowest, so that any value that reached the features is published
    analyze_files([out], analysis, AnalyzeOptions(min_conversations=1, min_users=1, progress=False))
    write_report(analysis)
    files = [out, *[p for p in analysis.rglob("*") if p.is_file()]]
    assert len(files) > 5
    for path in files:
        if path.suffix == ".parquet":  # compressed pages: search the decoded rows
            data = json.dumps(pq.read_table(path).to_pylist()).encode()
        else:
            data = path.read_bytes()
        for needle in (b"[phone]", b"[number]", b"123-4567", b"1234567"):
            assert needle not in data, (path, needle)
    ai = (analysis / "ai_values.csv").read_text()
    assert "honesty" in ai and "call me" in ai  # the rest of a value with a number stays
