"""The record cache: live user records in front of the users table, written once a window.

Events update live ``UserRecord`` objects; each changed user's record is written to the table
and its changelog once per commit window, before the offsets that cover it are committed, as
Kafka Streams' record caches and Quix Streams' checkpoints do. A closed window's records are
written in slices between batches, each as it was at the window's end (one that a later batch
is about to change is written first: ``write_before_change``), so the ingest loop does not
stop for the whole window. The cache is the table's rows in live form, bounded (the least
recently used leave after a window's write), dropped when partitions are revoked.

>>> import faust
>>> from models.tracker import TrackerConfig
>>> from stream.counters import Counters
>>> from stream.output import Output
>>> app = faust.App("doc-records", broker="kafka://127.0.0.1:1")
>>> users = app.Table("doc-users", default=None, partitions=2)
>>> records = RecordCache(users, TrackerConfig(), "events", 100, Output(app, 2), Counters())
>>> r = records.to_change("u")
>>> _ = r.apply({"item_id": "i", "categories": ["a"], "event_type": "view", "ts": 1.0})
>>> records.changed("u"); records.end_window()  # the window closed: "u" is to be written
>>> list(records.unwritten), records.dirty, records.get("u") is r
(['u'], set(), True)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from faust.streams import _current_event

from models.tracker import TrackerConfig, UserRecord
from stream.codec import decode_record, encode_record, stored_record
from stream.counters import Counters
from stream.output import Output
from stream.table_partition import in_partition, plain_entries
from stream.window_lock import WindowLock

log = logging.getLogger(__name__)

# The window's records are encoded and written in slices of about this long, the ingest loop
# served in between: all at once, 2,000 users with 50-event histories stopped it for 45-90 ms
# a second (docs/RESULTS.md). Between slices a pause, not only a yield: first for the
# consumer's thread to take the GIL; with the consumer in the loop (``stream.batch_consumer``),
# a yield measured no better (the p99 at 19,000 events/s read 202 / 111 ms against 179 / 69).
WRITE_SLICE_S = 0.005
WRITE_PAUSE_S = 0.001
WRITE_CHUNK = 32  # records written between looks at the clock
EVICT_CHUNK = 256  # records freed between looks at the clock (~1 µs each, 3-4 in a cold heap)


async def in_slices(step: Callable[[], bool]) -> None:
    """Call ``step`` until it answers False, the ingest loop served every ``WRITE_SLICE_S``;
    Faust's current event is cleared at each pause and at the end (what ``step`` stored in
    the table is no event's)."""
    deadline = time.perf_counter() + WRITE_SLICE_S
    while step():
        if time.perf_counter() >= deadline:
            _current_event.set(None)
            await asyncio.sleep(WRITE_PAUSE_S)
            deadline = time.perf_counter() + WRITE_SLICE_S
    _current_event.set(None)


