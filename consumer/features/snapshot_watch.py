"""The snapshot watcher: a daemon thread that hot-reloads changed feature snapshot files.

Every `interval_s` seconds it compares each snapshot file's stamp (inode, size, mtime) with the
version serving. A changed file is loaded on this thread, off the hot path, and validated
(`snapshot.check_compatible`); for items, the kernel's per-item state is prepared too (the
``prepare`` hook, `consumer.features.prepared`), so no batch builds it. Only then is the new table
swapped into the store with one reference assignment. A file that fails to load or validate
keeps the old snapshot serving and is reported once per version, not on every check; a stamp that
moves while the file is read means a writer raced the reader, and the file is read again on the
next check. Writers should write a sibling and rename it into place (``write_entity_parquet``
does).

Metrics (``entity`` = user | item): `feature_snapshot_loads{entity,result}`,
`feature_snapshot_rows{entity}`, `feature_snapshot_load_seconds{entity}` and
`feature_snapshot_timestamp_seconds{entity}` (the serving file's mtime: its age is
``time() - value``). `publish_loaded` sets the last three for the snapshots loaded at start-up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

from consumer.clock import Clock
from consumer.features.snapshot import (
    ITEMS,
    SnapshotFile,
    SnapshotStore,
    Stamp,
    check_compatible,
    load_snapshot,
    stamp_of,
)
from consumer.metrics import Metrics
from scoring.features import ItemTable

log = logging.getLogger(__name__)

SUCCESS: Final = "success"
FAILURE: Final = "failure"

# (path, format, stamp) -> table; raises on any problem
Loader = Callable[[Path, str, Stamp | None], ItemTable]
Prepare = Callable[[ItemTable], object]


def publish_loaded(store: SnapshotStore, metrics: Metrics) -> None:
    """Rows and file time stamps of the snapshots serving now (after the start-up load)."""
    for entity, file in store.files.items():
        _publish(metrics, entity, store.table(entity), file)


def _publish(metrics: Metrics, entity: str, table: ItemTable, file: SnapshotFile) -> None:
    metrics.feature_snapshot_rows.labels(entity).set(len(table))
    if file.stamp is not None:
        metrics.feature_snapshot_timestamp.labels(entity).set(file.stamp[2] / 1e9)


class SnapshotWatcher:
    """Reloads changed snapshot files periodically on its own thread; `interval_s <= 0`
    disables the thread (`check_once` still works)."""

    def __init__(
        self,
        store: SnapshotStore,
        metrics: Metrics,
        clock: Clock,
        interval_s: float,
        prepare: Prepare | None = None,
        loader: Loader = load_snapshot,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._interval_s = interval_s
        self._prepare = prepare
        self._loader = loader
        self._rejected: dict[str, tuple[int, int, int]] = {}  # entity -> stamp reported failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self._interval_s > 0 and bool(self._store.files)

    def start(self) -> None:
        """Start the thread (once); does nothing when reloading is disabled."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="snapshot-watcher", daemon=True)
        self._thread.start()
        paths = [str(f.path) for f in self._store.files.values()]
        log.info("watching feature snapshots %s every %.1fs", paths, self._interval_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop and wait for it; an in-progress load finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("snapshot watcher did not stop within %.1fs", timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check_once()
            except Exception:  # the watcher must outlive any one bad check
                log.exception("snapshot check failed; trying again in %.1fs", self._interval_s)

    def check_once(self) -> dict[str, str]:
        """Reload changed snapshot files now; the result of each one attempted, by entity."""
        results: dict[str, str] = {}
        for entity, file in self._store.files.items():
            result = self._check(entity, file)
            if result is not None:
                results[entity] = result
        return results

    def _check(self, entity: str, file: SnapshotFile) -> str | None:
        stamp = stamp_of(file.path)
        if stamp is None or stamp == file.stamp or stamp == self._rejected.get(entity):
            return None
        started = self._clock.monotonic()
        try:
            table = self._loader(file.path, file.fmt, stamp)
            check_compatible(entity, table, self._store.table(entity))
            if entity == ITEMS and self._prepare is not None:
                self._prepare(table)
        except Exception as exc:  # any problem with the new file keeps the old snapshot serving
            if stamp_of(file.path) != stamp:
                return None
            self._rejected[entity] = stamp
            self._metrics.feature_snapshot_loads.labels(entity, FAILURE).inc()
            log.error("keeping the %s snapshot serving: cannot load %s: %s", entity, file.path, exc)
            return FAILURE
        if stamp_of(file.path) != stamp:
            log.info("%s changed while being read; reading it again later", file.path)
            return None
        self._store.replace(entity, table, stamp)
        seconds = self._clock.monotonic() - started
        self._metrics.feature_snapshot_loads.labels(entity, SUCCESS).inc()
        self._metrics.feature_snapshot_load_seconds.labels(entity).observe(seconds)
        _publish(self._metrics, entity, table, SnapshotFile(file.path, file.fmt, stamp))
        log.info("%s snapshot %s: %d rows in %.2fs", entity, file.path, len(table), seconds)
        return SUCCESS
