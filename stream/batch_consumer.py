"""A Faust consumer that hands whole record batches of chosen topics to a batch handler.

Faust delivers every record through a ``Message``, flow control, an ``Event``, a stream and a
per-message ack; at tens of thousands of records per second that machinery is the cost (see
``docs/RESULTS.md``). ``BatchConsumer`` keeps everything else of Faust's aiokafka consumer
(group membership, rebalancing, offset commits, table recovery, the changelog topics) and
changes one thing: the records of the topics registered with ``register_batch_topic`` skip
the per-message path. Each fetch's records of those topics go, grouped by partition, to one
``BatchSink``; the sink says which offsets its state covers (``pending_acks``), and those are
acked in bulk just before each commit, after ``before_commit`` has written the state that
covers them. So an offset is committed only after its effect is in the changelog.

Recovery works the same way for tables registered with ``register_bulk_changelog`` (their
keys are UTF-8 strings, their values bytes or what the table's decoder makes of them): each
fetch's changelog records go to the table's store in one ``apply_changelog_batch``, and
Faust's recovery service is told how far each partition got, instead of one event, one queue
slot and one wake-up per record. Records of every other topic take Faust's normal path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service
from mode.utils.futures import maybe_async

from stream.clients import FETCH_MAX_WAIT_MS
from stream.next_offsets import NextOffsets

log = logging.getLogger(__name__)

SCHEME = "batchkafka"
# With no partition to read (during a recovery, between pausing the changelogs and resuming
# the streams), the fetch loop looks this often for one instead of Faust's flat second.
IDLE_POLL_S = 0.01
# How long one wait for records lasts. Its partitions are those active when it began: one
# that began during a recovery waited out its whole timeout (Faust's 1 s) for partitions that
# had no more records, while the streams' partitions, resumed meanwhile, had theirs.
WAIT_RECORDS_S = 0.1
# The consumer fetches the next records as soon as a batch is taken, so a batch that took
# long to apply is followed by records fetched when it began: those sent meanwhile wait a
# second round. After a batch of at least ``FRESH_AFTER_S`` the next one takes, beside the
# records fetched meanwhile, what a fetch finds within ``FRESH_WAIT_S`` (docs/RESULTS.md: at
# 17,000 events/s the youngest record of a batch was 39 ms old at the median, 12 after).
FRESH_AFTER_S = 0.02
FRESH_WAIT_S = 0.01
# A worker that finds nothing to read has caught up: it closes the commit window then instead
# of at the next tick, so its state and offsets are in the broker while the input is quiet (a
# restart or a new owner replays nothing, the group's lag reads 0). Such commits start at most
# once per this share of the commit interval: a trickle of events does not commit each one.
CAUGHT_UP_COMMIT_GAP = 0.25


class BatchSink(Protocol):
    """What a ``BatchConsumer`` delivers to.

    At a commit the consumer has the sink write its state before it takes the offsets that
    state covers (``stream.app.Pipeline`` is the project's sink); committing them is then
    Faust's, and needs the started consumer:

    >>> import faust
    >>> register_transport()
    >>> consumer = faust.App("doc", broker="batchkafka://127.0.0.1:1").consumer
    >>> class Sink:  # records the calls made to it
    ...     calls = []
    ...     async def before_commit(self): self.calls.append("before_commit")
    ...     def pending_acks(self): self.calls.append("pending_acks"); return {TP("t", 0): 5}
    >>> consumer.register_batch_topic("t", Sink())
    >>> asyncio.run(consumer.force_commit())
    Traceback (most recent call last):
    ...
    faust.exceptions.ConsumerNotStarted: Consumer thread not yet started
    >>> Sink.calls
    ['before_commit', 'pending_acks']
    """

    async def handle_records(self, batches: Mapping[TP, list[Any]]) -> None:
        """Apply the records (aiokafka ``ConsumerRecord``s, in offset order per partition)."""

    async def after_records(self) -> None:
        """The consumer's positions are past the records just handled; the next fetch's
        records come after this returns."""

    def pending_acks(self) -> dict[TP, int]:
        """The next offset to commit per partition, for state already handed to the
        producer by ``before_commit``; emptied by the call."""

    async def before_commit(self) -> None:
        """Write the state that the processed records changed (the changelog)."""

    async def after_commit(self) -> None:
        """The offsets of the last ``pending_acks`` are committed (housekeeping that the
        commit need not wait for)."""

    def window_open(self) -> bool:
        """Whether records were applied since the last ``before_commit`` began."""

    async def on_revoked(self, revoked: set[TP]) -> None:
        """Partitions leave this worker: write their state, then forget it."""


class _Message:
    """The raw side of a changelog record, as a store's ``apply_changelog_batch`` reads it."""

    __slots__ = ("tp", "topic", "partition", "offset", "key", "value")

    def __init__(self, tp: TP, record: Any):
        self.tp, self.topic, self.partition = tp, tp.topic, tp.partition
        self.offset, self.key, self.value = record.offset, record.key, record.value


ValueDecoder = Callable[[bytes], Any]


class _ChangelogEvent:
    """A changelog record with its key decoded (UTF-8) and its value as bytes, or as
    ``decode`` reads them (a tombstone's value stays None)."""

    __slots__ = ("key", "value", "message")

    def __init__(self, tp: TP, record: Any, decode: ValueDecoder | None = None):
        self.message = _Message(tp, record)
        self.key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
        value = record.value
        self.value = decode(value) if decode is not None and value is not None else value


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer service, run in the worker's own event loop, not in a
    thread of its own: every fetch was handed from that thread's loop to the worker's and the
    two threads took turns at the GIL, and an event waited for both (docs/RESULTS.md,
    2026-12-04). The worker's loop runs no long blocking step (a batch, a window's write slice
    and an eviction slice are milliseconds; snapshots and the scorer are built in processes of
    their own), so the group's heartbeats keep their time in it."""

    def __init__(self, consumer: Any, *, loop: Any = None, **kwargs: Any) -> None:
        loop = loop or asyncio.get_event_loop()
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

    async def start(self) -> None:
        # mode's ServiceThread.start, with its service served by a task of this loop instead
        # of a new thread running a loop of its own.
        assert not self._thread_started.is_set()
        self._thread_started.set()
        self._thread_running = asyncio.Future(loop=self.parent_loop)
        # Held here: the loop keeps only a weak reference to a task. Not add_future: _serve's
        # own shutdown awaits the service's futures, and would await itself.
        self._serving = asyncio.ensure_future(self._serve())
        try:
            await self._thread_running
        finally:
            self._thread_running = None

    async def stop(self) -> None:
        if self._started.is_set():  # no thread to stop after it
            await Service.stop(self)

    async def on_thread_started(self) -> None:
        """mode starts the thread's method queue here; ``call_thread`` and ``cast_thread``
        call directly, so it is never started (its stop skips it then)."""

    async def _gather_remaining_tasks(self) -> None:
        """mode cancels every task left in the thread's loop here: this loop is the app's."""

    async def call_thread(self, fun: Callable, *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable, *args: Any, **kwargs: Any) -> None:
        self.add_future(maybe_async(fun(*args, **kwargs)))

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust's 1,500 ms let a fetch for idle partitions (the catalog, standby changelogs)
        # keep the events partitions waiting: batches came 1.1-1.5 s apart.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer

    async def committed_offsets(self, tps: Iterable[TP]) -> dict[TP, int | None]:
        """The group's committed offsets of ``tps`` (``committed_offsets``)."""
        return await self.call_thread(committed_offsets, self._ensure_consumer(), list(tps))

    async def unread(self, offsets: Mapping[TP, int]) -> None:
        """Fetch positions back to ``offsets`` (``unread_positions``)."""
        await self.call_thread(unread_positions, self._ensure_consumer(), dict(offsets))


