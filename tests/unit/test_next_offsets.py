"""The next offset to apply per partition: what is applied, skipped as applied, or read again."""

from types import SimpleNamespace

import pytest
from faust.types import TP

from stream.next_offsets import NextOffsets

pytestmark = pytest.mark.unit

TP0, TP1 = TP("events", 0), TP("events", 1)


def recs(*offsets: int) -> list:
    return [SimpleNamespace(offset=o) for o in offsets]


def offsets_of(admitted) -> list[int]:
    return [r.offset for r in admitted[0]]


def test_no_committed_offset_applies_the_first_records_fetched():
    offsets = NextOffsets()
    offsets.learn(TP0, None)
    assert offsets_of(offsets.admit(TP0, recs(40, 41))) == [40, 41]


def test_settled_partitions_take_the_log_s_own_gaps():
    offsets = NextOffsets()
    offsets.learn(TP0, 0)
    offsets.admit(TP0, recs(0, 1))
    offsets.applied(TP0, 2)
    # a transaction marker at offset 2: steady fetching is not second-guessed
    assert offsets.admit(TP0, recs(3, 4)) == (recs(3, 4), None)


def test_a_jump_after_a_seek_is_read_again_once():
    offsets = NextOffsets()
    offsets.learn(TP0, 0)
    offsets.applied(TP0, 10)
    offsets.unsettle([TP0, TP1])  # TP1 not known: nothing to unsettle
    assert offsets.admit(TP0, recs(15)) == ([], 10)
    assert offsets_of(offsets.admit(TP0, recs(15, 16))) == [15, 16]
    assert not offsets.known(TP1)


def test_forgotten_partitions_are_learnt_again():
    offsets = NextOffsets()
    offsets.learn(TP0, 5)
    offsets.forget([TP0])
    assert not offsets.known(TP0)
    assert offsets.declined(TP0, 7) == 7  # not known: back to the first record fetched


def test_records_all_applied_before_are_none_to_apply():
    offsets = NextOffsets()
    offsets.learn(TP0, 0)
    offsets.applied(TP0, 50)
    assert offsets.admit(TP0, recs(30, 31, 49)) == ([], None)
