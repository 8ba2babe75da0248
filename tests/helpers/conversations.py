"""Conversation files for the extraction tests: each record can carry a fault marker that the fake
LLM server (tests/fakellm.py) acts on."""

from __future__ import annotations

import json
from pathlib import Path


def write_conversations(path: Path, faults: list[str], extra: list[str] = ()) -> list[str]:
    ids = []
    with path.open("w") as fh:
        for i, fault in enumerate(faults):
            cid = f"c{i:03d}"
            ids.append(cid)
            text = f"Conversation {i}: should I tell my friend the truth?"
            if fault:  # no marker: the server's default_actions apply
                text += f" [[fault:{fault}]]"
            rec = {
                "conversation_id": cid,
                "user_id": f"u{i % 3}",
                "model": "chat-model",
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": "Honesty matters, but be kind."},
                ],
            }
            fh.write(json.dumps(rec) + "\n")
        for line in extra:
            fh.write(line + "\n")
    return ids