async def committed_offsets(consumer: Any, tps: Iterable[TP]) -> dict[TP, int | None]:
    """The committed offsets of ``tps`` in ``consumer``'s group (an aiokafka consumer), read
    from the broker; None where none is committed."""
    return {tp: await consumer.committed(faust_aiokafka.ensure_aiokafka_TP(tp)) for tp in tps}


async def unread_positions(consumer: Any, offsets: Mapping[TP, int]) -> None:
    """Move each assigned partition's fetch position in ``consumer`` (an aiokafka consumer)
    back to its offset in ``offsets`` if it is past it; never forward (a seek to the committed
    offsets may have come first), and not for partitions it does not hold."""
    # aiokafka has no public read of a position that does not wait for one to be set.
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return  # between assignments: the next one starts from the committed offsets
    for tp, offset in offsets.items():
        atp = faust_aiokafka.ensure_aiokafka_TP(tp)
        state = assignment.state_value(atp)
        if state is not None and state.has_valid_position and state.position > offset:
            with contextlib.suppress(IllegalStateError):  # unassigned meanwhile
                consumer.seek(atp, offset)


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a bulk path for the topics of a ``BatchSink``.

    The worker's app has one, with its pipeline as the events topic's sink and the users
    table and the item catalog recovered in bulk:

    >>> from stream.app import create_app
    >>> from stream.settings import Settings
    >>> app, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> consumer = app.consumer  # built, not started: nothing connects
    >>> consumer._batch_topics == {"interest.events": pipeline}, sorted(consumer._bulk_tables)
    (True, ['doc-interest-users-changelog', 'interest.items'])
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch_topics: dict[str, BatchSink] = {}
        self._bulk_acked: dict[TP, int] = {}
        self._bulk_tables: dict[str, tuple[Any, ValueDecoder | None]] = {}
        self.next_offsets = NextOffsets()  # of the batch topics' partitions (/metrics)
        self._caught_up_commit: asyncio.Future | None = None
        self._caught_up_at = float("-inf")  # when the last such commit started (loop time)

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def register_batch_topic(self, topic: str, sink: BatchSink) -> None:
        self._batch_topics[topic] = sink

    def register_bulk_changelog(self, table: Any, decode: ValueDecoder | None = None) -> None:
        """Recover and follow ``table`` (UTF-8 keys; values bytes, or what ``decode`` makes
        of them) a fetch at a time."""
        self._bulk_tables[table.changelog_topic.get_topic_name()] = (table, decode)

    def _apply_changelog(
        self, table: Any, tp: TP, records: list, decode: ValueDecoder | None = None
    ) -> bool:
        """Apply one partition's fetched changelog records; False if recovery does not
        track the partition (they then take the normal path)."""
        recovery = self.app.tables.recovery
        if tp in recovery.active_tps:
            offsets = recovery.active_offsets
        elif tp in recovery.standby_tps:
            offsets = recovery.standby_offsets
        else:
            return False
        seen = offsets.get(tp)
        batch = [_ChangelogEvent(tp, r, decode) for r in records if seen is None or r.offset > seen]
        if batch:
            table.apply_changelog_batch(batch)
            offsets[tp] = batch[-1].message.offset
        if recovery.in_recovery and not recovery.need_recovery():
            recovery.flush_buffers()
            recovery._set_recovery_ended()
            recovery.signal_recovery_end.set()
        return True

    def _sinks(self) -> Iterable[BatchSink]:
        return {id(s): s for s in self._batch_topics.values()}.values()

    # -- commits: the sink's state first, then its offsets -----------------------------------
    async def force_commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        for sink in self._sinks():
            await sink.before_commit()
            for tp, offset in sink.pending_acks().items():
                if offset > self._bulk_acked.get(tp, -1):
                    self._bulk_acked[tp] = offset
        committed = await super().force_commit(topics, start_new_transaction=start_new_transaction)
        for sink in self._sinks():
            await sink.after_commit()
        return committed

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterable[TP]:
        tps = set(super()._filter_tps_with_pending_acks(topics))
        tps.update(
            tp for tp in self._bulk_acked if topics is None or tp in topics or tp.topic in topics
        )
        return tps

    def _new_offset(self, tp: TP) -> int | None:
        if tp in self._bulk_acked:
            return self._bulk_acked.pop(tp)
        return super()._new_offset(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # No record may be applied between the sink's last write and its forgetting the
        # revoked partitions (their offsets could be committed without their effect): stop
        # the flow first, as Faust's own revocation does a step later; it resumes it after
        # the next assignment's recovery.
        self.stop_flow()
        for sink in self._sinks():
            try:
                await sink.on_revoked(set(revoked))
            except Exception:  # the commit below must still run; replays are idempotent
                log.exception("batch sink failed to write its state on revoke")
        for tp in revoked:
            self._bulk_acked.pop(tp, None)
        await super().on_partitions_revoked(revoked)
        self.next_offsets.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.next_offsets.forget(assigned)  # learnt again from the group's committed offsets
        await super().on_partitions_assigned(assigned, generation_id=generation_id)

    async def perform_seek(self) -> None:
        self.next_offsets.unsettle(self.assignment())
        await super().perform_seek()

    # -- the fetch loop ----------------------------------------------------------------------
    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        """Faust's, except with no active partition: it slept a whole second there, and a
        recovery resumes the streams' partitions within it, so a worker that had recovered
        a table read its first events up to a second after "Worker ready" (docs/RESULTS.md).
        Here it looks every ``IDLE_POLL_S`` until a partition is active or ``timeout``."""
        if not self.flow_active or self.app.client_only or self._get_active_partitions():
            return await super()._wait_next_records(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (
            self.flow_active
            and not self.should_stop
            and not self._get_active_partitions()
            and loop.time() < deadline
        ):
            await asyncio.sleep(IDLE_POLL_S)
        return {}, self._get_active_partitions()

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs a broker
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        loop = asyncio.get_running_loop()
        fetched_at = loop.time()
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                since = loop.time() - fetched_at  # the last batch's time: records sent meanwhile
                records, active = await self._wait_next_records(WAIT_RECORDS_S)
                fetched_at = loop.time()
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                if not any(tp.topic in self._batch_topics for tp in records):
                    self._commit_caught_up(fetched_at)
                if not records:
                    continue
                fetches = [(records, active)]
                if since >= FRESH_AFTER_S and self._fresh_wanted(records):
                    more, more_active = await self._wait_next_records(FRESH_WAIT_S)
                    fetched_at = loop.time()
                    merged = merge_fetches(records, more)
                    if merged is None:  # a position moved back in between: one after the other
                        fetches.append((more, more_active))
                    else:
                        fetches = [(merged, both_active(active, more_active))]
                for records, active in fetches:
                    if not records:
                        continue
                    if not self.flow_active:
                        await self._reposition({}, self._batch_firsts(records), learn=False)
                        try:  # Faust's: every other partition back to its committed offset
                            await self.perform_seek()
                        except Exception as exc:
                            log.warning("seek to committed offsets failed: %r", exc)
                        continue
                    await self._deliver(records, active)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            log.exception("batch drain raised: %r", exc)
            raise

    def _commit_caught_up(self, now: float) -> None:
        """Nothing of the batch topics to read: start a commit (``CAUGHT_UP_COMMIT_GAP``) if a
        sink applied records since its last window closed and no commit runs."""
        running = self._caught_up_commit
        if (
            not self.flow_active
            or self._commit_fut is not None
            or (running is not None and not running.done())
            or now - self._caught_up_at < self.commit_interval * CAUGHT_UP_COMMIT_GAP
            or not any(sink.window_open() for sink in self._sinks())
        ):
            return
        self._caught_up_at = now
        self._caught_up_commit = self.add_future(self._commit_logged())

    async def _commit_logged(self) -> None:
        try:
            await self.commit()
        except Exception as exc:  # the next tick commits the same window again
            log.warning("commit after catching up failed: %r", exc)

    def _fresh_wanted(self, records: Mapping[TP, list]) -> bool:
        """Whether to fetch again before applying ``records``: the flow is on, they hold
        the batch topics' records, and fewer than a full batch (a full one: the worker is
        behind its input, and the next records are waiting already)."""
        if not self.flow_active or not any(tp.topic in self._batch_topics for tp in records):
            return False
        full = self.app.conf.broker_max_poll_records
        return not full or sum(len(recs) for recs in records.values()) < full

    def _batch_firsts(self, records: Mapping[TP, list]) -> dict[TP, int]:
        """The first fetched offset of each batch topic's partition in ``records``."""
        batch_topics = self._batch_topics
        return {tp: recs[0].offset for tp, recs in records.items() if tp.topic in batch_topics}

    async def _deliver(self, records: Mapping[TP, list], active: set[TP] | None) -> None:
        """One fetch's records: the batch topics' to their sinks (those not to apply now are
        unread, ``NextOffsets``), the rest through Faust's per-message path."""
        read_offset = self._read_offset
        batch_topics = self._batch_topics
        batches: dict[BatchSink, dict[TP, list]] = {}
        others: list[tuple[TP, list]] = []
        declined: dict[TP, int] = {}  # fetched and not applied: tp -> first offset
        unread: dict[TP, int] = {}
        for tp, recs in records.items():
            inactive = (
                active is not None and tp not in active and tp not in self._buffered_partitions
            )
            sink = batch_topics.get(tp.topic)
            if sink is None:
                if inactive:
                    continue
                last = read_offset[tp]
                if last is not None and recs[0].offset < last:
                    recs = [r for r in recs if r.offset >= last]
                if recs:
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    others.append((tp, recs))
                continue
            if inactive or not self.next_offsets.known(tp):
                declined[tp] = recs[0].offset
                continue
            recs, back = self.next_offsets.admit(tp, recs)
            if back is not None:
                log.warning(
                    "%s: the fetch jumped to offset %d past the next to apply, %d: reading "
                    "from %d again",
                    tp,
                    records[tp][0].offset,
                    back,
                    back,
                )
                unread[tp] = back
            elif recs:
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                batches.setdefault(sink, {})[tp] = recs
        for sink, by_tp in batches.items():
            await sink.handle_records(by_tp)
            for tp, recs in by_tp.items():
                read_offset[tp] = recs[-1].offset + 1
                self.next_offsets.applied(tp, recs[-1].offset + 1)
            await sink.after_records()
        for tp, recs in others:
            bulk = self._bulk_tables.get(tp.topic)
            if bulk is not None and self._apply_changelog(bulk[0], tp, recs, bulk[1]):
                read_offset[tp] = recs[-1].offset
                continue
            for record in recs:
                await self.wait_first(
                    self.callback(self._to_message(tp, record)), self.suspend_flow.wait()
                )
                read_offset[tp] = record.offset
        if declined or unread:
            await self._reposition(unread, declined)

    async def _reposition(
        self, unread: dict[TP, int], declined: dict[TP, int], learn: bool = True
    ) -> None:
        """Learn the committed offsets of the declined partitions not known yet (``learn``),
        then move the fetch positions back: to ``unread``'s offsets, and to each declined
        partition's first record not applied."""
        unknown = [tp for tp in declined if learn and not self.next_offsets.known(tp)]
        if unknown:
            try:
                committed = await self._thread.committed_offsets(unknown)
            except Exception as exc:  # looked up again at the partition's next records
                log.warning("committed offsets of %s not read: %r", unknown, exc)
                committed = {}
            for tp, offset in committed.items():
                self.next_offsets.learn(tp, offset)
        for tp, first in declined.items():
            unread[tp] = min(unread.get(tp, first), self.next_offsets.declined(tp, first))
        await self._thread.unread(unread)


def merge_fetches(first: Mapping[TP, list], second: Mapping[TP, list]) -> dict[TP, list] | None:
    """Two fetches' records as one, each partition's in offset order; None if a partition's
    second records do not come after its first (a seek moved its position back between
    them: they are then applied one fetch after the other, as ever).

    >>> from types import SimpleNamespace as R
    >>> a, b = TP("t", 0), TP("t", 1)
    >>> first, second = {a: [R(offset=1), R(offset=2)]}, {a: [R(offset=5)], b: [R(offset=0)]}
    >>> merged = merge_fetches(first, second)
    >>> {tp.partition: [r.offset for r in recs] for tp, recs in merged.items()}
    {0: [1, 2, 5], 1: [0]}
    >>> merge_fetches({a: [R(offset=7)]}, {a: [R(offset=3)]}) is None
    True
    """
    merged = {tp: list(recs) for tp, recs in first.items()}
    for tp, recs in second.items():
        earlier = merged.setdefault(tp, [])
        if earlier and recs and recs[0].offset <= earlier[-1].offset:
            return None
        earlier.extend(recs)
    return merged


def both_active(first: set[TP] | None, second: set[TP] | None) -> set[TP] | None:
    """The partitions active at both fetches (None: every partition, as Faust's fetch loop
    has it without a filter).

    >>> both_active({TP("t", 0), TP("t", 1)}, {TP("t", 1)}), both_active(None, {TP("t", 1)})
    ({TP(topic='t', partition=1)}, {TP(topic='t', partition=1)})
    """
    if first is None or second is None:
        return second if first is None else first
    return first & second


def assigned_partitions(consumer: Any, topic: str) -> set[int] | None:
    """``topic``'s partitions assigned to ``consumer`` (a Faust consumer) now; None before it
    has started (no assignment yet to judge by)."""
    try:
        return {tp.partition for tp in consumer.assignment() if tp.topic == topic}
    except ConsumerNotStarted:
        return None


def partition_lag(consumer: Any, topic: str) -> dict[int, int | None]:
    """``topic``'s assigned partitions -> records not yet handed on by ``consumer`` (a Faust
    consumer), as of its last fetch (None: the partition's end not known yet); none before
    it has started (as ``assigned_partitions``)."""
    lag: dict[int, int | None] = {}
    try:
        assigned = consumer.assignment()
    except ConsumerNotStarted:
        return lag
    for tp in assigned:
        if tp.topic == topic:
            highwater = consumer.highwater(tp)
            position = consumer._read_offset.get(tp) or 0
            lag[tp.partition] = None if highwater is None else max(0, highwater - position)
    return lag


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with ``BatchConsumer`` (URL scheme ``batchkafka://``).

    >>> from faust.transport import by_url
    >>> register_transport()
    >>> by_url("batchkafka://127.0.0.1:9092") is BatchTransport, BatchTransport.Consumer
    (True, <class 'stream.batch_consumer.BatchConsumer'>)
    """

    Consumer = BatchConsumer


def register_transport() -> None:
    """Make ``batchkafka://`` URLs resolve to ``BatchTransport`` (idempotent)."""
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:BatchTransport"
