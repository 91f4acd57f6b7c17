"""One micro-batch, from payload bytes to encoded ranked lists. No Kafka here.

decode (whole batch) -> validate (vectorized) -> route to models -> fetch features (one call for
the batch) -> score (one kernel call per model) -> encode. Every input position ends either in
exactly one `Output` or in exactly one `Rejected`; nothing is dropped silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from consumer.clock import Clock
from consumer.config import LimitsConfig
from consumer.features import BatchFeatures
from consumer.jobs import take_jobs, validate
from consumer.models import ModelRegistry
from consumer.outcome import BatchOutcome, Output, Rejected
from schemas.records import JobColumns
from schemas.serde import JobDecoder, RankedListEncoder
from scoring.batch import ScoringBatch
from scoring.features import UserFeatures
from scoring.kernel import Scorer
from scoring.model import LRModel

FetchFeatures = Callable[[NDArray[np.int64], NDArray[np.int64]], BatchFeatures]


def _subset_users(users: UserFeatures, idx: NDArray[np.int64]) -> UserFeatures:
    return UserFeatures(
        categorical={k: v[idx] for k, v in users.categorical.items()},
        dense={k: v[idx] for k, v in users.dense.items()},
    )


class BatchProcessor:
    """Turns a micro-batch of payloads into outputs and rejections."""

    def __init__(
        self,
        decoder: JobDecoder,
        encoder: RankedListEncoder,
        models: ModelRegistry,
        scorer: Scorer,
        fetch_features: FetchFeatures,
        clock: Clock,
        limits: LimitsConfig,
    ) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self._models = models
        self._scorer = scorer
        self._fetch = fetch_features
        self._clock = clock
        self._limits = limits

    def process(self, payloads: Sequence[bytes | None]) -> BatchOutcome:
        outcome = BatchOutcome()
        t0 = time.perf_counter()
        decoded = self._decoder.decode_batch(payloads)
        outcome.rejected.extend(Rejected(p, "decode", str(e)) for p, e in decoded.errors)
        valid, invalid = validate(decoded.jobs, self._limits)
        positions = decoded.indices
        outcome.rejected.extend(
            Rejected(int(positions[i.position]), "invalid", i.reason) for i in invalid
        )
        groups = self._route(decoded.jobs, valid, positions, outcome)
        t1 = time.perf_counter()
        outcome.stage_seconds["decode"] = t1 - t0
        if groups:
            jobs = take_jobs(decoded.jobs, np.concatenate([idx for _, idx in groups]))
            features = self._fetch(jobs.user_ids, jobs.candidates)
            outcome.stage_seconds["features"] = time.perf_counter() - t1
            self._score_groups(decoded.jobs, groups, features, positions, outcome)
        outcome.rejected.sort(key=lambda r: r.position)
        outcome.outputs.sort(key=lambda o: o.position)  # keep each partition's input order
        return outcome

    def _route(
        self,
        jobs: JobColumns,
        valid: NDArray[np.int64],
        positions: NDArray[np.int64],
        outcome: BatchOutcome,
    ) -> list[tuple[LRModel, NDArray[np.int64]]]:
        by_model: dict[str, list[int]] = {}
        for i in valid.tolist():
            by_model.setdefault(jobs.models[i], []).append(i)
        groups: dict[str, tuple[LRModel, list[int]]] = {}
        for name, idx in by_model.items():
            model = self._models.resolve(name)
            if model is None:
                outcome.rejected.extend(
                    Rejected(int(positions[i]), "unknown_model", f"model {name!r} is not served")
                    for i in idx
                )
                continue
            groups.setdefault(model.name, (model, []))[1].extend(idx)
        return [(m, np.array(sorted(idx), dtype=np.int64)) for m, idx in groups.values()]

    def _score_groups(
        self,
        all_jobs: JobColumns,
        groups: list[tuple[LRModel, NDArray[np.int64]]],
        features: BatchFeatures,
        positions: NDArray[np.int64],
        outcome: BatchOutcome,
    ) -> None:
        start = 0
        score_s = encode_s = 0.0
        e2e: list[NDArray[np.int64]] = []
        for model, idx in groups:
            t0 = time.perf_counter()
            jobs = take_jobs(all_jobs, idx)
            users = _subset_users(features.users, np.arange(start, start + idx.size))
            start += idx.size
            batch = ScoringBatch(
                user_ids=jobs.user_ids,
                contexts=jobs.contexts,
                candidates=jobs.candidates,
                row_splits=jobs.row_splits,
                top_k=jobs.top_k,
            )
            ranked = self._scorer.rank(model, batch, users, features.items)
            scored_at = self._clock.now_ms()
            t1 = time.perf_counter()
            values = self._encoder.encode_batch(
                jobs.request_ids,
                jobs.user_ids,
                jobs.models,
                [model.version] * idx.size,
                ranked.item_ids,
                ranked.scores,
                ranked.counts,
                jobs.created_at_ms,
                scored_at,
            )
            self._collect(jobs, model, positions[idx], values, outcome)
            outcome.predictions[model.name] = int(jobs.candidates.size)
            outcome.jobs[model.name] = int(idx.size)
            e2e.append(scored_at - jobs.created_at_ms)
            score_s += t1 - t0
            encode_s += time.perf_counter() - t1
        outcome.stage_seconds["score"] = score_s
        outcome.stage_seconds["encode"] = encode_s
        outcome.e2e_ms = np.concatenate(e2e)

    @staticmethod
    def _collect(
        jobs: JobColumns,
        model: LRModel,
        positions: NDArray[np.int64],
        values: list[bytes],
        outcome: BatchOutcome,
    ) -> None:
        version = model.version.encode()
        name = model.name.encode()
        for pos, user_id, request_id, value in zip(
            positions.tolist(), jobs.user_ids.tolist(), jobs.request_ids, values, strict=True
        ):
            headers = [
                ("request_id", request_id.encode()),
                ("model", name),
                ("model_version", version),
            ]
            outcome.outputs.append(Output(pos, str(user_id).encode(), value, headers))
