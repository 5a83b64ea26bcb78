"""Table writes outside a Faust stream: the current event's partition, stood in for."""

from __future__ import annotations

import weakref

from faust.streams import _current_event


class _Partition:
    """Stands in for the current event where Faust's tables and stores ask for its partition."""

    __slots__ = ("message", "topic", "partition", "__weakref__")

    def __init__(self, topic: str, partition: int):
        self.message = self
        self.topic, self.partition = topic, partition


def in_partition(topic: str, partition: int) -> _Partition:
    """Make Faust's tables and stores write to ``partition`` of ``topic`` (outside a stream)."""
    ctx = _Partition(topic, partition)
    _current_event.set(weakref.ref(ctx))
    return ctx
