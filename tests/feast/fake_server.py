"""A scriptable stand-in for Feast's ``/get-online-features`` on 127.0.0.1, for fault tests.

It answers like Feast (column-oriented, ``view__feature`` names, columns in an order different from
the request, NOT_FOUND for unknown entities) from a deterministic rule: item ``i`` has
``category = "cat-{i % 7}"`` and ``price = i / 10``; user ``u`` has ``segment = "seg-{u % 3}"``.
Ids at or above ``UNKNOWN_FROM`` are not found. Each request consumes the next scripted `Fault`
(if any) before answering: a delay, a status code with headers, a raw body, a dropped column,
a connection reset, or a required token. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UNKNOWN_FROM = 1_000_000
VALUES: dict[str, Any] = {
    "category": lambda i: f"cat-{i % 7}",
    "price": lambda i: i / 10,
    "segment": lambda u: f"seg-{u % 3}",
}


@dataclass(frozen=True, slots=True)
class Fault:
    delay_s: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    drop: str = ""  # a response column to leave out
    reset: bool = False  # close the connection without answering


@dataclass(frozen=True, slots=True)
class Seen:
    ids: list[int]
    features: list[str]
    authorization: str


class FakeFeast:
    """The app, its script, and what it saw; `start` binds a free port on 127.0.0.1."""

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.seen: list[Seen] = []
        self.token = ""  # when set, other bearer tokens get 401
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/get-online-features", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        doc = await request.json()
        entity, ids = next(iter(doc["entities"].items()))
        features = doc.get("features") or [f"{doc['feature_service']}:category"]
        auth = request.headers.get("Authorization", "")
        self.seen.append(Seen(list(ids), list(features), auth))
        fault = self.faults.popleft() if self.faults else Fault()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.reset:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if self.token and auth != f"Bearer {self.token}":
            return web.json_response({"detail": "bad token"}, status=401)
        if fault.status != 200 or fault.body is not None:
            return web.Response(status=fault.status, headers=fault.headers, body=fault.body)
        return web.json_response(answer(entity, ids, features, fault.drop))


def answer(entity: str, ids: list[int], features: list[str], drop: str = "") -> dict[str, Any]:
    """A Feast-shaped response; feature columns come back in reverse request order."""
    names, results = [entity], [_column(ids, lambda i: i, True)]
    for ref in reversed(features):
        view, name = ref.split(":")
        column = f"{view}__{name}"
        if column == drop:
            continue
        names.append(column)
        results.append(_column(ids, VALUES[name], False))
    return {"metadata": {"feature_names": names}, "results": results}


def _column(ids: list[int], rule: Any, is_entity: bool) -> dict[str, Any]:
    found = [is_entity or i < UNKNOWN_FROM for i in ids]
    return {
        "values": [rule(i) if ok else None for i, ok in zip(ids, found, strict=True)],
        "statuses": ["PRESENT" if ok else "NOT_FOUND" for ok in found],
        "event_timestamps": ["2026-01-01T00:00:00Z"] * len(ids),
    }


def dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()
