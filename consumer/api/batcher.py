"""Coalescing concurrent ranking requests into micro-batches, and scoring them.

A batch opens when a request arrives and closes ``max_wait_s`` after that first arrival or at
``max_batch_jobs`` requests, whichever comes first. It is scored by
`BatchProcessor.score_columns`, the stream path's validation, routing, feature fetch and kernel.

Where: with a remote feature source, on worker threads, up to ``slots`` batches in flight (a
slow fetch holds only its own batch; `SerializedScorer` lets one kernel call run at a time, as a
`Scorer` reuses scratch buffers and is not thread-safe). With the in-memory store (``inline``)
every stage is CPU work under one interpreter lock, so a worker thread buys no parallelism, only
hand-offs: the batch is scored on the event loop, one at a time, and requests arriving meanwhile
form the next batch, so batches grow with load without a second knob. Measured with
``python -m bench.http``: ~6% less CPU per request than on a thread, at the same throughput.

Isolation: requests are checked alone before they are queued (`consumer.api.codec`), so none
should fail its batch. If a batch still raises something other than a transport failure, its
requests are scored again one by one: only the request that fails alone gets a 500, logged
with its request id.

Deadlines: every request carries one (``time.monotonic`` seconds). Its caller is answered 504 at
that deadline whatever the batch is doing; the batch's feature fetch is bounded by the latest
deadline among its requests (the `BatchFetcher` budget). Expired requests are dropped before a
batch is formed. Every request is answered exactly once, with an `Answer` (never an exception).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass

import numpy as np

from consumer.api.codec import RankedItems, RankRequest, to_columns
from consumer.errors import FeaturesUnavailableError, FeatureTimeoutError, TransportError
from consumer.metrics import Metrics
from consumer.stream.outcome import BatchOutcome
from consumer.stream.processor import BatchProcessor, ScoredGroup
from scoring.batch import RankedBatch, ScoringBatch
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.model import LRModel

log = logging.getLogger(__name__)

STATUS_OF_KIND = {"decode": 400, "unknown_schema": 400, "invalid": 400, "unknown_model": 404,
                  "deadline": 504}  # fmt: skip
INTERNAL = "internal error"  # the only reason a 500 gives: details go to the log, by request id


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    kind: str
    reason: str
    retry_after_s: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request gets: a ranked list or a failure, with the batch's stage times."""

    ranked: RankedItems | None = None
    failure: Failure | None = None
    queue_s: float = 0.0
    features_s: float = 0.0
    score_s: float = 0.0


@dataclass(frozen=True, slots=True)
class _Pending:
    request: RankRequest
    deadline: float  # time.monotonic()
    enqueued: float
    future: asyncio.Future[Answer]
    expiry: asyncio.TimerHandle


