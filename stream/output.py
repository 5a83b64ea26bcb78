"""Bulk output: records for many topics and partitions appended to producer batches.

A Faust ``send_soon`` costs a future, a buffer slot and a send per message; at tens of
thousands of snapshots and changelog records per second that is most of a core. ``Output``
appends each record to an aiokafka ``BatchBuilder`` per (topic, partition) and hands whole
batches to the app's producer: the same producer Faust flushes before it commits offsets, so
a commit still waits for everything sent before it. Keys are partitioned as Kafka's default
partitioner does (murmur2), as every other producer of these topics does.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from models.native import accelerated_by

try:  # murmur2 in C (stream/_wire.c); optional, as the event check there
    from stream import _wire
except ImportError:
    _wire = None

Sent = Callable[[str, int, int, int], None]  # (topic, partition, base offset, count)

PARTITION_MEMO = 16_384  # keys per topic whose partition is remembered (~1.5 MB at most)


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, Callable] = {}  # key length in words -> its little-endian unpacker


@accelerated_by(_wire)
def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of ``key`` (as its default partitioner computes it, unsigned),
    reading the key four bytes at a time (aiokafka's goes byte by byte: 4.7 against 2.7 µs;
    in C, where ``stream._wire`` is built, ~0.1 µs).

    >>> [murmur2(k) & 0x7FFFFFFF for k in (b"", b"a", b"user-1", b"21")]
    [275646681, 584102524, 1404122828, 1173551340]
    """
    n = len(key)
    h = (0x9747B28C ^ n) & _MASK
    words = n >> 2
    unpack = _WORDS.get(words)
    if unpack is None:
        unpack = _WORDS[words] = struct.Struct(f"<{words}I").unpack_from
    for k in unpack(key):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = n & 3
    if tail:
        base = words << 2
        if tail == 3:
            h ^= key[base + 2] << 16
        if tail >= 2:
            h ^= key[base + 1] << 8
        h = ((h ^ key[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class Output:
    """Appends records to per-partition batches of the app's aiokafka producer.

    It has no producer of its own: records go to the one the worker starts (and Faust
    flushes before each commit), so none can be queued before it has started:

    >>> from stream.app import create_app
    >>> from stream.settings import Settings
    >>> _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> asyncio.run(pipeline.output.drain())  # nothing queued: nothing to wait for
    >>> pipeline.output.add("interest.snapshots", b"u1", b"snapshot", partition=0)
    Traceback (most recent call last):
    ...
    faust.exceptions.NotReady: Producer service not yet started
    """

    def __init__(self, app: Any, partitions: int):
        self.app = app
        self.default_partitions = partitions
        self._partitions: dict[str, int] = {}
        self._memo: dict[str, dict[bytes, int]] = {}  # per topic: key -> partition
        self._open: dict[tuple[str, int], tuple[Any, int]] = {}
        self._full: list[tuple[str, int, Any, int]] = []
        self._inflight: set[asyncio.Future] = set()
        self._callbacks: dict[str, Sent] = {}
        # Batches must reach the producer in the order they were filled (a user's newer
        # snapshot or record after the older one): one send at a time.
        self._sending = asyncio.Lock()
        self._behind: asyncio.Future | None = None  # the last send_behind's hand-over
        self.records = 0

    def _producer(self) -> Any:
        return self.app.producer._ensure_producer()

    def on_sent(self, topic: str, callback: Sent) -> None:
        """Call ``callback(topic, partition, base_offset, count)`` when a batch is written."""
        self._callbacks[topic] = callback

    def partition_for(self, topic: str, key: bytes) -> int:
        """The partition Kafka's default partitioner gives ``key`` in ``topic`` (remembered
        for the last ``PARTITION_MEMO`` keys of the topic: a user's snapshots and records go
        out again and again, and murmur2 in Python costs a few µs a key)."""
        memo = self._memo.get(topic)
        if memo is not None:
            part = memo.get(key)
            if part is not None:
                return part
        n = self._partitions.get(topic)
        if n is None:
            found = self._producer().client.cluster.partitions_for_topic(topic)
            if found:
                n = self._partitions[topic] = len(found)
                memo = self._memo[topic] = {}
            else:  # no metadata yet: the count the project creates its topics with
                self._producer().client.add_topic(topic)
                n = self.default_partitions
        part = (murmur2(key) & 0x7FFFFFFF) % n
        if memo is not None:  # only once the count is the topic's own
            if len(memo) >= PARTITION_MEMO:
                memo.clear()
            memo[key] = part
        return part

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        headers: Any = None,
    ) -> None:
        """Queue one record (``value`` None: a tombstone)."""
        if headers:
            items = headers.items() if isinstance(headers, Mapping) else headers
            headers = [(str(k), None if v is None else bytes(v)) for k, v in items]
        self.add_many(topic, partition, ((key, value),), headers)

    def add_many(
        self,
        topic: str,
        partition: int,
        records: Iterable[tuple[bytes | None, bytes | None]],
        headers: list | None = None,
    ) -> None:
        """Queue ``(key, value)`` records for one partition, in order, each with ``headers``
        (``(str, bytes)`` pairs)."""
        headers = headers or []
        slot = (topic, partition)
        entry = self._open.get(slot)
        builder, n = entry if entry is not None else (self._producer().create_batch(), 0)
        added = 0
        for key, value in records:
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                self._full.append((topic, partition, builder, n))
                builder, n = self._producer().create_batch(), 0
                builder.append(key=key, value=value, timestamp=None, headers=headers)
            n += 1
            added += 1
        if n:  # an empty batch is never sent
            self._open[slot] = (builder, n)
        self.records += added

    async def send(self) -> None:
        """Hand every queued batch to the producer (delivery goes on in the background)."""
        async with self._sending:
            if not self._open and not self._full:
                return
            batches = self._full + [(t, p, b, n) for (t, p), (b, n) in self._open.items()]
            self._full, self._open = [], {}
            producer = self._producer()
            for topic, partition, builder, n in batches:
                builder.close()
                fut = await producer.send_batch(builder, topic, partition=partition)
                self._inflight.add(fut)
                fut.add_done_callback(self._done(topic, partition, n))

    async def send_behind(self) -> None:
        """``send`` in the background, so the caller goes on while the producer takes the
        batches (taking them waits on the broker while a partition's previous batch is in
        flight); waits only for the previous ``send_behind``, and raises what it raised."""
        previous = self._behind
        if previous is not None:
            await previous
        self._behind = asyncio.ensure_future(self.send())

    async def settle(self, timeout: float) -> None:
        """Wait until the broker has taken every batch handed over so far (``send``,
        ``send_behind``), or ``timeout`` seconds have passed; delivery failures are left to
        ``drain`` to raise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._behind is not None and not self._behind.done():
            await asyncio.wait([self._behind], timeout=timeout)
        pending = [f for f in self._inflight if not f.done()]
        left = deadline - loop.time()
        if pending and left > 0:
            await asyncio.wait(pending, timeout=left)

    def _done(self, topic: str, partition: int, n: int) -> Callable[[asyncio.Future], None]:
        def done(fut: asyncio.Future) -> None:
            self._inflight.discard(fut)
            callback = self._callbacks.get(topic)
            if callback is not None and not fut.cancelled() and fut.exception() is None:
                callback(topic, partition, fut.result().offset, n)

        return done

    async def drain(self) -> None:
        """Send what is queued and wait until the broker has all of it (raises on failure)."""
        await self.send()
        if self._inflight:
            await asyncio.gather(*list(self._inflight))
