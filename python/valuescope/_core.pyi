"""Type stubs for the native module valuescope._core (kept by hand, checked by stubtest)."""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = [
    "Engine",
    "ValuescopeError",
    "SchemaError",
    "ConfigError",
    "StateError",
    "SpillError",
    "KMeansError",
    "DataError",
    "STATE_FORMAT_VERSION",
    "__version__",
    "bonferroni_threshold",
    "normalize",
    "MiniBatchKMeans",
    "KMeans",
    "synth_batches",
    "static_embed",
    "wordpiece_ids",
    "csv_bytes",
    "ParquetReader",
    "ParquetReadError",
    "FeatureBatch",
    "parquet_row_groups",
    "FEATURE_COLUMNS",
    "RESPONSE_TYPES",
    "DEFAULT_MIN_CONVERSATIONS",
    "DEFAULT_MIN_USERS",
    "DEFAULT_ALPHA",
]
__version__: str
STATE_FORMAT_VERSION: int
#: The feature schema: (column name, Arrow logical type, required) in file order.
FEATURE_COLUMNS: tuple[tuple[str, str, bool], ...]
#: The seven response types, in output order.
RESPONSE_TYPES: tuple[str, ...]
DEFAULT_MIN_CONVERSATIONS: int
DEFAULT_MIN_USERS: int
DEFAULT_ALPHA: float

class ValuescopeError(Exception):
    """The base of every error valuescope raises."""

class SchemaError(ValuescopeError, ValueError):
    """The input does not follow the feature schema (a missing or wrongly typed column)."""

class ParquetReadError(ValuescopeError, OSError):
    """A Parquet file this reader cannot open or decode (pyarrow may still read it)."""

class ConfigError(ValuescopeError, ValueError):
    """A setting is out of range, or two engines with different settings were merged."""

class StateError(ValuescopeError, ValueError):
    """Saved engine state that cannot be read (damaged, truncated, or another format)."""

class SpillError(ValuescopeError, OSError):
    """The engine could not write or read its spill files (the tables' overflow to disk)."""

class KMeansError(ValuescopeError, ValueError):
    """k-means refused its parameters or data, or was used before it was fitted."""

class DataError(ValuescopeError, ValueError):
    """Arrow data that cannot be read: malformed buffers, or a stream that failed."""

@final
class FeatureBatch:
    """One batch decoded by ``ParquetReader``: ``Engine.update`` takes it as it is, and it
    exports itself through ``__arrow_c_array__`` (``pyarrow.record_batch(b)``)."""

    @property
    def num_rows(self) -> int: ...
    def slice(self, offset: int = 0, length: int | None = None) -> FeatureBatch: ...
    def __arrow_c_array__(self, requested_schema: Any = None) -> tuple[Any, Any]: ...

def parquet_row_groups(path: str | os.PathLike[str]) -> list[int]:
    """Rows in each row group of a Parquet file (its footer only is read)."""

@final
class ParquetReader:
    """The batches of a Parquet feature file, decoded ahead on a thread of their own: the
    ``columns`` the file has, the string columns named in ``dictionary`` (and their lists)
    as dictionaries, only the given ``row_groups`` if set."""

    def __new__(
        cls,
        path: str | os.PathLike[str],
        columns: list[str],
        dictionary: list[str] = ...,
        batch_size: int = 65536,
        row_groups: list[int] | None = None,
    ) -> ParquetReader: ...
    @property
    def num_rows(self) -> int:
        """Rows this reader yields."""
    def empty(self) -> FeatureBatch:
        """No rows, the schema of every batch: enough to check the columns."""
    def __iter__(self) -> ParquetReader: ...
    def __next__(self) -> FeatureBatch: ...
    def close(self) -> None:
        """Stops decoding and frees the batches decoded ahead."""

@final
class Engine:
    """Streaming, mergeable analysis of extracted-feature rows."""

    def __new__(
        cls,
        tables: list[tuple[str, str]] | None = None,
        min_conversations: int = ...,  # DEFAULT_MIN_CONVERSATIONS
        min_users: int = ...,  # DEFAULT_MIN_USERS
        alpha: float = ...,  # DEFAULT_ALPHA
        n_tests: int | None = None,
        memory_limit: int | None = None,
        spill_dir: str | os.PathLike[str] | None = None,
    ) -> Engine:
        """``memory_limit`` (bytes) bounds the co-occurrence tables in memory: past it their
        cells go to run files in a private directory under ``spill_dir`` (default: the system
        temporary directory), removed with the engine. Results are the same either way. The
        limit is a setting of this process: it is not pickled, merged or compared."""
    def update(self, data: FeatureBatch | Any) -> pa.Table:
        """Stream every batch of an Arrow object (``__arrow_c_stream__`` / ``__arrow_c_array__``)
        or a ``FeatureBatch`` into the engine. Returns the rejected rows as a table: ``row,
        conversation_id, reason``."""
    def update_tuples(self, data: FeatureBatch | Any) -> list[tuple[int, str | None, str]]:
        """As ``update``, with the rejected rows as ``(row, conversation_id, reason)`` tuples:
        reading them needs no pyarrow."""
    def feed(self, data: FeatureBatch | Any) -> list[tuple[int, str | None, str]]:
        """The old name of ``update_tuples``, kept working."""
    def merge(self, other: Engine) -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> Engine: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def result(self) -> dict[str, Any]:
        """``{"summary": dict, "ai_values": pa.Table, ..., "tables/<A>__<B>": pa.Table}``;
        ``model_comparison_within_tasks`` only when there are two published models and strata."""
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
    @property
    def spilled(self) -> tuple[int, int]:
        """(bytes written to spill files, number of spills)."""
    @property
    def table_bytes(self) -> int:
        """Estimated bytes the co-occurrence tables hold in memory now."""