class SerializedScorer(Scorer):
    """A `Scorer` whose kernel calls run one at a time, whichever thread makes them."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def rank(
        self, model: LRModel, batch: ScoringBatch, users: UserFeatures, items: ItemTable
    ) -> RankedBatch:
        with self._lock:
            return super().rank(model, batch, users, items)


def failure_of(exc: BaseException, retry_after_s: int) -> Failure:
    """The answer to every request of a batch that raised `exc`.

    Reasons are fixed per kind: an exception's text may name hosts, paths or tokens' files, and
    goes to the log only.
    """
    if isinstance(exc, FeaturesUnavailableError):
        return Failure(503, "features_unavailable", "the feature store is unavailable",
                       retry_after_s)  # fmt: skip
    if isinstance(exc, FeatureTimeoutError | TimeoutError):
        return Failure(504, "deadline", "features not fetched before the deadline")
    if isinstance(exc, TransportError):
        return Failure(503, "unavailable", "a dependency is unavailable", retry_after_s)
    return Failure(500, "internal", INTERNAL)


def _answers(
    batch: list[_Pending], groups: list[ScoredGroup], outcome: BatchOutcome, queue_s: list[float]
) -> list[Answer]:
    features_s = outcome.stage_seconds.get("features", 0.0)
    score_s = outcome.stage_seconds.get("score", 0.0)
    answers: list[Answer | None] = [None] * len(batch)
    for rej in outcome.rejected:
        failure = Failure(STATUS_OF_KIND.get(rej.kind, 400), rej.kind, rej.reason)
        answers[rej.position] = Answer(None, failure, queue_s[rej.position])
    for group in groups:
        ranked, version, degraded = group.ranked, group.model.version, group.degraded
        for row, pos in enumerate(group.positions.tolist()):
            count = int(ranked.counts[row])
            items = RankedItems(version, ranked.item_ids[row, :count],
                                ranked.scores[row, :count], degraded)  # fmt: skip
            answers[pos] = Answer(items, None, queue_s[pos], features_s, score_s)
    for pos, answer in enumerate(answers):
        if answer is None:  # the processor answers every position: this is a bug, say so
            log.error("ranking API request %r was neither scored nor rejected",
                      batch[pos].request.request_id)  # fmt: skip
    internal = Answer(failure=Failure(500, "internal", INTERNAL))
    return [internal if a is None else a for a in answers]


class MicroBatcher:
    """Queues requests, closes batches on size or time, scores them on worker threads."""

    def __init__(
        self,
        processor: BatchProcessor,
        metrics: Metrics,
        max_wait_s: float,
        max_batch_jobs: int,
        slots: int = 4,
        retry_after_s: int = 1,
        inline: bool = False,
    ) -> None:
        self._inline = inline
        self._processor = processor
        self._metrics = metrics
        self._max_wait_s = max_wait_s
        self._max_jobs = max_batch_jobs
        self._retry_after_s = retry_after_s
        self._workers = slots
        self._queue: deque[_Pending] = deque()
        self._ready = asyncio.Event()
        self._slots = asyncio.Semaphore(slots)
        self._executor: ThreadPoolExecutor | None = None
        self._runner: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches handed to the scoring path
        self.retried = 0  # batches that failed and were scored again one request at a time

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="api-score")
        self._runner = asyncio.create_task(self._run(), name="api-batcher")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Answer queued requests 503, let in-flight batches finish, release the threads."""
        if self._runner is not None:
            self._runner.cancel()
            with suppress(asyncio.CancelledError):
                await self._runner
        while self._queue:
            self._settle(self._queue.popleft(), Answer(failure=Failure(503, "stopping",
                         "the server is shutting down", self._retry_after_s)))  # fmt: skip
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=timeout_s)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, request: RankRequest, deadline: float) -> Answer:
        """Queue `request`; its answer, or a 504 failure once `deadline` passes."""
        now = time.monotonic()
        if not self.running:
            return Answer(failure=Failure(503, "stopping", "the server is not serving",
                                          self._retry_after_s))  # fmt: skip
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        expiry = loop.call_later(deadline - now, _expire, future, now)
        self._queue.append(_Pending(request, deadline, now, future, expiry))
        if len(self._queue) == 1 or len(self._queue) >= self._max_jobs:
            self._ready.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._dispatch(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _collect(self) -> list[_Pending]:
        """The next batch of live requests (never empty)."""
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            closes = self._queue[0].enqueued + self._max_wait_s  # the window of its first arrival
            wait_s = closes - time.monotonic()
            if len(self._queue) < self._max_jobs and wait_s > 0:
                self._ready.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._ready.wait()
            now = time.monotonic()
            batch: list[_Pending] = []
            while self._queue and len(batch) < self._max_jobs:
                pending = self._queue.popleft()
                if pending.deadline > now:  # an expired request has already answered 504
                    batch.append(pending)
            if batch:
                return batch

    async def _dispatch(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        self.batches += 1
        self._metrics.api_batch_size_jobs.observe(len(batch))
        try:
            if self._inline:
                answers = self._score_isolated(batch)
            else:
                answers = await loop.run_in_executor(self._executor, self._score_isolated, batch)
        finally:
            self._slots.release()
        for pending, answer in zip(batch, answers, strict=True):
            self._settle(pending, answer)

    def _score_isolated(self, batch: list[_Pending]) -> list[Answer]:
        """Worker thread: the batch; if it fails of itself, each request alone."""
        try:
            return self._score(batch)
        except Exception as exc:
            if isinstance(exc, TransportError | TimeoutError):  # the dependency's fault: all fail
                log.debug("ranking API batch of %d requests failed: %r", len(batch), exc)
                return [Answer(failure=failure_of(exc, self._retry_after_s))] * len(batch)
            if len(batch) == 1:
                return [self._failed(batch[0], exc)]
            log.warning("ranking API batch of %d requests failed (%s); scoring them one by one",
                        len(batch), type(exc).__name__)  # fmt: skip
            self.retried += 1
        answers = []
        for pending in batch:
            try:
                answers.extend(self._score([pending]))
            except Exception as exc:
                answers.append(self._failed(pending, exc))
        return answers

    def _failed(self, pending: _Pending, exc: Exception) -> Answer:
        failure = failure_of(exc, self._retry_after_s)
        if failure.status == 500:
            log.error("ranking API request %r failed", pending.request.request_id, exc_info=exc)
        else:
            log.debug("ranking API request %r failed: %r", pending.request.request_id, exc)
        return Answer(failure=failure)

    def _score(self, batch: list[_Pending]) -> list[Answer]:
        """One columnar batch through the shared scoring path."""
        started = time.monotonic()
        queue_s = [started - p.enqueued for p in batch]
        jobs = to_columns([p.request for p in batch])
        outcome = BatchOutcome()
        budget = max(p.deadline for p in batch) - time.monotonic()
        groups = self._processor.score_columns(jobs, np.arange(len(batch)), outcome, budget)
        for model, count in outcome.predictions.items():
            self._metrics.api_predictions.labels(model).inc(count)
        return _answers(batch, groups, outcome, queue_s)

    @staticmethod
    def _settle(pending: _Pending, answer: Answer) -> None:
        pending.expiry.cancel()
        if time.monotonic() > pending.deadline:  # scored on the loop, past its deadline
            _expire(pending.future, pending.enqueued)
        elif not pending.future.done():
            pending.future.set_result(answer)


def _expire(future: asyncio.Future[Answer], enqueued: float) -> None:
    """The deadline passed first: answer 504; the batch's answer, if any, is dropped.

    A batch scored on the event loop holds the timer that calls this, so `_settle` checks the
    deadline too: whichever way, an answer is a ranking within the deadline or a 504.
    """
    if not future.done():
        waited_s = time.monotonic() - enqueued
        reason = f"not ranked within the deadline ({round(waited_s * 1000)} ms)"
        future.set_result(Answer(failure=Failure(504, "deadline", reason), queue_s=waited_s))
