"""Table writes outside a Faust stream: the current event's partition, stood in for, and a
memory store's own dict."""

from __future__ import annotations

import weakref
from collections.abc import MutableMapping

from faust.streams import _current_event


class _Partition:
    """Stands in for the current event where Faust's tables and stores ask for its partition
    (``current_event().message.partition``)."""

    __slots__ = ("topic", "partition", "__weakref__")

    def __init__(self, topic: str, partition: int):
        self.topic, self.partition = topic, partition

    @property
    def message(self) -> _Partition:
        return self


# One stand-in per partition, alive for the process: Faust holds the current event by weak
# reference, so a stand-in made per call lived only as long as a reference cycle kept it from
# the collector (one cycle per record written), and a collection between the call and the
# write would have left the write without a partition.
_STAND_INS: dict[tuple[str, int], _Partition] = {}


def in_partition(topic: str, partition: int) -> _Partition:
    """Make Faust's tables and stores write to ``partition`` of ``topic`` (outside a stream).

    >>> import gc
    >>> from faust.streams import current_event
    >>> ctx = in_partition("events", 3)
    >>> del ctx
    >>> _ = gc.collect()
    >>> current_event().message.partition, in_partition("events", 3) is in_partition("events", 3)
    (3, True)
    """
    ctx = _STAND_INS.get((topic, partition))
    if ctx is None:
        ctx = _STAND_INS[topic, partition] = _Partition(topic, partition)
    _current_event.set(weakref.ref(ctx))
    return ctx


def plain_entries(store: MutableMapping) -> MutableMapping:
    """The memory store's own dict (its Mapping methods are Python calls per access), else
    ``store`` itself (RocksDB's reads and writes go through the store).

    >>> from faust.stores.memory import Store
    >>> store = Store("memory://", app=None, table=None, table_name="users")
    >>> plain_entries(store) is store.data, plain_entries({"a": 1}) == {"a": 1}
    (True, True)
    """
    entries = getattr(store, "data", None)
    return entries if type(entries) is dict else store
