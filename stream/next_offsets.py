"""Per partition, the offset of the next record to apply, so that no fetched record is
skipped or applied twice across rebalances, recoveries and seeks.

The consumer's fetch position moves on when records are fetched, applied or not. Faust drops
the records of a partition that is paused when they arrive (during a recovery a fetch that
began with the changelogs active may return the events partitions' records too) and counts
on a later seek to the committed offsets; that seek runs in the consumer's thread while
fetches go on, and resumed partitions may be read before it. A fresh-clone CI run saw a new
owner commit past 58 events it never applied (``docs/RESULTS.md``). So the batch path keeps
its own account: before it applies a partition's first records in an assignment it learns
the committed offset; records before the next offset are ones already applied; records it
does not apply are unread (the fetch position goes back to them); and a jump past the next
offset after any of those events is read again once before it is believed (a log has real
gaps: transaction markers, compaction, retention).

>>> from faust.types import TP
>>> from types import SimpleNamespace as R
>>> tp = TP("events", 0)
>>> offsets = NextOffsets()
>>> offsets.known(tp)
False
>>> offsets.learn(tp, 10)  # the committed offset, looked up for the new assignment
>>> [r.offset for r in offsets.admit(tp, [R(offset=o) for o in (8, 9, 10, 11)])[0]]
[10, 11]
>>> offsets.applied(tp, 12)
>>> offsets.declined(tp, 14)  # fetched, not applied: unread back to the next offset
12
>>> offsets.admit(tp, [R(offset=14)])  # past the next offset after a decline: read again
([], 12)
>>> [r.offset for r in offsets.admit(tp, [R(offset=14)])[0]]  # the same jump twice: a real gap
[14]
>>> offsets.declines, offsets.jumps  # for /metrics
(1, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from faust.types import TP


class NextOffsets:
    """The next offset to apply per partition (None: no committed offset, the first record
    fetched is the first to apply), for the partitions known in the current assignment."""

    def __init__(self) -> None:
        self._next: dict[TP, int | None] = {}
        self._unsettled: set[TP] = set()  # the fetch position may have moved: check jumps
        self._jump_read_again: dict[TP, int] = {}  # a jump's first offset, read once more
        self.declines = 0  # fetches of a partition not applied then (its records unread)
        self.jumps = 0  # fetches past the next offset, read again

    def known(self, tp: TP) -> bool:
        """Whether ``tp``'s next offset is known in this assignment."""
        return tp in self._next

    def learn(self, tp: TP, committed: int | None) -> None:
        """``tp``'s committed offset, looked up at the start of its assignment."""
        self._next[tp] = committed
        self._unsettled.add(tp)

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked or assigned anew: their next offsets are to be learnt again."""
        for tp in tps:
            self._next.pop(tp, None)
            self._unsettled.discard(tp)
            self._jump_read_again.pop(tp, None)

    def unsettle(self, tps: Iterable[TP]) -> None:
        """The fetch positions of ``tps`` were moved (a seek): check their next records."""
        self._unsettled.update(tp for tp in tps if tp in self._next)

    def declined(self, tp: TP, first: int) -> int:
        """Records from ``first`` on were fetched and not applied: the offset to unread to."""
        self.declines += 1
        nxt = self._next.get(tp)
        if tp in self._next:
            self._unsettled.add(tp)
        return first if nxt is None else min(first, nxt)

    def admit(self, tp: TP, records: Sequence[Any]) -> tuple[Sequence[Any], int | None]:
        """Of ``tp``'s fetched ``records`` (offset order; ``tp`` known), those to apply, and
        the offset to unread to when they are none because the fetch jumped past the next
        offset (else None)."""
        nxt = self._next[tp]
        if nxt is None or not records:
            return records, None
        first = records[0].offset
        if first < nxt:
            return [r for r in records if r.offset >= nxt], None
        if first > nxt and tp in self._unsettled and self._jump_read_again.get(tp) != first:
            self._jump_read_again[tp] = first
            self.jumps += 1
            return [], nxt
        return records, None

    def applied(self, tp: TP, next_offset: int) -> None:
        """``tp``'s records before ``next_offset`` are applied."""
        self._next[tp] = next_offset
        self._unsettled.discard(tp)
        self._jump_read_again.pop(tp, None)
