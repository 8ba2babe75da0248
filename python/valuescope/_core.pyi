"""Type stubs for the native module valuescope._core (kept by hand, checked by stubtest)."""

from typing import Any

import pyarrow as pa

__version__: str
STATE_FORMAT_VERSION: int

class SchemaError(ValueError):
    """The input does not follow the feature schema (a missing or wrongly typed column)."""

class Engine:
    """Streaming, mergeable analysis of extracted-feature rows."""

    def __new__(
        cls,
        tables: list[tuple[str, str]] | None = None,
        min_conversations: int = 15,
        min_users: int = 10,
        alpha: float = 0.05,
        n_tests: int | None = None,
    ) -> Engine: ...
    def update(self, data: Any) -> pa.Table:
        """Stream every batch of an Arrow object (``__arrow_c_stream__`` / ``__arrow_c_array__``)
        into the engine. Returns the rejected rows: ``row, conversation_id, reason``."""
    def merge(self, other: Engine) -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Engine: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def result(self) -> dict[str, Any]:
        """``{"summary": dict, "ai_values": pa.Table, ..., "tables/<A>__<B>": pa.Table}``."""
    @property
    def min_conversations(self) -> int: ...
    @property
    def min_users(self) -> int: ...
    @property
    def alpha(self) -> float: ...
    @property
    def n_tests(self) -> int | None: ...
    @property
    def tables(self) -> list[tuple[str, str]] | None: ...
    @property
    def n_rows(self) -> int: ...

def normalize(value: str) -> str: ...
def bonferroni_threshold(alpha: float, n_tests: int) -> float: ...
