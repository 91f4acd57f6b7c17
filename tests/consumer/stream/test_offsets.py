"""The offset tracker commits only the unbroken run of finished offsets, next offset to read."""

from __future__ import annotations

import pytest

from consumer.stream.offsets import OffsetTracker

TP = ("jobs", 0)
TP1 = ("jobs", 1)


def test_nothing_committable_until_outputs_acked() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 10, outputs=1)
    assert tracker.committable() == {}
    tracker.ack(TP, 10)
    assert tracker.committable() == {TP: 11}


def test_gap_blocks_later_finished_offsets() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 2):
        tracker.track(TP, offset, outputs=1)
    tracker.ack(TP, 1)
    tracker.ack(TP, 2)
    assert tracker.committable() == {}
    tracker.ack(TP, 0)
    assert tracker.committable() == {TP: 3}


def test_zero_output_records_finish_at_once_but_wait_behind_pending() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 5, outputs=1)
    tracker.track(TP, 6, outputs=0)  # a skipped poison message
    assert tracker.committable() == {}
    tracker.ack(TP, 5)
    assert tracker.committable() == {TP: 7}


def test_offset_gaps_in_kafka_numbering_do_not_block() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 3, outputs=0)
    tracker.track(TP, 7, outputs=0)  # offsets 4..6 were transaction markers
    assert tracker.committable() == {TP: 8}


def test_committable_reports_only_advanced_partitions() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0, outputs=0)
    tracker.track(TP1, 0, outputs=1)
    assert tracker.committable() == {TP: 1}
    tracker.mark_committed({TP: 1})
    assert tracker.committable() == {}
    tracker.ack(TP1, 0)
    assert tracker.committable() == {TP1: 1}


def test_revocation_mid_batch_forgets_partition_and_late_acks() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0, outputs=1)
    tracker.track(TP1, 0, outputs=1)
    tracker.revoke([TP])
    tracker.ack(TP, 0)  # delivery report arriving after the revoke
    tracker.ack(TP1, 0)
    assert tracker.committable() == {TP1: 1}
    assert tracker.partitions() == [TP1]


def test_restart_starts_empty_and_resumes_from_new_offsets() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 100, outputs=2)
    tracker.ack(TP, 100)
    assert tracker.committable() == {}
    assert tracker.in_flight(TP) == 1
    tracker.ack(TP, 100)
    assert tracker.committable() == {TP: 101}
    assert tracker.in_flight() == 0


def test_misuse_is_rejected() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 4, outputs=1)
    with pytest.raises(ValueError, match="twice"):
        tracker.track(TP, 4, outputs=1)
    with pytest.raises(ValueError, match="out of order"):
        tracker.track(TP, 3, outputs=1)
    tracker.ack(TP, 4)
    tracker.track(TP, 5, outputs=0)
    tracker.ack(TP, 5)  # already finished and dropped: ignored like a revoked record
    assert tracker.committable() == {TP: 6}


def test_failed_commit_offers_the_position_again() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0, outputs=0)
    tracker.mark_committed({TP: 1})
    assert tracker.committable() == {}
    tracker.commit_failed({TP: 1})
    assert tracker.committable() == {TP: 1}
    tracker.track(TP, 1, outputs=0)
    tracker.mark_committed({TP: 2})
    tracker.commit_failed({TP: 1})  # an older failure does not undo a newer commit
    assert tracker.committable() == {}
