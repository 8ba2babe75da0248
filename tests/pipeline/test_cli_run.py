"""`valuescope run` end to end: a real local LLM server (the fault-injecting fake), extraction,
taxonomy, analysis and report, with e-mail addresses and phone numbers in the conversations that
must not reach any file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fakellm import MARKER_VALUE, FakeLLM

KEY = "sk-test-RUNSECRET-0123456789abcdef"
PII = ["jane.doe@example.com", "+1 (555) 123-4567"]


def write_chats(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            # every fifth conversation asks for answers that carry identifying strings
            text = f"Chat {i}: my manager keeps asking me to cut corners. What should I do?"
            if i % 5 == 0:
                text += f" Reach me at {PII[0]} or {PII[1]}. [[fault:pii]]"
            if i % 7 == 0:
                text += " [[fault:429ra,ok]]"
            if i in (1, 2):  # two conversations, below the thresholds: never published
                text += " [[fault:marker]]"
            rec = {
                "id": f"conv-{i}",
                "user_id": f"user-{i % 30}",
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": "Be honest with your manager, kindly."},
                ],
            }
            fh.write(json.dumps(rec) + "\n")


def test_run_end_to_end(fake: FakeLLM, tmp_path: Path):
    src = tmp_path / "chats.jsonl"
    write_chats(src, 60)
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(OPENAI_API_KEY=KEY, VALUESCOPE_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "valuescope.cli", "run", str(src), "--out", str(out),
         "--provider", "openai", "--model", "fake-model", "--base-url", fake.url + "/v1",
         "--min-conversations", "5", "--min-users", "3", "--levels", "2,1", "--no-progress",
         "--retry-wait", "0.05"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    analysis = out / "analysis"
    for name in ["summary.json", "ai_values.csv", "report.html", "report.md",
                 "taxonomy/values_tree.csv"]:  # fmt: skip
        assert (analysis / name).is_file(), name
    summary = json.loads((analysis / "summary.json").read_text())
    assert summary["n_conversations"] == 60
    extraction = summary["extraction"]  # carried from the extraction's summary, through taxonomy
    assert extraction["model"] == "openai:fake-model"
    assert extraction["prompt_version"] == "v1"
    assert (extraction["records"], extraction["extracted"], extraction["rejected"]) == (60, 60, 0)
    assert extraction["reject_reasons"] == {}
    assert extraction["interrupted"] is False
    assert "openai:fake-model" in (analysis / "report.md").read_text()
    ai = (analysis / "ai_values.csv").read_text()
    assert "honesty" in ai and "empathy" in ai
    # the analysis crossed values with the task clusters the taxonomy made
    assert (analysis / "tables" / "ai_values__task_cluster.csv").is_file()
    written = [p for p in out.rglob("*") if p.is_file()]
    for p in written:
        blob = p.read_bytes()
        for needle in [*PII, KEY]:
            assert needle.encode() not in blob, f"{needle} in {p}"
    for needle in [*PII, KEY, MARKER_VALUE]:
        assert needle not in proc.stdout + proc.stderr
    # The marker reached the extracted features and the answer cache (raw data, like the input)
    # and nothing past the privacy rule: no analysis file, cluster name or report.
    raw = {out / "features.parquet", analysis / "taxonomy" / "features_clustered.parquet"}
    assert MARKER_VALUE.encode() in (out / "features.parquet").read_bytes()
    published = [p for p in written if p not in raw and ".valuescope-cache" not in p.parts]
    assert any(p.name == "report.html" for p in published)
    for p in published:
        assert MARKER_VALUE.encode() not in p.read_bytes(), f"marker in {p}"
