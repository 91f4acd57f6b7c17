"""Feast's online feature server over HTTP: requests, response parsing, retries and deadlines.

Protocol: ``POST {url}/get-online-features`` with ``{"entities": {<join key>: [ids]},
"features": ["view:feature", ...], "full_feature_names": true}`` (or ``"feature_service"``). The
answer is column-oriented: ``metadata.feature_names`` names the columns (the entity column, then
features as ``view__feature`` in an order of the server's choosing), ``results[i].values`` and
``results[i].statuses`` hold one entry per requested row. Columns are matched by name, never by
position. A value counts as present only with status PRESENT and a non-null value; NOT_FOUND,
NULL_VALUE, OUTSIDE_MAX_AGE (and null) are missing: 0 hash / NaN, the model's defaults.

Typing of values: a column whose present values are JSON strings is categorical (hashed with
`scoring.hashing`); numbers make it dense (float32). The kind of a column is learned from its
first present value and then fixed: a later change of type is a malformed response.

Errors (all `FeatureStoreError`, a `FeaturesUnavailableError`, with a metric ``kind``):
``timeout`` (the batch deadline passed), ``connection``, ``http_5xx``, ``http_429`` (retriable,
429 honouring Retry-After), ``unauthorized`` (401: the token is re-read and the request retried
once), ``http_4xx`` and ``malformed`` (not retriable). Retries back off with jitter and never
sleep past the deadline. Messages never carry the bearer token.

Credentials in the URL (``https://user:pass@feast``) are taken out of it and sent as HTTP basic
auth; the endpoint kept (and shown in ``repr``) has none. A bearer token wins over them.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import numpy as np
from numpy.typing import NDArray

from consumer.errors import ConfigError, FeaturesUnavailableError
from consumer.features.auth import TokenSource, basic_header, bearer_header
from consumer.features.breaker import backoff_s, parse_retry_after
from consumer.features.cache import Columns
from consumer.metrics import Metrics
from consumer.security.redact import split_credentials
from scoring.hashing import hash_optional_strings

PRESENT = "PRESENT"
STATUSES = frozenset({PRESENT, "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE"})
CATEGORICAL, DENSE = "categorical", "dense"
_NUMBERS = frozenset({int, float, type(None)})
_STRINGS = frozenset({str, type(None)})
T = TypeVar("T")


class FeatureStoreError(FeaturesUnavailableError):
    """One failed exchange with the feature server; ``kind`` labels feature_errors."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        self.kind = kind
        self.retriable = kind in ("connection", "http_5xx", "http_429")
        self.retry_after = retry_after
        super().__init__(f"feature store {kind}: {message}")


@dataclass(frozen=True, slots=True)
class FeatureQuery:
    """What to ask for one entity kind: join key, feature references or a feature service."""

    label: str  # "user" or "item": the metric label
    entity: str  # join key column, e.g. "item_id"
    refs: tuple[str, ...]  # "view:feature"
    service: str = ""

    @staticmethod
    def parse(label: str, entity: str, spec: str) -> FeatureQuery:
        """``"view:a,view:b"`` lists features; a single name without ``:`` is a feature service."""
        refs = tuple(r.strip() for r in spec.split(",") if r.strip())
        key = f"features.{label}_features"
        if len(refs) == 1 and ":" not in refs[0]:
            return FeatureQuery(label, entity, (), refs[0])
        bad = [r for r in refs if r.count(":") != 1 or r.startswith(":") or r.endswith(":")]
        if bad:
            raise ConfigError(f"expected 'view:feature' references, got {bad}", key=key)
        names = [r.split(":")[1] for r in refs]
        if len(set(names)) != len(names):
            raise ConfigError(f"feature names must be unique across views: {names}", key=key)
        return FeatureQuery(label, entity, refs)

    @property
    def enabled(self) -> bool:
        return bool(self.refs or self.service)

    def body(self, ids: NDArray[np.int64]) -> bytes:
        what: dict[str, Any] = (
            {"feature_service": self.service} if self.service else {"features": list(self.refs)}
        )
        request = {"entities": {self.entity: ids.tolist()}, **what, "full_feature_names": True}
        return json.dumps(request, separators=(",", ":")).encode()

    def columns(self, names: Sequence[str]) -> dict[str, str]:
        """Response column -> bare feature name, for the columns this query wants."""
        if self.service:
            return {n: n.split("__", 1)[1] for n in names if "__" in n}
        wanted = {r.replace(":", "__", 1): r.split(":")[1] for r in self.refs}
        absent = sorted(set(wanted) - set(names))
        if absent:
            raise FeatureStoreError("malformed", f"response lacks column(s) {absent}")
        return wanted


