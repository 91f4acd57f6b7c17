"""One micro-batch, from payload bytes to encoded ranked lists. No Kafka here.

decode (whole batch) -> validate (vectorized) -> deadline policy -> route to models (one
`ModelSet` snapshot per batch) -> fetch features (one `BatchFetcher.start` for the batch, within
a time budget) -> score (one kernel call per model) -> encode. Every input position ends either
in exactly one `Output` or in exactly one `Rejected`; nothing is dropped silently.
`score_columns` is the part shared with the synchronous ranking API, which does its own decoding
and encoding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from consumer.clock import Clock
from consumer.config import DeliveryConfig, LimitsConfig
from consumer.errors import FeatureTimeoutError, TransportError
from consumer.features.fetcher import BatchFetcher
from consumer.features.source import BatchFeatures
from consumer.models.registry import ModelRegistry, ModelSet
from consumer.stream.jobs import take_jobs, validate
from consumer.stream.outcome import BatchOutcome, Output, Rejected
from schemas.errors import RegistryError, SchemaError, UnknownSchemaIdError
from schemas.records import JobColumns
from schemas.serde import JobDecoder, RankedListEncoder
from scoring.batch import RankedBatch, ScoringBatch
from scoring.kernel import Scorer
from scoring.model import LRModel

FEATURE_WAIT_S = 30.0  # the stream path's budget: feature sources bound their own fetches tighter
WAIT_GRACE_S = 0.5  # past the budget, the fetch itself reports the timeout; this is a backstop


@dataclass(frozen=True, slots=True)
class ScoredGroup:
    """Jobs of one batch scored by one model."""

    model: LRModel
    jobs: JobColumns
    positions: NDArray[np.int64]  # input positions of the jobs
    ranked: RankedBatch
    scored_at_ms: int
    degraded: bool


@dataclass(frozen=True, slots=True)
class _Route:
    model: LRModel
    idx: NDArray[np.int64]  # positions within the decoded columns
    jobs: JobColumns  # those jobs, gathered once for both the fetch and the kernel
    degraded: bool  # scored without fetching features (deadline policy "defaults")


def _fetch_keys(routes: list[_Route]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """User ids and candidates of the routes, in route order (one route: no copy)."""
    if len(routes) == 1:
        return routes[0].jobs.user_ids, routes[0].jobs.candidates
    users = np.concatenate([r.jobs.user_ids for r in routes])
    return users, np.concatenate([r.jobs.candidates for r in routes])


def _topk_overlap(a: RankedBatch, b: RankedBatch) -> NDArray[np.float64]:
    """Per job, the share of the primary top-k that the shadow's top-k also holds."""
    width = min(a.item_ids.shape[1], b.item_ids.shape[1])
    if width == 0:
        return np.zeros(a.counts.size)
    pa, pb = a.item_ids[:, :width], b.item_ids[:, :width]
    hits = (pa[:, :, None] == pb[:, None, :]).any(axis=2) & (pa >= 0)
    share: NDArray[np.float64] = hits.sum(axis=1) / np.maximum(np.minimum(a.counts, width), 1)
    return share


def _decode_kind(error: SchemaError) -> str:
    return "unknown_schema" if isinstance(error, UnknownSchemaIdError) else "decode"


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """A batch between `begin` (decoded, routed, fetch started) and `finish` (scored)."""

    outcome: BatchOutcome
    positions: NDArray[np.int64]
    snapshot: ModelSet
    routes: list[_Route]
    features: Future[BatchFeatures] | None
    started: float
    timeout_s: float

    def cancel(self) -> None:
        if self.features is not None:
            self.features.cancel()


