"""The model watcher: a daemon thread that hot-reloads changed model artifacts.

Every `interval_s` seconds it calls `ModelRegistry.reload()` (which loads, validates and warms
changed artifacts and swaps the registry's snapshot in one assignment) and publishes the result:
`model_reloads{model,result}` per artifact, and `model_info{model,version}` moved from the old
version's series to the new one. A failed load keeps the old model serving; a failure is labelled
with the artifact's directory name because its manifest may not even name a model.

The watcher is the registry's only writer while it runs. The interval is waited on a
`threading.Event`, so `stop()` returns promptly; tests drive `check_once()` directly instead.
"""

from __future__ import annotations

import logging
import threading

from consumer.metrics import Metrics
from consumer.models.registry import ModelRegistry, ModelSet, ReloadResult

log = logging.getLogger(__name__)

SUCCESS = "success"
FAILURE = "failure"


class ModelWatcher:
    """Reloads the registry's models periodically on its own thread; `interval_s <= 0` disables."""

    def __init__(self, registry: ModelRegistry, metrics: Metrics, interval_s: float) -> None:
        self._registry = registry
        self._metrics = metrics
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self._interval_s > 0

    def start(self) -> None:
        """Start the thread (once); does nothing when reloading is disabled."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
        self._thread.start()
        log.info("watching %s every %.1fs", self._registry.directory, self._interval_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop and wait for it; an in-progress reload finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("model watcher did not stop within %.1fs", timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.check_once()
            except Exception:  # the watcher must outlive any one bad check
                log.exception("model reload check failed; trying again in %.1fs", self._interval_s)

    def check_once(self) -> ReloadResult:
        """Reload changed artifacts now and publish what happened."""
        before = self._registry.current()
        result = self._registry.reload()
        self._publish(before, result)
        return result

    def _publish(self, before: ModelSet, result: ReloadResult) -> None:
        reloads, info = self._metrics.model_reloads, self._metrics.model_info
        for model in result.loaded:
            reloads.labels(model.name, SUCCESS).inc()
            old = before.models.get(model.name)
            if old is not None and old.version != model.version:
                info.remove(model.name, old.version)
                log.info("model %s: version %s -> %s", model.name, old.version, model.version)
            info.labels(model.name, model.version).set(1)
        for failure in result.failed:
            reloads.labels(failure.directory.name, FAILURE).inc()
            log.warning("model artifact %s not loaded: %s", failure.directory, failure.reason)