def parse_response(
    query: FeatureQuery, ids: NDArray[np.int64], payload: bytes, kinds: dict[str, str]
) -> tuple[Columns, int]:
    """Columns for ``ids`` (request order) and the count of missing values; learns ``kinds``."""
    try:
        doc = json.loads(payload)
        names = doc["metadata"]["feature_names"]
        results = doc["results"]
    except (ValueError, TypeError, KeyError) as exc:
        raise FeatureStoreError("malformed", f"not a get-online-features answer: {exc!r}") from exc
    if not (isinstance(names, list) and isinstance(results, list) and len(names) == len(results)):
        raise FeatureStoreError("malformed", "feature_names and results differ in length")
    by_name = dict(zip(names, results, strict=True))
    _check_entity(by_name.get(query.entity), ids)
    cols = Columns(ids, {}, {})
    missing = 0
    for column, bare in query.columns(names).items():
        values, present = _values(by_name[column], ids.size, column)
        missing += int(ids.size - np.count_nonzero(present))
        kind = _kind(values, present, column, kinds.get(bare))
        if kind is None:
            continue  # nothing present yet: the column is missing everywhere
        kinds[bare] = kind
        if kind == CATEGORICAL:
            hashed = hash_optional_strings(values)
            hashed[~present] = 0
            cols.categorical[bare] = hashed
        else:
            dense = np.array(values, dtype=np.float64)
            dense[~present] = np.nan
            cols.dense[bare] = dense.astype(np.float32)
    return cols, missing


def _check_entity(result: Any, ids: NDArray[np.int64]) -> None:
    if result is None:
        return  # the entity column is optional: rows are in request order either way
    values = result.get("values") if isinstance(result, dict) else None
    if not isinstance(values, list) or values != ids.tolist():
        raise FeatureStoreError("malformed", "entity column does not echo the requested ids")


def _values(result: Any, n: int, column: str) -> tuple[list[Any], NDArray[np.bool_]]:
    """The raw values of a column and which are present (status PRESENT, not null)."""
    values = result.get("values") if isinstance(result, dict) else None
    statuses = result.get("statuses") if isinstance(result, dict) else None
    if not isinstance(values, list) or len(values) != n:
        raise FeatureStoreError("malformed", f"column {column!r} does not have {n} values")
    if not isinstance(statuses, list) or len(statuses) != n:
        raise FeatureStoreError("malformed", f"column {column!r} does not have {n} statuses")
    if not STATUSES.issuperset(statuses):
        unknown = sorted(map(str, set(statuses) - STATUSES))[:3]
        raise FeatureStoreError("malformed", f"column {column!r} has unknown statuses {unknown}")
    present = np.fromiter(
        (s == PRESENT and v is not None for s, v in zip(statuses, values, strict=True)),
        dtype=bool,
        count=n,
    )
    return values, present


def _kind(
    values: list[Any], present: NDArray[np.bool_], column: str, known: str | None
) -> str | None:
    types = set(map(type, values))
    if known is None and present.any():
        first = values[int(np.argmax(present))]
        known = CATEGORICAL if isinstance(first, str) else DENSE
    if known is None:
        return None
    allowed = _STRINGS if known == CATEGORICAL else _NUMBERS
    if not types <= allowed:
        got = sorted(t.__name__ for t in types - allowed)
        raise FeatureStoreError("malformed", f"column {column!r} ({known}) holds {got} values")
    return known


