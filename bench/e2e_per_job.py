"""The per-job numpy baseline: a consumer written the way a Quix Streams or Bytewax app would be.

Per record: fastavro decodes the job; numpy scores its candidates; ``argpartition`` picks the top
k, which are sorted and encoded with fastavro. Nothing is batched across jobs. Two ways to score:

- ``direct`` (the benchmark's ``per_job_numpy``): the prediction formula of scoring/HASHING.md
  applied to each job's candidates, vectorized with numpy: candidate rows by ``searchsorted``,
  every feature key and cross key of the job's candidates computed with ``scoring.hashing``, one
  gather per term, dense features standardized per job. Start-up loads the same snapshots with the
  same reader as the scorer (value hashes, what a feature source stores) and nothing more.
- ``cached``: also precomputes at start-up what depends on the item alone, as the scorer's kernel
  does (the item-only partial logit and the item halves of every user/context x item cross,
  through ``scoring.terms``), so per job it does the kernel's arithmetic, one job at a time.

Both score like the scorer to float32 rounding (``PerJobScorer.logits`` vs ``Scorer.logits``).
Candidates missing from the item table are scored with every item feature missing except ``direct``
keeps their id term like the scorer; the benchmark's candidates are always known.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.workloads import workload_files
from consumer.features.snapshot import load_entity_file
from schemas.fallback import read_record, write_record
from schemas.framing import frame_header
from schemas.parsed import bundled
from scoring.features import UserFeatures
from scoring.hashing import cross_keys, feature_keys, hash_ints, hash_strings, to_index
from scoring.item_cache import partial_logits
from scoring.kernel import ModelState
from scoring.model import LRModel, load_model
from scoring.spec import ITEM_ID, USER
from scoring.terms import item_terms, job_terms


class PerJobScorer:
    """Decode, score, rank and encode one job at a time."""

    def __init__(self, data: Path, workload: str, mode: str = "direct") -> None:
        files = workload_files(workload, data)
        self.model: LRModel = load_model(data / "models" / files.model)
        self.users = load_entity_file(files.users)
        self.items = load_entity_file(files.items)
        self.state = ModelState.of(self.model)
        self.mode = mode
        if mode == "cached":
            terms = item_terms(self.model.spec, self.model.hash_bits, self.items)
            self.partial = partial_logits(terms, self.state.table, self.state.item_dense)
            self.right = terms.right
        self.job_schema = bundled("ScoringJob")
        self.ranked_schema = bundled("RankedList")
        self.header = frame_header(2)

    def user(self, user_id: int) -> UserFeatures:
        ids = self.users.ids
        row = int(np.searchsorted(ids, user_id))
        found = row < ids.size and int(ids[row]) == user_id
        cat = {
            k: np.array([v[row] if found else 0], np.uint64)
            for k, v in self.users.categorical.items()
        }
        dense = {
            k: np.array([v[row] if found else np.nan], np.float32)
            for k, v in self.users.dense.items()
        }
        return UserFeatures(categorical=cat, dense=dense)

    def rows(self, candidates: NDArray[np.int64]) -> NDArray[np.int64]:
        """Item-table row of each candidate, ``len(items)`` where absent."""
        ids = self.items.ids
        rows = np.searchsorted(ids, candidates)
        np.minimum(rows, ids.size - 1, out=rows)
        rows[ids[rows] != candidates] = ids.size
        return rows

    def logits(
        self, user_id: int, context: dict[str, str], candidates: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        if self.mode == "cached":
            return self._cached(user_id, context, candidates)
        return self._direct(user_id, context, candidates)

    def _direct(
        self, user_id: int, context: dict[str, str], candidates: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        """HASHING.md's prediction, term by term, over this job's candidates."""
        model, spec, bits = self.model, self.model.spec, self.model.hash_bits
        rows = self.rows(candidates)
        user = self.user(user_id)
        known = rows < len(self.items)
        safe = np.minimum(rows, max(len(self.items) - 1, 0))
        values: dict[str, NDArray[np.uint64]] = {}
        for f in spec.user_fields:
            values[f"user.{f}"] = user.categorical.get(f, np.zeros(1, np.uint64))
        for f in spec.context_fields:
            raw = context.get(f)
            values[f"context.{f}"] = hash_strings([raw]) if raw else np.zeros(1, np.uint64)
        values[ITEM_ID] = hash_ints(candidates)
        for f in spec.item_fields:
            cat = self.items.categorical.get(f)
            picked = np.zeros(candidates.size, np.uint64) if cat is None else cat[safe]
            values[f"item.{f}"] = np.where(known, picked, np.uint64(0))
        keys = {name: feature_keys(name, v) for name, v in values.items()}
        table = self.state.table
        total = np.full(candidates.size, model.bias, dtype=np.float64)
        for name, key in keys.items():
            w = np.take(table, to_index(key, bits))
            total += np.where(values[name] != 0, w, 0.0)
        for a, b in spec.crosses:
            w = np.take(table, to_index(cross_keys(keys[a], keys[b]), bits))
            total += np.where((values[a] != 0) & (values[b] != 0), w, 0.0)
        for d, weight in zip(spec.dense, model.dense_weights.tolist(), strict=True):
            source = user.dense if d.group == USER else self.items.dense
            col = source.get(d.field)
            if col is None:
                x = np.full(candidates.size, d.default)
            elif d.group == USER:
                x = np.full(candidates.size, col[0], dtype=np.float64)
            else:
                x = np.where(known, col[safe], np.nan).astype(np.float64)
            x[~np.isfinite(x)] = d.default
            total += weight * (x - d.mean) / d.std
        return total.astype(np.float32)

    def _cached(
        self, user_id: int, context: dict[str, str], candidates: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        """The kernel's arithmetic for one job, over item state precomputed at start-up."""
        model, table = self.model, self.state.table
        jobs = job_terms(model.spec, model.hash_bits, self.user(user_id), [context])
        sparse = np.take(table, jobs.singles[0], mode="clip").astype(np.float64).sum()
        scalar = np.float32(model.bias + sparse + float(jobs.dense[0] @ self.state.user_dense))
        rows = self.rows(candidates)
        idx = np.take(self.right, rows, axis=0)
        idx ^= jobs.left[0]
        out: NDArray[np.float32] = np.take(table, idx, mode="clip").sum(axis=1, dtype=np.float32)
        out += np.take(self.partial, rows)
        out += scalar
        return out

    def score(self, payload: bytes) -> bytes:
        job = read_record(payload, self.job_schema, self.job_schema)
        candidates = np.asarray(job["candidates"], dtype=np.int64)
        logits = self.logits(job["user_id"], job["context"], candidates)
        k = min(int(job["top_k"]), logits.size)
        best = np.argpartition(-logits, k - 1)[:k] if k else np.zeros(0, np.intp)
        best = best[np.argsort(-logits[best], kind="stable")]
        probs = 1.0 / (1.0 + np.exp(-logits[best].astype(np.float64)))
        items = [
            {"item_id": i, "score": p}
            for i, p in zip(candidates[best].tolist(), probs.tolist(), strict=True)
        ]
        return self._encode(job, items)

    def _encode(self, job: dict[str, Any], items: list[dict[str, Any]]) -> bytes:
        record = {
            "request_id": job["request_id"],
            "user_id": job["user_id"],
            "model": job["model"],
            "model_version": self.model.version,
            "items": items,
            "created_at": job["created_at"],
            "scored_at": int(time.time() * 1000),
            "degraded": False,
        }
        return write_record(self.header, self.ranked_schema, record)
