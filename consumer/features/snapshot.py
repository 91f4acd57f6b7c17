"""Feature snapshots: the embedded store's user and item tables as swappable, file-backed snapshots.

A snapshot file is Parquet (``consumer.features.parquet``, what feature pipelines and Feast's
offline store write; a million items load in about a second) or CSV (``consumer.features.files``);
``features.snapshot_format = "auto"`` picks Parquet for ``.parquet``/``.pq`` names and CSV
otherwise.

`SnapshotStore` is the embedded `FileFeatureStore` with hot reload: it remembers which file (and
which version of it: inode, size, mtime) each table came from, and `replace` swaps a new table in
with one reference assignment, so a batch reads its users and items from one consistent pair and
never waits for a load. `check_compatible` is the validation a reloaded snapshot must pass before
it may replace the one serving: it keeps every feature column of the old one, with the same kind,
and is not empty unless the old one was. Loading and validating happen off the hot path
(`consumer.features.snapshot_watch`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from consumer.errors import ConfigError
from consumer.features.files import FileFeatureStore, gather_users, read_entity_csv
from consumer.features.parquet import read_entity_parquet
from consumer.features.source import BatchFeatures
from scoring.features import ItemTable

FORMATS: Final = ("auto", "csv", "parquet")
PARQUET_SUFFIXES: Final = (".parquet", ".pq")
USERS: Final = "user"
ITEMS: Final = "item"

Stamp = tuple[int, int, int]  # (inode, size, mtime_ns) of a snapshot file


def file_format(path: Path, configured: str = "auto") -> str:
    """``csv`` or ``parquet``: as configured, or by the file name's suffix for ``auto``."""
    if configured != "auto":
        return configured
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


def load_entity_file(path: Path, fmt: str = "auto", token: int | None = None) -> ItemTable:
    """An entity table from a snapshot file (``ConfigError`` if it cannot be read or typed);
    ``token`` (default: a digest of the content) keys the kernel's per-item caches."""
    if file_format(path, fmt) == "parquet":
        return read_entity_parquet(path, token)
    try:
        return read_entity_csv(path, token)
    except UnicodeDecodeError as exc:  # a binary file (say, Parquet) named like CSV
        raise ConfigError(f"cannot read feature file as UTF-8 CSV: {exc}", key=str(path)) from exc


def stamp_of(path: Path) -> Stamp | None:
    """The file's identity and version, or None when it cannot be seen."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def stamp_token(path: Path, stamp: Stamp) -> int:
    """A 63-bit token for the table read from ``path`` at version ``stamp``.

    Digesting a million-row table's content costs ~0.15 s of start-up; the file's identity and
    version name the same content for as long as the file is unchanged (a reload reads a new
    version under a new stamp, and a read that raced a writer is discarded by the watcher)."""
    digest = hashlib.blake2b(f"{path.resolve()}\0{stamp}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def load_snapshot(path: Path, fmt: str, stamp: Stamp | None) -> ItemTable:
    """A snapshot file's table, its token derived from the file's stamp when it has one."""
    return load_entity_file(path, fmt, None if stamp is None else stamp_token(path, stamp))


def _empty() -> ItemTable:
    return ItemTable.from_columns(np.zeros(0, np.int64), {}, {})


def check_compatible(entity: str, new: ItemTable, old: ItemTable) -> None:
    """Raise ``ConfigError`` unless ``new`` may replace ``old``: every categorical and dense column
    of ``old`` is still there (a dropped column would silently score with defaults), and the new
    table is not empty when the old one was not."""
    lost = [f"{k} (categorical)" for k in old.categorical if k not in new.categorical]
    lost += [f"{k} (dense)" for k in old.dense if k not in new.dense]
    if lost:
        raise ConfigError(f"{entity} snapshot lacks column(s) {', '.join(lost)}")
    if len(new) == 0 and len(old) > 0:
        raise ConfigError(f"{entity} snapshot is empty (the serving one has {len(old)} rows)")


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """Where one entity's snapshot comes from and which version of it is serving."""

    path: Path
    fmt: str
    stamp: Stamp | None


class SnapshotStore(FileFeatureStore):
    """The embedded store over snapshot files: one reference holds the serving (users, items).

    Readers (the scoring thread, the ranking API) take the pair once per batch without a lock;
    `replace` is called by one writer (the snapshot watcher) at a time.
    """

    def __init__(
        self, users: ItemTable, items: ItemTable, files: Mapping[str, SnapshotFile] | None = None
    ) -> None:
        super().__init__(users, items)
        self._pair = (users, items)
        self._files = dict(files or {})
        self._lock = threading.Lock()  # serialises writers; readers never take it

    @classmethod
    def open(cls, users_file: Path | None, items_file: Path | None, fmt: str) -> SnapshotStore:
        """Load both snapshots (either may be absent: an empty table)."""
        tables: dict[str, ItemTable] = {}
        files: dict[str, SnapshotFile] = {}
        for entity, path in ((USERS, users_file), (ITEMS, items_file)):
            if path is None:
                tables[entity] = _empty()
                continue
            stamp = stamp_of(path)
            tables[entity] = load_snapshot(path, fmt, stamp)
            files[entity] = SnapshotFile(path, fmt, stamp)
        return cls(tables[USERS], tables[ITEMS], files)

    @property
    def users(self) -> ItemTable:
        return self._pair[0]

    @property
    def items(self) -> ItemTable:
        return self._pair[1]

    @property
    def files(self) -> Mapping[str, SnapshotFile]:
        """The snapshot file of each entity loaded from one (``user``, ``item``)."""
        return dict(self._files)

    def table(self, entity: str) -> ItemTable:
        return self._pair[0] if entity == USERS else self._pair[1]

    def replace(self, entity: str, table: ItemTable, stamp: Stamp | None) -> None:
        """Serve ``table`` for ``entity`` from the next batch on (one reference assignment)."""
        with self._lock:
            users, items = self._pair
            self._pair = (table, items) if entity == USERS else (users, table)
            self._users, self._items = self._pair  # the base class's references: no stale copy
            known = self._files.get(entity)
            if known is not None:
                self._files[entity] = SnapshotFile(known.path, known.fmt, stamp)

    def fetch_now(self, user_ids: NDArray[np.int64], item_ids: NDArray[np.int64]) -> BatchFeatures:
        users, items = self._pair
        return BatchFeatures(users=gather_users(users, user_ids), items=items)