class RecordCache:
    """Live records of recently touched users (``live``, least recently used first) in front
    of the ``users`` table, which holds every user's record as bytes (``stored_record``)."""

    def __init__(
        self,
        users: Any,
        cfg: TrackerConfig,
        events_topic: str,
        limit: int,
        output: Output,
        counters: Counters,
    ):
        self.users, self.cfg, self.events_topic, self.limit = users, cfg, events_topic, limit
        self.output, self.counters = output, counters
        self.changelog = users.changelog_topic.get_topic_name()
        self.live: OrderedDict[str, UserRecord] = OrderedDict()
        self.dirty: set[str] = set()  # changed since the window's end
        # Encoded records of dirty users that a snapshot was built from and that have not
        # changed since: the window's write reuses them.
        self.encoded: dict[str, bytes] = {}
        # The closed window, being written: records changed in it and not written yet (each
        # still as it was at the window's end), and the bytes encoded for some of them.
        self.unwritten: dict[str, UserRecord] = {}
        self._unwritten_bytes: dict[str, bytes] = {}
        self.deleted: dict[str, int] = {}  # forgotten users -> partition, until the window ends
        self._eviction: asyncio.Future | None = None  # evict_beside's task

    # -- reads ----------------------------------------------------------------------------------
    def get(self, uid: str) -> UserRecord:
        """The user's live record: from the cache, else the table, else a new one."""
        record = self.live.get(uid)
        if record is not None:
            self.live.move_to_end(uid)
            return record
        blob = None if uid in self.deleted else plain_entries(self.users.data).get(uid)
        record = decode_record(blob, self.cfg) if blob else UserRecord(self.cfg)
        self.live[uid] = record
        return record

    def state(self, uid: str) -> UserRecord | bytes | None:
        """The user's live record, else its stored bytes (``stored_record``), else None."""
        record = self.live.get(uid)
        if record is not None or uid in self.deleted:
            return record
        return self.users.data.get(uid) or None

    def state_bytes(self, uid: str) -> bytes | None:
        """The user's record as bytes that ``record_state`` reads: a live record encoded
        (``encode_record``; kept for the window's write while it does not change), else the
        table's bytes (``stored_record``), else None."""
        record = self.live.get(uid)
        if record is None:
            return self.state(uid)  # the table's bytes, or None
        blob = self.encoded.get(uid)
        if blob is None:
            blob = encode_record(record)
            self.built_from(uid, record, blob)
        return blob

    # -- changes --------------------------------------------------------------------------------
    def to_change(self, uid: str) -> UserRecord:
        """The user's live record (``get``), about to change: if the closed window has not
        written it yet, it is written now, as it was at the window's end."""
        if uid in self.unwritten:
            self.write_before_change(uid)
        return self.get(uid)

    def changed(self, uid: str) -> None:
        """The user's live record changed: it is written at the window's end."""
        self.dirty.add(uid)
        if self.encoded:
            self.encoded.pop(uid, None)

    def built_from(self, uid: str, record: UserRecord, blob: bytes) -> None:
        """``blob`` is the user's record encoded (for a snapshot builder or the scorer): the
        window's write may reuse it while the record does not change."""
        if uid in self.dirty and self.live.get(uid) is record:
            self.encoded[uid] = blob

    def forget(self, uid: str, partition: int) -> None:
        """Drop the user's record; its tombstone goes onto the changelog at the window's end."""
        self.write_before_change(uid)  # the window being written has it before the tombstone
        self.live.pop(uid, None)
        self.dirty.discard(uid)
        self.encoded.pop(uid, None)
        self.deleted[uid] = partition

    # -- the commit window ----------------------------------------------------------------------
    def end_window(self) -> None:
        """Close the window: the tombstones are written, and the records it changed become
        ``unwritten`` (as they are now, written by ``write_unwritten`` or, for one about to
        change, before the change)."""
        store = self.users.data
        for uid, partition in self.deleted.items():
            if uid in self.dirty:
                continue  # events after the forget: their new record replaces the old one
            in_partition(self.events_topic, partition)
            store.pop(uid, None)
            self.output.add(self.changelog, uid.encode(), None, partition)
        self.deleted.clear()
        # A window whose write failed part-way is still to write: its records have not
        # changed since (they are written before they change), so they join this one.
        live, unwritten = self.live, self.unwritten
        for uid in self.dirty:
            unwritten[uid] = live[uid]
        self.dirty.clear()
        self._unwritten_bytes.update(self.encoded)
        self.encoded.clear()

    async def write_unwritten(self) -> None:
        """Write the closed window's records, the ingest loop served every ``WRITE_SLICE_S``."""
        await in_slices(lambda: self.write_some(WRITE_CHUNK))

    def write_some(self, n: int) -> bool:
        """Write ``n`` of the closed window's records (all, if fewer are left), a partition's
        at a time; whether some are left."""
        unwritten, blobs = self.unwritten, self._unwritten_bytes
        by_partition: dict[int, list[tuple[str, bytes]]] = {}
        for _ in range(min(n, len(unwritten))):
            uid, record = unwritten.popitem()
            blob = blobs.pop(uid, None) or encode_record(record)
            by_partition.setdefault(record.partition, []).append((uid, blob))
        for partition, written in by_partition.items():
            self._store(partition, written)
        return bool(unwritten)

    def write_before_change(self, uid: str) -> None:
        """Write the user's record now if the closed window has not written it yet (it is
        about to change, or be forgotten)."""
        record = self.unwritten.pop(uid, None)
        if record is not None:
            blob = self._unwritten_bytes.pop(uid, None) or encode_record(record)
            self._store(record.partition, [(uid, blob)])
            _current_event.set(None)

    def _store(self, partition: int, written: list[tuple[str, bytes]]) -> None:
        """Records of one partition into the table's store, then onto its changelog."""
        in_partition(self.events_topic, partition)
        store = plain_entries(self.users.data)
        written = [(uid, stored_record(blob)) for uid, blob in written]
        for uid, blob in written:
            store[uid] = blob
        changelog = [(uid.encode(), blob) for uid, blob in written]
        self.output.add_many(self.changelog, partition, changelog)
        self.counters.records_written += len(written)

    async def evict(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Past ``limit`` live records, the least recently used clean ones leave, the ingest
        loop served every ``WRITE_SLICE_S``: freeing a window's 20,000 records at once stopped
        it for 110-200 ms with 100,000 users at 13,000 events/s (docs/RESULTS.md). Ends
        early where ``stop()`` says so between chunks (the rest leave at the next call)."""
        await in_slices(lambda: not stop() and self.evict_some(EVICT_CHUNK))

    def evict_beside(self, lock: WindowLock) -> None:
        """``evict`` as a task beside the batches, holding ``lock`` (none started while one
        runs): a window waiting for the lock stops it at its next chunk."""
        if self._eviction is None or self._eviction.done():
            self._eviction = asyncio.ensure_future(self._evict_held(lock))

    async def _evict_held(self, lock: WindowLock) -> None:
        try:
            async with lock.held():
                await self.evict(stop=lock.window_waiting)
        except Exception:  # the records stay live: the next eviction tries again
            log.exception("the record cache's eviction failed")

    def evict_some(self, n: int) -> bool:
        """Up to ``n`` of the least recently used records past ``limit`` leave, unless they
        changed since the window's write (a batch between two slices uses a record again:
        it moves to the most recent end; a changed one stays until it is written). Whether
        more are to leave."""
        over = min(len(self.live) - self.limit, n)
        if over <= 0:
            return False
        gone = [u for u in itertools.islice(self.live, over) if u not in self.dirty]
        for uid in gone:
            del self.live[uid]
        return bool(gone) and len(self.live) > self.limit

    def drop_partitions(self, gone: Collection[int]) -> None:
        """Forget the live records of revoked partitions (written before: see ``on_revoked``)."""
        for uid in [u for u, r in self.live.items() if r.partition in gone]:
            del self.live[uid]
            self.dirty.discard(uid)  # empty after the write unless a record slipped in
