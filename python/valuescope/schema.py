"""The facts every stage shares about a feature file, read from the engine that enforces them.

The Rust core (``rust/core/src/schema.rs``) is their one home: the engine checks every batch
against it, so deriving the Python names from ``_core`` keeps the two from drifting apart. What
this module adds is only what Python needs on top: the Arrow types as pyarrow objects and the JSON
schema the extraction asks the model to fill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from valuescope import _core

if TYPE_CHECKING:
    import pyarrow as pa

#: Every column the engine reads, in the schema's order.
FEATURE_COLUMNS: tuple[str, ...] = tuple(name for name, _type, _req in _core.FEATURE_COLUMNS)
#: Column -> Arrow type name ("string", "bool", "list<string>").
FEATURE_TYPES: dict[str, str] = {name: t for name, t, _req in _core.FEATURE_COLUMNS}
#: Columns a feature file must have.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(n for n, _t, req in _core.FEATURE_COLUMNS if req)
#: Columns holding a list of values per conversation; the others hold one scalar.
VALUE_LIST_COLUMNS: tuple[str, ...] = tuple(
    n for n, t, _req in _core.FEATURE_COLUMNS if t.startswith("list<")
)
#: Columns only the task tables read.
TASK_COLUMNS: tuple[str, ...] = ("task", "task_cluster")

#: The seven ways an AI can respond to the user's values, strongest support first.
RESPONSE_TYPES: tuple[str, ...] = tuple(_core.RESPONSE_TYPES)

#: Clio's aggregation rule: a figure is published only if it describes at least this many
#: conversations from at least this many distinct users.
DEFAULT_MIN_CONVERSATIONS: int = _core.DEFAULT_MIN_CONVERSATIONS
DEFAULT_MIN_USERS: int = _core.DEFAULT_MIN_USERS
#: Family-wise error rate for the Bonferroni threshold.
DEFAULT_ALPHA: float = _core.DEFAULT_ALPHA

#: What the extraction model answers per conversation: the feature columns it fills (the ids,
#: the answering model and the task cluster come from elsewhere), in the order of the schema.
ANSWER_KEYS: tuple[str, ...] = (
    "subjective",
    "task",
    "ai_values",
    "ai_values_explicit",
    "human_values",
    "response_type",
)
_JSON_TYPES = {"bool": "boolean", "string": "string"}


def _answer_property(name: str) -> dict[str, Any]:
    if name == "response_type":
        return {"type": "string", "enum": list(RESPONSE_TYPES)}
    t = FEATURE_TYPES[name]
    if name in VALUE_LIST_COLUMNS:
        return {"type": "array", "items": {"type": _JSON_TYPES[t[len("list<") : -1]]}}
    return {"type": _JSON_TYPES[t]}


#: The JSON schema of the extraction answer (structured output, tool input, validation).
ANSWER_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {k: _answer_property(k) for k in ANSWER_KEYS},
    "required": list(ANSWER_KEYS),
    "additionalProperties": False,
}


def arrow_type(name: str) -> pa.DataType:
    """The pyarrow type of a feature column (pyarrow is imported only when asked)."""
    import pyarrow as pa

    t = FEATURE_TYPES[name]
    scalar = {"string": pa.string(), "bool": pa.bool_()}
    if name in VALUE_LIST_COLUMNS:
        return pa.list_(scalar[t[len("list<") : -1]])
    return scalar[t]


def arrow_fields(non_null: tuple[str, ...] = ()) -> list[pa.Field]:
    """One pyarrow field per feature column, nullable except those named in `non_null`."""
    import pyarrow as pa

    return [pa.field(n, arrow_type(n), nullable=n not in non_null) for n in FEATURE_COLUMNS]
