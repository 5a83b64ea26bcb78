"""The Faust app: events topic → per-user table → snapshots topic (and the DLQ).

``create_app(settings)`` builds a fresh app; ``Pipeline`` holds its topics, tables, the
ingest path and timers. Stream state lives in the ``interest-users`` and
``interest-population`` tables (changelogged, partitioned like the input).

The hot path works on record batches (``stream.batch_consumer``): each fetch's records are
decoded, validated and applied to live user records held in a record cache in front of the
table (``stream.record_cache``); once per commit window each changed user's record is written
to the table and its changelog (``before_commit``), and only then are the offsets that cover
it committed. A replay after a crash skips what a user's record already holds (its partition
and offset), so the effect on state is exactly once. The Faust agent on the events topic is
the subscription and the per-event path that ``test_context`` drives; it applies batches
through the same code.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Container, Mapping, Sequence
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP

from models.online import PopulationInterest
from models.online.masses import total_variation as tv
from models.priors.collaborative import CollaborativePrior
from models.priors.population import PopulationPrior
from models.records import PopulationField
from models.schema import POPULATION_PREFIX, population_key, population_partition
from models.tracker import TrackerConfig, UserRecord, build_snapshot, prior_depth
from stream.batch_consumer import assigned_partitions, partition_lag, register_transport
from stream.catalog import catalog_table, decode_item, resolve_categories
from stream.codec import (
    InvalidEvent,
    Limits,
    control_key,
    dead_letter,
    decode_event,
    decode_record,
    encode_snapshot,
    header,
    register_codecs,
)
from stream.counters import Counters
from stream.faust_config import ROCKSDB_OPTIONS, faust_config
from stream.memory import FullCollections, freeze_survivors, trim_heap
from stream.output import Output
from stream.record_cache import RecordCache
from stream.settings import Settings
from stream.snapshot_builder import SnapshotBuilder
from stream.table_partition import in_partition, plain_entries
from stream.topics import TABLES
from stream.trailing import HeldSnapshots, TrailingSnapshots
from stream.web.dashboard import Dashboard
from stream.web.views import register_web
from stream.window_lock import WindowLock

log = logging.getLogger(__name__)

# The cyclic collector: what a batch leaves alive is frozen (stream.memory), so its young
# generation holds only the batch's own objects and a collection within a batch is a safety
# net. A full pass over the frozen state too (the cycles that died after being frozen) runs
# every minute, or less often when it is slow (stream.memory.FullCollections).
GC_THRESHOLD = 1_000_000
GC_CHECK_S = 10.0
# Keeping up with the input, a batch waits up to this long for the broker to take its output
# before the next is applied: the producer has one request in flight per broker and is served
# only between batches, so the snapshots would otherwise leave after the next batch's work.
SETTLE_S = 0.02
TRAILING_CHECK_S = 0.05  # how often owed snapshots are looked for between batches
CONTROL_HEADER = "interest-control"
PRIOR_REFRESH_S = 1.0  # a partition's prior is rebuilt at most this often (it costs O(categories))
FORGET = b"forget"


class Pipeline:
    """Topics, tables, the batch ingest path and the emission timers of one Faust app.

    >>> _, p = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc", min_interval_s=1.0))
    >>> r, ev = p.record("u"), {"item_id": "i", "categories": ["a"], "event_type": "view"}
    >>> _ = r.apply({**ev, "ts": 1.0}); p.due("u", r, now=0.0)  # a first snapshot: at once
    True
    >>> p.recent["u"] = (0.0, r.own_top(3)); p.due("u", r, now=0.4), p.pending.due(1.0)  # owed
    (False, ['u'])
    >>> _ = r.apply({**ev, "categories": ["b"], "ts": 2.0}); p.due("u", r, now=0.5)  # moved
    True
    """

    def __init__(self, app: faust.App, settings: Settings):
        self.app, self.settings = app, settings
        self.cfg = TrackerConfig(
            interest=settings.interest, history=settings.history, top_k=settings.top_k
        )
        self.limits = Limits(max_payload=settings.max_payload, max_future_s=settings.max_future_s)
        parts = settings.partitions
        self.events = app.topic(
            settings.events_topic, key_serializer="raw", value_serializer="raw", partitions=parts
        )
        self.snapshots = app.topic(
            settings.snapshots_topic,
            key_serializer="raw",
            value_serializer="raw",
            partitions=parts,
            compacting=True,
        )
        self.dlq = app.topic(
            settings.dlq_topic, key_serializer="raw", value_serializer="raw", partitions=parts
        )
        self.users = app.Table(
            TABLES[0],
            default=None,
            partitions=parts,
            help="Per-user interest records (compact, versioned: models.tracker.UserRecord).",
            options=dict(ROCKSDB_OPTIONS) if settings.store.startswith("rocksdb") else None,
        )
        self.population = app.Table(
            TABLES[1],
            default=None,
            partitions=parts,
            help="Per-partition decayed population distribution.",
        )
        self.catalog = catalog_table(app, settings.items_topic)  # every worker reads it all
        # Faust derives a table's codecs from its key/value types and copies them into its
        # store and changelog topic (built when the table registers itself), which recovery
        # decodes with: set all three. User records are bytes already (stream.codec).
        for table, value_serializer in (
            (self.users, "raw"),
            (self.population, "msgpack"),
            (self.catalog, "msgpack"),
        ):
            table.key_serializer, table.value_serializer = "utf8", value_serializer
            table.data.key_serializer, table.data.value_serializer = "utf8", value_serializer
            if table is not self.catalog:  # the catalog's changelog is the items topic
                table.changelog_topic = table._new_changelog_topic()
        self.counters = Counters()
        self.output = Output(app, parts)
        self.builder = SnapshotBuilder.from_settings(settings, self.cfg, self.output)
        if self.builder.processes:
            app.task(self.builder.start)
        self.records = RecordCache(
            self.users,
            self.cfg,
            settings.events_topic,
            settings.cache_users,
            self.output,
            self.counters,
        )
        self._covered: dict[TP, int] = {}  # next offset per partition the closed window covers
        self.populations: dict[int, PopulationInterest] = {}
        self.dirty_populations: set[int] = set()
        self._processed: dict[TP, int] = {}  # next offset per partition, applied not yet written
        self._written: dict[TP, int] = {}  # ... and written, ready to commit
        self._flush_lock = WindowLock()
        # Emission bookkeeping (safe to lose): users emitted within the last min-interval
        # (when, what; in publish order), users owed a trailing snapshot (when), sequence
        # estimates.
        self.recent: dict[str, tuple[float, dict]] = {}
        self.pending = TrailingSnapshots()
        self.sequence: dict[str, tuple] = {}
        self.held = HeldSnapshots()  # while a recovery's replay catches up
        self.dashboard: Dashboard | None = None
        self.priors: dict[int, tuple[float, PopulationPrior]] = {}  # per partition: built at
        self.collab: CollaborativePrior | None = None
        self._collab_mtime = 0.0
        self.reload_collab()
        self.scorer = None
        if settings.checkpoint:
            from stream.scoring import StreamScorer

            self.scorer = StreamScorer.from_settings(self)
            app.task(self.scorer.run)
        app.agent(self.events, name="interest-tracker-events")(self.process)
        app.timer(TRAILING_CHECK_S, on_leader=False)(self.flush_pending)
        app.timer(5.0, on_leader=False)(self.publish_population)
        app.timer(5.0, on_leader=False)(self.trim_heap)
        self.full_collections = FullCollections()
        app.timer(GC_CHECK_S, on_leader=False)(self.collect_cycles)
        self.users.on_recover(self._on_recover)
        self.output.on_sent(self.records.changelog, self._changelog_sent)

    def attach(self, consumer: Any) -> None:
        """Take the events topic's record batches from a ``BatchConsumer``."""
        consumer.register_batch_topic(self.settings.events_topic, self)
        consumer.register_bulk_changelog(self.users)
        consumer.register_bulk_changelog(self.catalog, decode_item)

    # -- ingest -------------------------------------------------------------------------------
    async def process(self, stream: faust.StreamT) -> None:
        """The per-event path (Faust's stream): used where no ``BatchConsumer`` delivers."""
        s = self.settings
        async for batch in stream.take_events(s.batch, within=s.batch_ms / 1000.0):
            by_tp: dict[TP, list] = {}
            for ev in batch:
                by_tp.setdefault(ev.message.tp, []).append(ev.message)
            await self.handle_records(by_tp)
            await self.before_commit()  # Faust acks these events itself: write state first
            self.pending_acks()
            await self.after_commit()

    async def handle_records(self, batches: Mapping[TP, Sequence[Any]]) -> None:
        """Apply records (aiokafka records or Faust messages, offset order per partition),
        then publish the snapshots that are due."""
        now = time.time()
        touched: dict[str, UserRecord] = {}  # users whose records changed, in first-touch order
        self.counters.batches += 1
        catalog = self._catalog_entries()
        for tp, records in batches.items():
            pop = self._population(tp.partition)
            for rec in records:
                self._apply(rec, now, touched, pop, catalog)
            self._processed[tp] = records[-1].offset + 1
            self.dirty_populations.add(tp.partition)
        self.counters.last_event_wall = now
        mono = time.monotonic()
        if self.held.active:  # replaying after a recovery: see stream.trailing
            self.held.add(touched)
            touched = {}
        due = [(uid, record) for uid, record in touched.items() if self.due(uid, record, mono)]
        due += self._owed(mono, touched)  # owed ones now due: the timer can wait behind batches
        self.builder.plan(len(due), self.events_behind)
        priors: dict[int | None, PopulationPrior | None] = {}
        for uid, record in due:
            self.publish(uid, record, mono, priors)
        if self.scorer is not None:
            for uid in touched:
                self.scorer.mark(uid)
        self.builder.submit()
        freeze_survivors()  # what the batch left alive: reference counting frees it
        await self.output.send_behind()  # handed over while the next batch is applied

    async def after_records(self) -> None:
        """Keeping up with the input, let the broker take the batch's snapshots before the
        next batch is applied (at most ``SETTLE_S``); behind it, go on: throughput first."""
        if self.events_behind() < self.settings.batch:
            await self.output.settle(SETTLE_S)

    def _apply(
        self, rec: Any, now: float, touched: dict, pop: PopulationInterest, catalog: Mapping
    ) -> None:
        self.counters.events += 1
        headers = rec.headers
        try:
            if headers and header(headers, CONTROL_HEADER) == FORGET:
                uid = self.settings.user_key(control_key(rec.key))
                self.forget(uid, rec)
                touched.pop(uid, None)
                return
            event = decode_event(
                rec.value, header(headers, "content-type"), self.limits, now, catalog=True
            )
            resolve_categories(event, catalog)
            key = event["user_id"].encode()
            if rec.key != key:  # keyed by something else or not at all: re-key to its user
                topic = self.settings.events_topic
                self.output.add(
                    topic, key, rec.value, self.output.partition_for(topic, key), rec.headers
                )
                return
            uid = event["user_id"] = self.settings.user_key(event["user_id"])
            records = self.records
            record = records.to_change(uid)
            if record.partition == rec.partition and rec.offset <= record.offset:
                # Already in the state (replayed after a crash before the offset commit).
                self.counters.duplicates += 1
                return
            last_ts = record.last_ts
            if last_ts is not None and event["ts"] < last_ts - self.settings.lateness_s:
                raise InvalidEvent("late", f"{last_ts - event['ts']:.0f}s before the user's latest")
            record.apply(event)
            touched[uid] = record
            record.partition, record.offset = rec.partition, rec.offset
            records.changed(uid)
            pop.learn_one(event, user_events=record.n_events - 1)
            self.counters.applied += 1
        except InvalidEvent as err:
            self.dead_letter(rec, err)
        except Exception as exc:  # a bug must not cost the event: it goes to the DLQ
            log.exception("event at %s[%s]@%s failed", rec.topic, rec.partition, rec.offset)
            self.dead_letter(
                rec, InvalidEvent("internal-error", f"{type(exc).__name__}: {exc}"[:200])
            )

    def _catalog_entries(self) -> Mapping:
        """The catalog's entries (``plain_entries``); never the Table (its hooks run per
        access)."""
        return plain_entries(self.catalog.data)

    def record(self, uid: str) -> UserRecord:
        """The user's live record (``RecordCache.get``)."""
        return self.records.get(uid)

    def user_state(self, uid: str) -> UserRecord | bytes | None:
        """The user's live record, else its stored bytes (``stored_record``), else None."""
        return self.records.state(uid)

    def user_bytes(self, uid: str) -> bytes | None:
        """The user's record as bytes (``RecordCache.state_bytes``), else None."""
        return self.records.state_bytes(uid)

    def user_record(self, uid: str) -> UserRecord | None:
        """The user's record if this worker holds one with events (no caching)."""
        record = self.records.state(uid)
        if record is not None and not isinstance(record, UserRecord):
            record = decode_record(record, self.cfg)
        return record if record is not None and record.interest is not None else None

    def forget(self, uid: str, rec: Any) -> None:
        """Remove a user everywhere: table (changelog tombstone), caches, snapshot topic."""
        self.records.forget(uid, rec.partition)
        for cache in (self.recent, self.sequence):
            cache.pop(uid, None)
        self.pending.settle(uid)
        self.held.discard(uid)
        if self.scorer is not None:
            self.scorer.dirty.pop(uid, None)
        self.builder.ready(uid, None)  # after any snapshot of the user still being built
        if self.dashboard is not None:  # before its feed brings the tombstone back
            self.dashboard.forget(uid)
        self.counters.forgotten += 1

    def _population(self, partition: int) -> PopulationInterest:
        pop = self.populations.get(partition)
        if pop is None:
            state = self.population.data.get(population_key(partition))
            if state:
                pop = PopulationInterest.from_state(state, self.cfg.interest)
            else:
                pop = PopulationInterest(self.cfg.interest)
            self.populations[partition] = pop
        return pop

    def dead_letter(self, rec: Any, err: InvalidEvent) -> None:
        self.counters.dlq[err.reason] += 1
        topic = self.settings.dlq_topic
        value = dead_letter(rec.value, err.reason, err.detail, rec.topic, rec.partition, rec.offset)
        partition = self.output.partition_for(topic, rec.key) if rec.key else rec.partition
        self.output.add(topic, rec.key, value, partition)

    async def trim_heap(self) -> None:
        """Every few seconds: freed record bytes back to the OS (``stream.memory``)."""
        trim_heap()

    async def collect_cycles(self) -> None:
        """When due: the cyclic collector over everything, frozen objects included."""
        self.full_collections.run_if_due()

    # -- the commit window --------------------------------------------------------------------
    async def before_commit(self) -> None:
        """Write every changed record to the table and its changelog (the window's end),
        and wait until the broker has them and the snapshots of the events they cover."""
        async with self._flush_lock.window():
            self._end_window()
            await self.counters.timed("write", self.records.write_unwritten())
            self._window_written()
            await self.counters.timed("snapshots", self.builder.drain())
            await self.counters.timed("output", self.output.drain())

    async def after_commit(self) -> None:
        """The window's offsets are committed: past the cache's limit, the least recently used
        records leave, beside the batches (between its slices) and the next commit (a window
        waiting to close stops it; the rest leave after that window's commit). Not before the
        commit: with 100,000 users a window's eviction took 0.5-1.9 s, and the offsets waited
        for it; nor within it: a commit on catching up waited 0.4 s for the last one's."""
        self.records.evict_beside(self._flush_lock)  # no window closes within a chunk

    def _end_window(self) -> None:
        """Close the window: the records it changed are to be written (``RecordCache``), the
        population states are written, and its offsets put aside."""
        # Synchronous: the window's state is the records changed so far, each as it is now,
        # and it covers exactly the offsets processed so far.
        self.records.end_window()
        events_topic = self.settings.events_topic
        for partition in self.dirty_populations:
            if partition in self.populations:
                in_partition(events_topic, partition)
                self.population[population_key(partition)] = self.populations[partition].state()
        self.dirty_populations.clear()
        _current_event.set(None)
        covered = self._covered
        for tp, offset in self._processed.items():
            covered[tp] = max(offset, covered.get(tp, 0))
        self._processed.clear()

    def _window_written(self) -> None:
        """The closed window is written: its offsets may be committed."""
        for tp, offset in self._covered.items():
            self._written[tp] = max(offset, self._written.get(tp, 0))
        self._covered = {}
        self.counters.flushes += 1
        self._expire_recent(time.monotonic() - self.settings.min_interval_s)

    def _expire_recent(self, cutoff: float) -> None:
        """Forget the snapshots published at ``cutoff`` or before. ``recent`` is in publish
        order (``publish`` moves a user to its end), so only those and one more are read."""
        recent, expired = self.recent, []
        for uid, (at, _) in recent.items():
            if at > cutoff:
                break
            expired.append(uid)
        for uid in expired:
            del recent[uid]

    def window_open(self) -> bool:
        return bool(self._processed)

    def pending_acks(self) -> dict[TP, int]:
        acks, self._written = self._written, {}
        return acks

    async def on_revoked(self, revoked: set[TP]) -> None:
        """Write the state of the leaving partitions, then forget it locally."""
        await self.before_commit()
        gone = {tp.partition for tp in revoked if tp.topic == self.settings.events_topic}
        if not gone:
            return
        self.records.drop_partitions(gone)
        for partition in gone:
            self.populations.pop(partition, None)
            self.dirty_populations.discard(partition)
        for tp in [tp for tp in self._processed if tp.partition in gone]:
            del self._processed[tp]  # never acked: replayed by the partition's next owner

    def _changelog_sent(self, topic: str, partition: int, offset: int, count: int) -> None:
        # What Faust's own changelog callback does: a persistent store (RocksDB) remembers
        # the offset it holds, so a restart replays only the changelog's tail.
        self.users.data.set_persisted_offset(TP(topic, partition), offset + count - 1)

    # -- emission -----------------------------------------------------------------------------
    def due(self, uid: str, record: UserRecord, now: float) -> bool:
        """Whether the user's snapshot is due now: the last one is old enough or the
        distribution moved a lot; if not, a trailing one is owed (``pending``).

        The record's own distribution (its top k, cached until its next event) is enough to
        decide, so a full snapshot is built only when one is published."""
        last = self.recent.get(uid)
        if last is None or now - last[0] >= self.settings.min_interval_s:
            return True
        if tv(record.own_top(self.settings.top_k), last[1]) > self.settings.tv_threshold:
            return True
        self.pending.owe(uid, last[0] + self.settings.min_interval_s)
        return False

    def snapshot(self, uid: str, record: UserRecord) -> dict:
        prior = self.prior(record.partition)
        seq = self.sequence.get(uid)
        if seq is None or self.scorer is None:
            return build_snapshot(uid, record, self.cfg, prior=prior, collaborative=self.collab)
        return self.scorer.fused_snapshot(uid, record, seq, prior, self.collab)

    def prior(self, partition: int | None) -> PopulationPrior | None:
        """The partition's population prior, rebuilt from its live state at most every
        ``PRIOR_REFRESH_S`` (snapshots name the state they used: ``n_events``, ``ts``); None
        before the partition has seen an event."""
        if partition is None:
            return None
        pop = self.populations.get(partition)
        if pop is None:
            state = self.population.get(population_key(partition))
            if not state:
                return None
            pop = PopulationInterest.from_state(state, self.cfg.interest)
        if pop.n_events == 0:
            return None
        built, prior = self.priors.get(partition, (0.0, None))
        now = time.monotonic()
        moved = prior is None or (prior.n_events, prior.ts) != (pop.n_events, pop.last_ts)
        if moved and (prior is None or now - built >= PRIOR_REFRESH_S):
            prior = PopulationPrior.from_population(pop, prior_depth(self.cfg))
            self.priors[partition] = (now, prior)
        return prior

    def publish(
        self,
        uid: str,
        record: UserRecord,
        now: float,
        priors: dict[int | None, PopulationPrior | None] | None = None,
    ) -> None:
        """Publish the user's snapshot, the sequence model's estimate fused in when it has
        one: built off the ingest loop when the ``SnapshotBuilder`` can. ``priors`` keeps
        each partition's prior for the rest of a run of publishes (nothing learns between
        them), so it is looked up once a partition, not once a snapshot."""
        priors = {} if priors is None else priors
        if record.partition not in priors:
            priors[record.partition] = self.prior(record.partition)
        prior = priors[record.partition]
        seq = self.sequence.get(uid) if self.scorer is not None else None
        if seq is not None:
            self.builder.fusion(self.scorer.fusion)
        blob = self.builder.build(uid, record, prior, seq)
        if blob is not None:
            self.records.built_from(uid, record, blob)
        if self.settings.min_interval_s > 0 or self.settings.tv_threshold < 1:
            self.recent.pop(uid, None)  # to the end: recent stays in publish order
            self.recent[uid] = (now, record.own_top(self.settings.top_k))
        self.pending.settle(uid)
        self.counters.snapshots += 1

    async def flush_pending(self) -> None:
        """Trailing emit: every user's latest state is published within ``min_interval``."""
        now = time.monotonic()
        for uid in self.held.release(self._caught_up):  # every recovered and replayed user
            self.pending.owe(uid, now)
        due = self._owed(now)
        self.builder.plan(len(due), self.events_behind)
        priors: dict[int | None, PopulationPrior | None] = {}
        for i, (uid, record) in enumerate(due):
            self.publish(uid, record, now, priors)
            if i % 500 == 499:
                self.builder.submit()
        self.builder.submit()
        await self.output.send()

    def _owed(self, now: float, touched: Container = frozenset()) -> list[tuple[str, UserRecord]]:
        """The trailing snapshots due at ``now`` (``touched`` users are published with their
        batch), of users whose partition is this worker's: a revoked partition's or a
        standby's are its owner's to publish."""
        due = self.pending.due(now)
        if not due:
            return []
        owned = assigned_partitions(self.app.consumer, self.settings.events_topic)
        records = [(uid, self.user_record(uid)) for uid in due if uid not in touched]
        return [
            (uid, r)
            for uid, r in records
            if r is not None and (owned is None or r.partition in owned)
        ]

    async def _on_recover(self) -> None:
        self.held.hold(self.users.data.keys())

    def events_behind(self) -> int:
        """Events of the assigned events partitions not yet applied (as of the last fetch)."""
        return sum(
            filter(None, partition_lag(self.app.consumer, self.settings.events_topic).values())
        )

    def _caught_up(self) -> bool:
        """Every events partition is within one fetch of its end (under a steady input
        the lag is never zero)."""
        lag = partition_lag(self.app.consumer, self.settings.events_topic)
        return all(n is not None and n <= self.settings.batch for n in lag.values())

    def reload_collab(self) -> None:
        """(Re)load the collaborative prior file when it is new or has changed."""
        path = self.settings.collab_prior
        if path and os.path.getmtime(path) != self._collab_mtime:
            self._collab_mtime = os.path.getmtime(path)
            self.collab = CollaborativePrior.load(path)
            self.builder.collaborative(self.collab, self._collab_mtime)
            log.info("collaborative prior loaded from %s", path)

    async def publish_population(self) -> None:
        self.reload_collab()  # every 5 s: a retrained prior is picked up without a restart
        for key, state in list(self.population.items()):
            if not state:
                continue
            prior = self.prior(population_partition(key))
            uid = POPULATION_PREFIX + key
            snapshot = {
                "user_id": uid,
                "ts": state[PopulationField.LAST_TS],
                **prior.population_snapshot(),
                "emitted_at": time.time(),
            }
            key, topic = uid.encode(), self.settings.snapshots_topic
            value = encode_snapshot(snapshot, self.settings.snapshot_format)
            self.output.add(topic, key, value, self.output.partition_for(topic, key))
        await self.output.send()


def create_app(settings: Settings | None = None, **overrides) -> tuple[faust.App, Pipeline]:
    """A configured Faust app and its pipeline. ``overrides`` go to ``faust.App``."""
    register_codecs()
    register_transport()
    settings = settings or Settings.from_env()
    config = faust_config(settings)
    config.update(overrides)
    # The hot path allocates many short-lived dicts; with the default thresholds the cyclic
    # collector's passes over every live object (cache, dashboard) took a quarter of the
    # worker's time in profiles. What exists at start-up is frozen, as is what each batch
    # leaves alive (Pipeline.handle_records).
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    gc.freeze()
    app = faust.App(settings.app_id, **config)
    # Faust warns each time its producer buffer passes 100 queued messages: routine at our rates.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    pipeline = Pipeline(app, settings)
    if hasattr(app.consumer, "register_batch_topic"):
        pipeline.attach(app.consumer)
    register_web(app, pipeline)
    return app, pipeline
