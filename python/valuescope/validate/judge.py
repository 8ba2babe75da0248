"""``validate judge``: an LLM checks the extraction the way a human reviewer does, through the
extraction's runner (rate limits, retries, the cache, --max-cost, keys kept out of every output),
and writes judgments in the reviewers' format, so that ``score`` takes both and reports how far
the judge agrees with the humans.

The judge sees one conversation and its extracted features (never which model extracted them)
and names what it finds wrong: the AI values the text does not support, the human values the
user does not state, whether a stated value is missing, the right response type and
subjectivity label, and whether the task is acceptable. Every extracted claim therefore gets a
judgment, even from a model that answers tersely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from valuescope import layout
from valuescope.errors import UserError
from valuescope.extract.answer import AnswerError
from valuescope.validate.common import (
    JUDGMENTS_FORMAT,
    JUDGMENTS_VERSION,
    PACKET_FILE,
    RESPONSE_TYPES,
    dump_json,
    load_conversations,
    load_features,
)

_STR_LIST = {"type": "array", "items": {"type": "string"}}
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unsupported_ai_values": _STR_LIST,
        "unstated_human_values": _STR_LIST,
        "human_value_missing": {"type": "boolean"},
        "response_type": {"type": "string", "enum": list(RESPONSE_TYPES)},
        "subjective": {"type": "boolean"},
        "task_ok": {"type": "boolean"},
    },
    "required": [
        "unsupported_ai_values",
        "unstated_human_values",
        "human_value_missing",
        "response_type",
        "subjective",
        "task_ok",
    ],
    "additionalProperties": False,
}
ANSWER_TOKENS = 256


def validate_verdict(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise AnswerError(f"the answer must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in JUDGE_SCHEMA["required"] if k not in obj]
    if missing:
        raise AnswerError(f"missing keys: {', '.join(missing)}")
    for k in ("unsupported_ai_values", "unstated_human_values"):
        if not isinstance(obj[k], list) or not all(isinstance(x, str) for x in obj[k]):
            raise AnswerError(f"'{k}' must be a list of strings")
    for k in ("human_value_missing", "subjective", "task_ok"):
        if not isinstance(obj[k], bool):
            raise AnswerError(f"'{k}' must be true or false")
    rtype = obj["response_type"]
    if not isinstance(rtype, str) or rtype.strip().lower() not in RESPONSE_TYPES:
        raise AnswerError(f"'response_type' must be one of: {', '.join(RESPONSE_TYPES)}")
    return {**{k: obj[k] for k in JUDGE_SCHEMA["required"]}, "response_type": rtype.strip().lower()}


def judge_message(messages: Sequence[dict[str, str]], features: dict[str, Any]) -> str:
    from valuescope.extract.prompts import CHARS_PER_TOKEN

    turns = "\n\n".join(
        f"{'User' if m['role'] == 'user' else 'AI' if m['role'] == 'assistant' else m['role']}: "
        f"{m['content'].strip()}"
        for m in messages
    )
    budget = 6000 * CHARS_PER_TOKEN
    if len(turns) > budget:
        turns = turns[: budget * 3 // 5] + "\n\n[...]\n\n" + turns[-(budget * 2 // 5) :]
    shown = {
        k: features[k] for k in ("task", "ai_values", "human_values", "response_type", "subjective")
    }
    return (
        f"<conversation>\n{turns}\n</conversation>\n\n"
        f"<features>\n{json.dumps(shown, ensure_ascii=False, indent=1)}\n</features>"
    )


def to_judgment(item: str, features: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    unsupported = {v.strip().lower() for v in verdict["unsupported_ai_values"]}
    unstated = {v.strip().lower() for v in verdict["unstated_human_values"]}
    extracted_subjective = features.get("subjective")
    return {
        "item": item,
        "ai_values": {v: v.strip().lower() not in unsupported for v in features["ai_values"]},
        "human_values": {v: v.strip().lower() not in unstated for v in features["human_values"]},
        "human_missing": verdict["human_value_missing"],
        "response_type": verdict["response_type"],
        "subjective": None
        if extracted_subjective is None
        else verdict["subjective"] == extracted_subjective,
        "task_ok": verdict["task_ok"],
    }


def _packet_items(packet_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from valuescope.validate.common import ITEMS_FILE

    try:
        meta = json.loads((packet_dir / PACKET_FILE).read_text(encoding="utf-8"))
        items = [
            json.loads(line)
            for line in (packet_dir / ITEMS_FILE).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except (OSError, ValueError) as exc:
        raise UserError(f"{packet_dir}: not a review packet ({exc})") from None
    return meta, items


def judge(
    opts: Any,
    out: Path,
    *,
    packet_dir: Path | None = None,
    features: Sequence[str] = (),
    conversation_files: Sequence[str] = (),
    n: int = 200,
    seed: int = 0,
    stratify: str = "response_type",
    cache_dir: str | None = None,
) -> tuple[dict[str, Any], Any, dict[str, str]]:
    """Judge a review packet (``packet_dir``) or a fresh sample of ``features``; write the
    judgments file to ``out``. Returns (the judgments file's content, the runner's summary,
    the failure reason per item)."""
    from valuescope.extract.prompts import load_prompt
    from valuescope.extract.run import Task, run_tasks
    from valuescope.validate.sample import build_packet

    if packet_dir is not None:
        meta, items = _packet_items(packet_dir)
        packet_id, sample = meta["packet"], meta["sample"]
    else:
        rows = load_features(features)
        if not rows:
            raise UserError(f"{', '.join(map(str, features))}: no rows to judge")
        from valuescope.validate.sample import draw

        picked, _ = draw(rows, n, seed, stratify)
        convs = load_conversations(conversation_files, {r["conversation_id"] for _, r in picked})
        packet = build_packet(rows, convs, n, seed, stratify, redact=False)
        items, packet_id, sample = packet["items"], packet["packet"], packet["sample"]
    tasks = [
        Task(it["item"], "judge", judge_message(it["messages"], it["features"])) for it in items
    ]
    kinds = {"judge": (load_prompt("judge"), JUDGE_SCHEMA, validate_verdict, ANSWER_TOKENS)}
    cache = os.path.join(
        cache_dir or os.path.join(out.parent, layout.EXTRACT_CACHE_DIR), layout.JUDGE_CACHE_DB
    )
    results, failures, summary = run_tasks(opts, tasks, kinds, cache)
    judgments = [
        to_judgment(it["item"], it["features"], results[it["item"]])
        for it in items
        if it["item"] in results
    ]
    data = {
        "format": JUDGMENTS_FORMAT,
        "version": JUDGMENTS_VERSION,
        "packet": packet_id,
        "reviewer": f"llm-judge:{opts.provider}:{opts.model}",
        "kind": "llm",
        "sample": sample,
        "judgments": judgments,
        "failed": [{"item": k, "reason": v} for k, v in sorted(failures.items())],
    }
    dump_json(out, data)
    return data, summary, failures
