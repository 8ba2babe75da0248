"""Reading extracted-feature files (Parquet) batch by batch, with errors that name the file."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuescope._core import ParquetReader, ParquetReadError, parquet_row_groups
from valuescope.errors import UserError
from valuescope.schema import FEATURE_COLUMNS, VALUE_LIST_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

# pyarrow is imported where it is used: valuescope's own reader does the common work, and
# `analyze` then needs pyarrow only for its results (its import takes a tenth of a second).


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, directories expanded to the Parquet files below them (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix in (".parquet", ".pq")
            )
            if not found:
                raise UserError(f"{p}: directory holds no .parquet files")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or directory")
    return out


#: Columns with few distinct values, decoded as Arrow dictionaries so that the engine resolves
#: each distinct string once per batch instead of once per row: the scalar ones, and the value
#: lists' elements (where pyarrow cannot decode a file's lists that way, plain strings are read).
DICTIONARY_COLUMNS = ("model", "task", "task_cluster", "response_type")
DICTIONARY_LISTS = VALUE_LIST_COLUMNS


def _dictionary_paths(pf: pq.ParquetFile, nested: bool) -> list[str]:
    import pyarrow as pa

    schema = pf.schema_arrow
    cols = [
        c
        for c in DICTIONARY_COLUMNS
        if c in schema.names and pa.types.is_string(schema.field(c).type)
    ]
    if nested:
        for c in DICTIONARY_LISTS:
            t = schema.field(c).type if c in schema.names else None
            if t is not None and pa.types.is_list(t) and pa.types.is_string(t.value_type):
                # the element's name depends on the writer ("element", "item", ...)
                cols += [
                    pf.schema.column(i).path
                    for i in range(len(pf.schema))
                    if pf.schema.column(i).path.split(".")[0] == c
                ]
    return cols


def open_parquet(path: Path, dictionary: bool = False, nested: bool = True) -> pq.ParquetFile:
    # pre_buffer (pyarrow's default) keeps every column chunk it has read until the file is
    # closed: reading a file batch by batch would then hold all of it, compressed (169 MB
    # for 10M synthetic rows). Without it memory stays flat, at the same speed.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, pre_buffer=False)
        if dictionary:
            cols = _dictionary_paths(pf, nested)
            if cols:
                pf = pq.ParquetFile(path, read_dictionary=cols, pre_buffer=False)
        return pf
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None


def check_columns(files: Iterable[Path], tables: Sequence[tuple[str, str]] | None = None) -> None:
    """Refuses, before any work, a file whose columns the engine would refuse (missing or of
    the wrong type), naming the file and the column. The engine checks the columns of every
    batch it reads, but a file without rows gives it no batch: without this check a zero-row
    file with the wrong columns would pass unnoticed. The check is the engine's own, on one
    all-null row built from the file's schema (by valuescope's reader: a batch without rows
    of the schema its batches will have)."""
    from valuescope._core import Engine, SchemaError

    wanted = list(FEATURE_COLUMNS)
    for a, b in tables or []:
        wanted += [c for c in (a, b) if c not in wanted]
    for path in files:
        try:
            probe: Any = ParquetReader(str(path), wanted, _dictionary_names()).empty()
        except ParquetReadError:
            probe = _null_row(path, wanted)
        if probe is None:
            continue
        try:
            Engine(tables=tables, min_conversations=1, min_users=1).feed(probe)
        except SchemaError as exc:
            raise UserError(f"{path}: {exc}") from None


def _null_row(path: Path, wanted: Sequence[str]) -> pa.RecordBatch | None:
    import pyarrow as pa

    schema = open_parquet(path).schema_arrow
    fields = [schema.field(c).with_nullable(True) for c in wanted if c in schema.names]
    try:
        return pa.RecordBatch.from_arrays(
            [pa.nulls(1, f.type) for f in fields], schema=pa.schema(fields)
        )
    except (pa.ArrowException, TypeError, ValueError):
        return None  # a type pyarrow cannot fill with nulls; the batches are checked anyway


def read_batches(
    path: Path,
    columns: Iterable[str],
    batch_size: int,
    row_groups: list[int] | None = None,
    start: int = 0,
) -> Iterator[pa.RecordBatch]:
    """The file's batches (wanted columns only, from row `start` of the row groups read),
    dictionary-decoded where pyarrow can. If it cannot decode the value lists as dictionaries
    part way through, the rest is read again as plain strings from where it stopped: the
    engine takes either, batch by batch."""
    import pyarrow as pa

    done = start
    for nested in (True, False):
        pf = open_parquet(path, dictionary=True, nested=nested)
        names = set(pf.schema_arrow.names)
        wanted = [c for c in columns if c in names]
        skip = done
        try:
            for b in pf.iter_batches(batch_size=batch_size, columns=wanted, row_groups=row_groups):
                if skip >= b.num_rows:
                    skip -= b.num_rows
                    continue
                if skip:
                    b, skip = b.slice(skip), 0
                done += b.num_rows
                yield b
            return
        except pa.ArrowNotImplementedError:
            if not nested:
                raise


def row_group_rows(path: Path) -> list[int]:
    """Rows in each row group of the file."""
    try:
        return parquet_row_groups(str(path))
    except ParquetReadError:
        md = open_parquet(path).metadata
        return [md.row_group(g).num_rows for g in range(md.num_row_groups)]


def count_rows(files: Iterable[Path]) -> int:
    return sum(sum(row_group_rows(f)) for f in files)


def iter_batches(
    path: Path,
    columns: Iterable[str],
    batch_size: int = 65_536,
    row_groups: Sequence[int] | None = None,
    first_row: int = 0,
) -> Iterator[Any]:
    """Batches holding the wanted columns that the file has (of the given row groups, whose
    first row is `first_row` of the file), decoded ahead on another thread so that decoding
    overlaps the engine's work.

    valuescope's own reader (Rust) decodes them; a file it cannot open or decode is read with
    pyarrow from where it stopped, which reads more (codecs, damaged pages it tolerates) and
    names what is wrong: bytes that are not UTF-8 pass pyarrow and are then refused by the
    engine with the column and rows."""
    columns = list(columns)
    groups = None if row_groups is None else list(row_groups)
    done = 0
    try:
        reader = ParquetReader(str(path), columns, _dictionary_names(), batch_size, groups)
        for batch in reader:
            yield batch
            done += batch.num_rows
        return
    except ParquetReadError:
        pass
    rest = read_batches(path, columns, batch_size, groups, start=done)
    yield from _prefetch(rest, path, first_row=first_row + done)


def iter_record_batches(
    path: Path, columns: Iterable[str], batch_size: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """As `iter_batches`, as pyarrow record batches (for code that reads them in Python)."""
    import pyarrow as pa

    for b in iter_batches(path, columns, batch_size):
        yield b if isinstance(b, pa.RecordBatch) else pa.record_batch(b)


def _dictionary_names() -> list[str]:
    return [*DICTIONARY_COLUMNS, *DICTIONARY_LISTS]


_DONE = object()


def _prefetch(
    it: Iterator[pa.RecordBatch], path: Path, depth: int = 2, first_row: int = 0
) -> Iterator:
    import pyarrow as pa

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Queues item unless the consumer has gone; False once it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        row = first_row
        try:
            for b in it:
                if not offer(b):
                    return
                row += b.num_rows
            offer(_DONE)
        except (pa.ArrowException, OSError) as exc:
            why = _first_line(exc)
            offer(UserError(f"{path}: cannot read Parquet data at or after row {row} ({why})"))

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, UserError):
                raise item
            yield item
    finally:
        stop.set()
        # Wait for the reader: a thread still inside Arrow's C++ decoder at interpreter exit
        # aborts the process ("terminate called without an active exception").
        t.join()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