class BatchProcessor:
    """Turns a micro-batch of payloads into outputs and rejections."""

    def __init__(
        self,
        decoder: JobDecoder,
        encoder: RankedListEncoder,
        models: ModelRegistry,
        scorer: Scorer,
        fetcher: BatchFetcher,
        clock: Clock,
        limits: LimitsConfig,
        delivery: DeliveryConfig | None = None,
        fetch_timeout_s: float = FEATURE_WAIT_S,
    ) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self._models = models
        self._scorer = scorer
        self._fetcher = fetcher
        self._clock = clock
        self._limits = limits
        self._delivery = delivery or DeliveryConfig()
        self._fetch_timeout_s = fetch_timeout_s

    def process(self, payloads: Sequence[bytes | None]) -> BatchOutcome:
        """The whole batch at once (tests, callers without pipelining)."""
        return self.finish(self.begin(payloads))

    def begin(self, payloads: Sequence[bytes | None]) -> PendingBatch:
        """Decode, validate and route a batch and start its feature fetch; score it in `finish`.

        A remote fetch runs while the caller finishes the previous batch: network latency
        overlaps CPU work.
        """
        outcome = BatchOutcome()
        t0 = time.perf_counter()
        try:
            decoded = self._decoder.decode_batch(payloads)
        except RegistryError as exc:  # the registry, not the records, is at fault: retry
            raise TransportError(f"schema registry unavailable: {exc}") from exc
        outcome.rejected.extend(Rejected(p, _decode_kind(e), str(e)) for p, e in decoded.errors)
        outcome.stage_seconds["decode"] = time.perf_counter() - t0
        outcome.stage_started["decode"] = t0
        return self._prepare(decoded.jobs, decoded.indices, outcome, self._fetch_timeout_s)

    def finish(self, pending: PendingBatch) -> BatchOutcome:
        """Score and encode a batch started by `begin`."""
        outcome = pending.outcome
        groups = self._complete(pending)
        t1 = time.perf_counter()
        for group in groups:
            self._encode(group, outcome)
        outcome.stage_seconds["encode"] = time.perf_counter() - t1
        outcome.stage_started["encode"] = t1
        outcome.rejected.sort(key=lambda r: r.position)
        outcome.outputs.sort(key=lambda o: o.position)  # keep each partition's input order
        return outcome

    def score_columns(
        self,
        jobs: JobColumns,
        positions: NDArray[np.int64],
        outcome: BatchOutcome,
        timeout_s: float | None = None,
    ) -> list[ScoredGroup]:
        """Validate, route, fetch features for and score decoded jobs; rejections go to outcome.

        The feature fetch gets ``timeout_s`` (default: the processor's budget).
        """
        budget = self._fetch_timeout_s if timeout_s is None else timeout_s
        return self._complete(self._prepare(jobs, positions, outcome, budget))

    def _prepare(
        self, jobs: JobColumns, positions: NDArray[np.int64], outcome: BatchOutcome,
        timeout_s: float,
    ) -> PendingBatch:  # fmt: skip
        valid, invalid = validate(jobs, self._limits)
        outcome.rejected.extend(
            Rejected(int(positions[i.position]), "invalid", i.reason) for i in invalid
        )
        valid, late = self._apply_deadline(jobs, valid, positions, outcome)
        snapshot = self._models.current()  # one snapshot: one version per model per batch
        routes = self._route(snapshot, jobs, valid, late, positions, outcome)
        fresh = [r for r in routes if not r.degraded]
        features: Future[BatchFeatures] | None = None
        started = time.perf_counter()
        if fresh:
            users, items = _fetch_keys(fresh)
            features = self._fetcher.start(users, items, timeout_s)
        return PendingBatch(outcome, positions, snapshot, routes, features, started, timeout_s)

    def _complete(self, pending: PendingBatch) -> list[ScoredGroup]:
        features = None
        if pending.features is not None:
            try:
                features = pending.features.result(pending.timeout_s + WAIT_GRACE_S)
            except TimeoutError as exc:
                pending.features.cancel()
                raise FeatureTimeoutError(
                    f"features not fetched within {pending.timeout_s:.3f}s"
                ) from exc
            pending.outcome.stage_seconds["features"] = time.perf_counter() - pending.started
            pending.outcome.stage_started["features"] = pending.started
        return self._score_routes(
            pending.snapshot, pending.routes, features, pending.positions,
            pending.outcome,
        )  # fmt: skip

    def _apply_deadline(
        self,
        jobs: JobColumns,
        valid: NDArray[np.int64],
        positions: NDArray[np.int64],
        outcome: BatchOutcome,
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Jobs past the SLA: flagged for scoring with defaults, or dead-lettered, by policy."""
        deadline = self._delivery.deadline_ms
        no_late = np.zeros(valid.size, dtype=bool)
        if deadline <= 0 or valid.size == 0:
            return valid, no_late
        age = self._clock.now_ms() - jobs.created_at_ms[valid]
        late = age > deadline
        outcome.late += int(late.sum())
        policy = self._delivery.deadline_policy
        if policy == "score":
            return valid, no_late
        if policy == "defaults":
            return valid, late
        outcome.rejected.extend(
            Rejected(int(positions[i]), "deadline", f"job is {int(a)} ms old (SLA {deadline} ms)")
            for i, a in zip(valid[late].tolist(), age[late].tolist(), strict=True)
        )
        return valid[~late], no_late[~late]

    def _route(
        self,
        snapshot: ModelSet,
        jobs: JobColumns,
        valid: NDArray[np.int64],
        late: NDArray[np.bool_],
        positions: NDArray[np.int64],
        outcome: BatchOutcome,
    ) -> list[_Route]:
        by_key: dict[tuple[str, bool], list[int]] = {}
        for i, is_late in zip(valid.tolist(), late.tolist(), strict=True):
            by_key.setdefault((jobs.models[i], is_late), []).append(i)
        merged: dict[tuple[str, bool], tuple[LRModel, list[int]]] = {}
        for (name, degraded), idx in by_key.items():
            model = snapshot.resolve(name)
            if model is None:
                reason = f"model {name!r} is not served"
                outcome.rejected.extend(
                    Rejected(int(positions[i]), "unknown_model", reason) for i in idx
                )
                continue
            merged.setdefault((model.name, degraded), (model, []))[1].extend(idx)
        routes = []
        for (_, degraded), (model, idx) in merged.items():
            positions_idx = np.array(sorted(idx), dtype=np.int64)
            routes.append(_Route(model, positions_idx, take_jobs(jobs, positions_idx), degraded))
        return routes

    def _score_routes(
        self,
        snapshot: ModelSet,
        routes: list[_Route],
        features: BatchFeatures | None,
        positions: NDArray[np.int64],
        outcome: BatchOutcome,
    ) -> list[ScoredGroup]:
        t0 = time.perf_counter()
        groups: list[ScoredGroup] = []
        start = 0
        e2e: list[NDArray[np.int64]] = [outcome.e2e_ms]
        for route in routes:
            jobs = route.jobs
            if route.degraded or features is None:
                batch_features = BatchFeatures.defaults()
            else:
                rows = np.arange(start, start + route.idx.size)
                start += route.idx.size
                batch_features = BatchFeatures(
                    features.users.take(rows), features.items, features.degraded
                )
            cpu0 = time.thread_time()
            ranked = self._rank(route.model, jobs, batch_features)
            scored_at = self._clock.now_ms()
            self._shadow(snapshot, route.model, jobs, batch_features, ranked, outcome)
            outcome.kernel_cpu_s += time.thread_time() - cpu0
            groups.append(
                ScoredGroup(route.model, jobs, positions[route.idx], ranked, scored_at,
                            batch_features.degraded)
            )  # fmt: skip
            name = route.model.name
            outcome.predictions[name] = outcome.predictions.get(name, 0) + jobs.candidates.size
            outcome.jobs[name] = outcome.jobs.get(name, 0) + route.idx.size
            outcome.degraded += route.idx.size if batch_features.degraded else 0
            e2e.append(scored_at - jobs.created_at_ms)
        outcome.e2e_ms = np.concatenate(e2e)
        outcome.stage_seconds["score"] = time.perf_counter() - t0
        outcome.stage_started["score"] = t0
        return groups

    def _rank(self, model: LRModel, jobs: JobColumns, features: BatchFeatures) -> RankedBatch:
        batch = ScoringBatch(
            user_ids=jobs.user_ids,
            contexts=jobs.contexts,
            candidates=jobs.candidates,
            row_splits=jobs.row_splits,
            top_k=jobs.top_k,
        )
        return self._scorer.rank(model, batch, features.users, features.items)

    def _shadow(
        self,
        snapshot: ModelSet,
        model: LRModel,
        jobs: JobColumns,
        features: BatchFeatures,
        ranked: RankedBatch,
        outcome: BatchOutcome,
    ) -> None:
        """Score with the route's shadow model, if any; only agreement is recorded."""
        shadow = snapshot.shadow_for(model.name)
        if shadow is None:
            return
        shadow_ranked = self._rank(shadow, jobs, features)
        key = (model.name, shadow.name)
        outcome.shadow_overlap.setdefault(key, []).extend(
            _topk_overlap(ranked, shadow_ranked).tolist()
        )

    def _encode(self, group: ScoredGroup, outcome: BatchOutcome) -> None:
        jobs, model, n = group.jobs, group.model, group.positions.size
        values = self._encoder.encode_batch(
            jobs.request_ids, jobs.user_ids, jobs.models, [model.version] * n,
            group.ranked.item_ids, group.ranked.scores, group.ranked.counts,
            jobs.created_at_ms, group.scored_at_ms, np.full(n, group.degraded),
        )  # fmt: skip
        version = model.version.encode()
        name = model.name.encode()
        for pos, user_id, request_id, value in zip(
            group.positions.tolist(), jobs.user_ids.tolist(), jobs.request_ids, values, strict=True
        ):
            headers = [("request_id", request_id.encode()), ("model", name),
                       ("model_version", version)]  # fmt: skip
            outcome.outputs.append(Output(pos, str(user_id).encode(), value, headers))
