"""Keep API keys out of everything the runner writes or raises."""

from __future__ import annotations

import re

# Key-shaped tokens that a server may echo back (sometimes partly masked) even if they are not
# this run's key: OpenAI-style "sk-...", Anthropic "sk-ant-...", bearer tokens.
_KEYLIKE = re.compile(r"(?:sk-[A-Za-z0-9_\-*.]{6,}|(?i:bearer)\s+[A-Za-z0-9_\-.=*]{8,})")


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
            # A server may echo a prefix or suffix of the key (OpenAI masks the middle).
            if len(secret) >= 16:
                text = text.replace(secret[:12], "[redacted]").replace(secret[-8:], "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)
