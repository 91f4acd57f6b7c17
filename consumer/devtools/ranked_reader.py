"""Reads ranked lists back from the output topic, as a feed builder would (demo and tests).

A fresh consumer group reads the topic from the beginning until ``expected`` lists arrived or
``timeout_s`` passed, then lingers ``linger_s`` more: anything past ``expected`` is a duplicate
the caller wants to see. Undecodable records fail loudly (a ranked list must always decode).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, Message

from schemas.records import RankedList
from schemas.registry import SchemaRegistry, StaticRegistry
from schemas.serde import RankedListDecoder


@dataclass(frozen=True, slots=True)
class RankedRecord:
    key: bytes | None
    headers: dict[str, bytes]
    ranked: RankedList


def headers_of(message: Message) -> dict[str, bytes]:
    """A record's headers as a dict of bytes (the last value wins for a repeated name)."""
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: v if isinstance(v, bytes) else str(v).encode() for k, v in pairs}


def read_ranked(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout_s: float = 60.0,
    linger_s: float = 1.0,
    registry: SchemaRegistry | None = None,
    properties: Mapping[str, str] | None = None,
) -> list[RankedRecord]:
    """Ranked lists of ``topic`` in partition order, decoded with ``registry`` (default: static)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ranked-reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **(properties or {}),
        }
    )
    consumer.subscribe([topic])
    decoder = RankedListDecoder(registry or StaticRegistry())
    out: list[RankedRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(_decoded(consumer.consume(1000, 0.5), decoder))
        if linger_s > 0:
            out.extend(_decoded(consumer.consume(1000, linger_s), decoder))
    finally:
        consumer.close()
    return out


def _decoded(messages: list[Message], decoder: RankedListDecoder) -> list[RankedRecord]:
    return [
        RankedRecord(m.key(), headers_of(m), decoder.decode(m.value() or b""))
        for m in messages
        if m.error() is None
    ]
