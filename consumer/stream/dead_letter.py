"""Dead-letter records: a rejected input's original key and bytes, and why it was rejected.

Headers (all UTF-8): ``error.class`` (decode, unknown_schema, invalid, unknown_model, deadline),
``error.reason`` (human-readable), ``source.topic``, ``source.partition``, ``source.offset``,
``dead_lettered_at`` (epoch milliseconds), and the job's trace context continued
(``traceparent``/``tracestate``, `consumer.stream.tracing`) when it carried one. A dead-lettered
record's offset is committed like any other once the dead-letter write is acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

from consumer.stream.outcome import Rejected
from consumer.stream.records import InMessage, OutRecord


def dead_letter(
    topic: str, msg: InMessage, rejected: Rejected, now_ms: int,
    trace_headers: Sequence[tuple[str, bytes]] = (),
) -> OutRecord:  # fmt: skip
    headers = [
        ("error.class", rejected.kind.encode()),
        ("error.reason", rejected.reason.encode()),
        ("source.topic", msg.topic.encode()),
        ("source.partition", str(msg.partition).encode()),
        ("source.offset", str(msg.offset).encode()),
        ("dead_lettered_at", str(now_ms).encode()),
        *trace_headers,
    ]
    return OutRecord(topic, msg.key, msg.value, headers, msg)
