"""Taking one ranking request off the wire: its deadline, method, media type, body and parse.

Everything here answers for one request alone, before it can join a micro-batch: what cannot
become a `RankRequest` raises `Refused` with the `Failure` to answer (400, 405, 408, 413, 415,
503) and any headers that go with it.

The body is read within the request's own deadline (``408`` past it, and the connection is
closed) and within `MAX_BODY_BYTES` whether the body is sized, chunked or compressed (``413``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from consumer.api.batcher import Failure
from consumer.api.codec import (
    AVRO_TYPES,
    JSON_TYPES,
    MAX_BODY_BYTES,
    RankRequest,
    parse_avro,
    parse_json,
)
from consumer.clock import Clock
from consumer.errors import PoisonMessageError, TransportError
from schemas.serde import JobDecoder

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "X-Request-Timeout-Ms"  # a caller may shorten (never extend) its deadline
_ACCEPTED = ", ".join(sorted(JSON_TYPES | AVRO_TYPES))


class Refused(Exception):
    """A request answered before it reaches the batcher."""

    def __init__(self, failure: Failure, headers: dict[str, str] | None = None) -> None:
        super().__init__(failure.reason)
        self.failure = failure
        self.headers = headers or {}


def deadline_ms(request: web.Request, default_ms: int) -> int:
    """The request's time budget: `default_ms`, or less by `TIMEOUT_HEADER`."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return default_ms
    digits = raw.lstrip("0")
    if not (raw.isascii() and raw.isdigit()) or not digits:
        raise Refused(Failure(400, "decode", f"{TIMEOUT_HEADER} must be a positive integer"))
    if len(digits) > 9:  # over 11 days, and int() refuses 4,300+ digits: no need to convert
        return default_ms
    return min(int(digits), default_ms)


class Intake:
    """Reads and parses requests of either form (`consumer.api.codec`)."""

    def __init__(self, decoder: JobDecoder, clock: Clock, retry_after_s: int) -> None:
        self._decoder = decoder
        self._clock = clock
        self._retry_after_s = retry_after_s

    async def read(self, request: web.Request, deadline: float) -> RankRequest:
        """The request, parsed and checked; `Refused` if it can never be scored."""
        if request.method != "POST":
            raise Refused(Failure(405, "method_not_allowed", "use POST"), {"Allow": "POST"})
        kind = request.content_type
        if kind not in JSON_TYPES and kind not in AVRO_TYPES:
            raise Refused(Failure(415, "unsupported_media_type", f"use one of: {_ACCEPTED}"))
        body = await read_body(request, deadline)
        try:
            if kind in JSON_TYPES:
                return parse_json(body, self._clock.now_ms())
            return parse_avro(self._decoder, body)
        except PoisonMessageError as exc:
            raise Refused(Failure(400, exc.kind, exc.reason)) from exc
        except TransportError as exc:  # the schema registry: its text stays in the log
            log.debug("ranking API request refused, %r", exc)
            reason = "the schema registry is unavailable"
            raise Refused(Failure(503, "unavailable", reason, self._retry_after_s)) from exc


async def read_body(request: web.Request, deadline: float) -> bytes:
    """The whole body, within the request's deadline and `MAX_BODY_BYTES`."""
    too_large = Refused(Failure(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes"))
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise too_large
    try:
        if request.content.is_eof():  # all of it arrived with the head: nothing to wait for
            return await request.read()
        async with asyncio.timeout(deadline - time.monotonic()):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:  # chunked or compressed past the limit
        raise too_large from exc
    except web.RequestPayloadError as exc:  # bad chunked framing or Content-Encoding
        raise Refused(Failure(400, "decode", f"malformed request body: {exc}")) from exc
    except TimeoutError as exc:
        reason = "the body did not arrive within the request's deadline"
        raise Refused(Failure(408, "timeout", reason)) from exc
