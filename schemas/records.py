"""Plain records exchanged with the rest of the service: nothing past this edge sees Avro.

``JobColumns`` is the columnar, batch form the scorer consumes; ``ScoringJob`` and ``RankedList``
are row forms for producers, tests and downstream readers.

Invariants (``JobColumns`` with ``n`` jobs): every per-job column has length ``n``;
``row_splits`` has length ``n + 1``, starts at 0, is non-decreasing and ends at
``len(candidates)``, so job ``i`` owns ``candidates[row_splits[i]:row_splits[i + 1]]`` in wire
order. ``DecodedJobs.indices`` is strictly increasing and disjoint from the positions in
``errors``; together they cover every input position exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from schemas.errors import SchemaError


@dataclass(frozen=True, slots=True)
class JobColumns:
    """Successfully decoded jobs, one entry per job, candidates concatenated."""

    request_ids: list[str]
    user_ids: NDArray[np.int64]
    models: list[str]
    created_at_ms: NDArray[np.int64]
    contexts: list[dict[str, str]]
    candidates: NDArray[np.int64]
    row_splits: NDArray[np.int64]
    top_k: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.request_ids)

    def candidates_of(self, i: int) -> NDArray[np.int64]:
        """Candidate ids of job ``i`` (a view, wire order)."""
        return self.candidates[self.row_splits[i] : self.row_splits[i + 1]]

    def row(self, i: int) -> ScoringJob:
        """Job ``i`` as a row record."""
        return ScoringJob(
            request_id=self.request_ids[i],
            user_id=int(self.user_ids[i]),
            model=self.models[i],
            created_at_ms=int(self.created_at_ms[i]),
            context=self.contexts[i],
            candidates=self.candidates_of(i),
            top_k=int(self.top_k[i]),
        )

    @classmethod
    def empty(cls) -> JobColumns:
        """A batch of zero jobs."""
        i64 = np.empty(0, np.int64)
        return cls([], i64, [], i64, [], i64, np.zeros(1, np.int64), np.empty(0, np.int32))


@dataclass(frozen=True, slots=True)
class DecodedJobs:
    """Result of decoding a batch: what decoded, where it came from, and what did not."""

    jobs: JobColumns
    indices: NDArray[np.int64]
    errors: list[tuple[int, SchemaError]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScoringJob:
    """One scoring request (row form)."""

    request_id: str
    user_id: int
    model: str
    created_at_ms: int
    context: dict[str, str]
    candidates: NDArray[np.int64] | Sequence[int]
    top_k: int = 50


@dataclass(frozen=True, slots=True)
class RankedList:
    """One scoring result (row form): ``item_ids[i]`` scored ``scores[i]``, best first."""

    request_id: str
    user_id: int
    model: str
    model_version: str
    item_ids: NDArray[np.int64]
    scores: NDArray[np.float32]
    created_at_ms: int
    scored_at_ms: int
    degraded: bool = False