async def gather_all(*coros: Coroutine[Any, Any, T]) -> list[T]:
    """All results, or the first failure with every sibling cancelled and awaited."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass(frozen=True, slots=True)
class ClientLimits:
    max_rows_per_request: int = 500
    max_concurrency: int = 4
    retries: int = 2


class FeastClient:
    """Posts queries to one feature server over a lazily created keep-alive session."""

    def __init__(
        self,
        url: str,
        tokens: TokenSource,
        ssl_context: ssl.SSLContext | None,
        limits: ClientLimits,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        clean, user, password = split_credentials(url)
        self._endpoint = clean.rstrip("/") + "/get-online-features"
        self._basic = {} if user is None else basic_header(user, password or "")
        self._tokens = tokens
        self._ssl = ssl_context
        self._limits = limits
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._kinds: dict[str, dict[str, str]] = {}

    async def fetch(
        self,
        query: FeatureQuery,
        ids: NDArray[np.int64],
        deadline: float,
        on_chunk: Callable[[Columns], None] | None = None,
    ) -> tuple[Columns, int]:
        """Features of sorted unique ``ids`` (chunked, concurrent) and the missing-value count.

        ``deadline`` is in event-loop time; nothing is awaited beyond it. ``on_chunk`` sees each
        chunk as it arrives, so a caller can keep what came back even if a sibling chunk fails.
        """
        step = self._limits.max_rows_per_request
        chunks = [ids[i : i + step] for i in range(0, ids.size, step)]
        parts = await gather_all(*(self._chunk(query, c, deadline, on_chunk) for c in chunks))
        return Columns.concat([c for c, _ in parts]), sum(m for _, m in parts)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _chunk(
        self,
        query: FeatureQuery,
        ids: NDArray[np.int64],
        deadline: float,
        on_chunk: Callable[[Columns], None] | None,
    ) -> tuple[Columns, int]:
        attempt, reauthorized = 0, False
        loop = asyncio.get_running_loop()
        while True:
            try:
                payload = await self._post(query, ids, deadline)
                parsed = parse_response(
                    query, ids, payload, self._kinds.setdefault(query.label, {})
                )
                if on_chunk is not None:
                    on_chunk(parsed[0])
                return parsed
            except FeatureStoreError as exc:
                self._metrics.feature_errors.labels(exc.kind).inc()
                if exc.kind == "unauthorized" and not reauthorized and self._tokens.reload():
                    reauthorized = True  # a rotated token: one more try, not counted as a retry
                    continue
                if not exc.retriable or attempt >= self._limits.retries:
                    raise
                delay = max(backoff_s(attempt, self._rng), exc.retry_after or 0.0)
                if loop.time() + delay >= deadline:
                    raise FeatureStoreError(exc.kind, f"{exc.args[0]} (no time left to retry)",
                                            exc.retry_after) from exc  # fmt: skip
                attempt += 1
                await asyncio.sleep(delay)

    async def _post(self, query: FeatureQuery, ids: NDArray[np.int64], deadline: float) -> bytes:
        session, slots = self._ensure_session()
        token = self._tokens.current()
        headers = {"Content-Type": "application/json", **self._basic, **bearer_header(token)}
        async with slots:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise FeatureStoreError("timeout", "the batch deadline passed before sending")
            self._metrics.feature_rows.labels(query.label).inc(ids.size)
            timer = self._metrics.feature_request_seconds.labels(query.label).time()
            try:
                with timer:
                    async with session.post(
                        self._endpoint, data=query.body(ids), headers=headers,
                        timeout=aiohttp.ClientTimeout(total=remaining),
                    ) as response:  # fmt: skip
                        payload = await response.read()
            except TimeoutError as exc:
                left = f"{remaining * 1000:.0f} ms"
                raise FeatureStoreError(
                    "timeout", f"no answer within the deadline ({left})"
                ) from exc
            except aiohttp.ClientError as exc:
                raise FeatureStoreError("connection", type(exc).__name__) from exc
        return _check_status(response.status, response.headers.get("Retry-After"), payload, token)

    def _ensure_session(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._session is None or self._slots is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_concurrency, ssl=self._ssl or True, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(connector=connector)
            self._slots = asyncio.Semaphore(self._limits.max_concurrency)
        return self._session, self._slots

    def __repr__(self) -> str:
        return f"FeastClient({self._endpoint!r}, tokens={self._tokens!r})"


def _check_status(status: int, retry_after: str | None, payload: bytes, token: str | None) -> bytes:
    if status == 200:
        return payload
    detail = payload[:200].decode("utf-8", "replace")
    if token:
        detail = detail.replace(token, "***")
    if status == 401:
        raise FeatureStoreError("unauthorized", "401 (bearer token rejected)")
    if status == 429:
        raise FeatureStoreError("http_429", "429 too many requests", parse_retry_after(retry_after))
    kind = "http_5xx" if status >= 500 else "http_4xx"
    raise FeatureStoreError(kind, f"{status}: {detail}")