def normalize(value: str) -> str: ...
def bonferroni_threshold(alpha: float, n_tests: int) -> float: ...
def csv_bytes(data: Any, columns: list[str] | None = None, header: bool = True) -> bytes:
    """The table as CSV bytes: a header line (unless `header` is false), then one line per row
    (`columns` picks and orders)."""

def synth_batches(
    spec_json: str, n: int, seed: int, batch_size: int = 131072, dictionary: bool = True
) -> pa.RecordBatchReader:
    """Rows [0, n) of the synthetic corpus described by the JSON spec (see valuescope.synth)."""

def static_embed(
    table: npt.NDArray[np.float32],
    weights: npt.NDArray[np.float32],
    ids: npt.NDArray[np.uint32],
    offsets: npt.NDArray[np.int64],
) -> npt.NDArray[np.float32]:
    """Per text (ids[offsets[i]:offsets[i + 1]]) the weighted mean of its tokens' table rows,
    L2-normalised; zeros for a text without weighted tokens."""

def wordpiece_ids(
    vocab: list[str], texts: list[str]
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
    """BERT uncased WordPiece ids of ASCII texts, concatenated, and each text's offsets."""

@final
class MiniBatchKMeans:
    """Mini-batch k-means (Sculley 2010) with scikit-learn's interface and schedule, in Rust.

    float32 / float64 C-contiguous input is read without a copy; the GIL is released while it
    works. NaN or infinite input, ``n_clusters > n_samples`` and empty input raise
    ``KMeansError`` (a ValueError).
    """

    def __new__(
        cls,
        n_clusters: int = 8,
        *,
        init: str | npt.ArrayLike = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        compute_labels: bool = True,
        random_state: int | None = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
    ) -> MiniBatchKMeans: ...
    def fit(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> MiniBatchKMeans: ...
    def partial_fit(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> MiniBatchKMeans: ...
    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int32]: ...
    def fit_predict(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.int32]: ...
    def score(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> float: ...
    def get_params(self, deep: bool = True) -> dict[str, Any]: ...
    def set_params(self, **params: Any) -> MiniBatchKMeans: ...
    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...
    @property
    def n_clusters(self) -> int: ...
    @property
    def init(self) -> str | npt.NDArray[np.float64]: ...
    @property
    def max_iter(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def compute_labels(self) -> bool: ...
    @property
    def random_state(self) -> int | None: ...
    @property
    def tol(self) -> float: ...
    @property
    def max_no_improvement(self) -> int | None: ...
    @property
    def init_size(self) -> int | None: ...
    @property
    def n_init(self) -> int | str: ...
    @property
    def reassignment_ratio(self) -> float: ...
    @property
    def cluster_centers_(self) -> npt.NDArray[np.floating[Any]]: ...
    @property
    def labels_(self) -> npt.NDArray[np.int32]: ...
    @property
    def inertia_(self) -> float: ...
    @property
    def n_steps_(self) -> int: ...
    @property
    def n_iter_(self) -> int: ...
    @property
    def n_features_in_(self) -> int: ...

@final
class KMeans:
    """Full-batch (Lloyd) k-means with scikit-learn's ``KMeans`` interface and schedule, in Rust.

    Each of ``n_init`` k-means++ starts runs to convergence; the lowest final inertia is kept.
    float32 / float64 C-contiguous input is read without a copy; the GIL is released while it
    works. NaN or infinite input, ``n_clusters > n_samples`` and empty input raise
    ``KMeansError`` (a ValueError).
    """

    def __new__(
        cls,
        n_clusters: int = 8,
        *,
        init: str | npt.ArrayLike = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 0.0001,
        random_state: int | None = None,
    ) -> KMeans: ...
    def fit(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> KMeans: ...
    def predict(self, X: npt.ArrayLike) -> npt.NDArray[np.int32]: ...
    def fit_predict(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.int32]: ...
    def score(
        self, X: npt.ArrayLike, y: Any = None, sample_weight: npt.ArrayLike | None = None
    ) -> float: ...
    def get_params(self, deep: bool = True) -> dict[str, Any]: ...
    def set_params(self, **params: Any) -> KMeans: ...
    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...
    @property
    def n_clusters(self) -> int: ...
    @property
    def init(self) -> str | npt.NDArray[np.float64]: ...
    @property
    def n_init(self) -> int | str: ...
    @property
    def max_iter(self) -> int: ...
    @property
    def tol(self) -> float: ...
    @property
    def random_state(self) -> int | None: ...
    @property
    def cluster_centers_(self) -> npt.NDArray[np.floating[Any]]: ...
    @property
    def labels_(self) -> npt.NDArray[np.int32]: ...
    @property
    def inertia_(self) -> float: ...
    @property
    def n_iter_(self) -> int: ...
    @property
    def n_features_in_(self) -> int: ...
