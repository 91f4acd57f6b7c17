"""Which offsets may be committed: a small, pure tracker.

Invariants:
- Offsets are tracked per partition in the order they were consumed (Kafka offsets may have gaps:
  transaction markers, compaction), so "contiguous" means "no unfinished record before it in
  consumption order", not "numerically adjacent".
- A record is finished when every output it caused has been acknowledged (zero outputs: at once).
- The committable position of a partition is the offset after the last record of its unbroken
  finished prefix: the next offset to read. Nothing past an unfinished record is ever committed.
- Revoking a partition forgets it; a record reported after that is ignored.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from consumer.stream.records import TopicPartition


@dataclass(slots=True)
class _PartitionState:
    pending: OrderedDict[int, int] = field(default_factory=OrderedDict)  # offset -> outputs unacked
    finished_upto: int | None = None  # next offset to read, once anything finished
    committed: int | None = None


class OffsetTracker:
    """Tracks consumed records until all their outputs are acknowledged."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _PartitionState] = {}

    def track(self, tp: TopicPartition, offset: int, outputs: int) -> None:
        """Record a consumed message that produced `outputs` records still to be acknowledged."""
        state = self._partitions.setdefault(tp, _PartitionState())
        if offset in state.pending:
            raise ValueError(f"offset {offset} of {tp} tracked twice")
        if state.pending and offset < next(reversed(state.pending)):
            raise ValueError(f"offset {offset} of {tp} tracked out of order")
        state.pending[offset] = outputs
        self._advance(state)

    def ack(self, tp: TopicPartition, offset: int) -> None:
        """One output of the record at `offset` was acknowledged by the broker."""
        state = self._partitions.get(tp)
        if state is None or offset not in state.pending:
            return  # revoked meanwhile: its partition belongs to someone else now
        remaining = state.pending[offset] - 1
        if remaining < 0:
            raise ValueError(f"offset {offset} of {tp} acknowledged more often than it produced")
        state.pending[offset] = remaining
        self._advance(state)

    def committable(self) -> dict[TopicPartition, int]:
        """Positions that advanced since the last `mark_committed`, next offset to read."""
        return {
            tp: s.finished_upto
            for tp, s in self._partitions.items()
            if s.finished_upto is not None and s.finished_upto != s.committed
        }

    def mark_committed(self, positions: dict[TopicPartition, int]) -> None:
        for tp, position in positions.items():
            state = self._partitions.get(tp)
            if state is not None:
                state.committed = position

    def commit_failed(self, positions: dict[TopicPartition, int]) -> None:
        """An asynchronous commit of `positions` failed: offer those positions again."""
        for tp, position in positions.items():
            state = self._partitions.get(tp)
            if state is not None and state.committed == position:
                state.committed = None

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Records consumed but not yet finished (for one partition, or all)."""
        if tp is not None:
            state = self._partitions.get(tp)
            return len(state.pending) if state else 0
        return sum(len(s.pending) for s in self._partitions.values())

    def revoke(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self._partitions.pop(tp, None)

    def partitions(self) -> list[TopicPartition]:
        return list(self._partitions)

    @staticmethod
    def _advance(state: _PartitionState) -> None:
        pending = state.pending
        while pending:
            offset, remaining = next(iter(pending.items()))
            if remaining:
                return
            pending.popitem(last=False)
            state.finished_upto = offset + 1
