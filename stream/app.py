"""The Faust app: events topic → per-user table → snapshots topic (and the DLQ).

``create_app(settings)`` builds a fresh app; ``Pipeline`` holds its topics, tables, agent and
timers. Stream state lives only in the ``interest-users`` and ``interest-population`` tables
(changelogged, partitioned like the input). The worker also keeps per-process bookkeeping
that is safe to lose (when a user's snapshot was last emitted, counters for ``/metrics``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import faust
from faust.streams import _current_event
from faust.types import EventT

from models.collaborative import CollaborativePrior
from models.online import PopulationInterest
from models.prior import PopulationPrior
from models.schema import POPULATION_KEY
from models.tracker import (
    TrackerConfig,
    apply_event,
    build_snapshot,
    new_record,
    prior_depth,
    top_k,
)
from models.tracker import total_variation as tv
from stream.catalog import catalog_table, resolve_categories
from stream.codec import (
    InvalidEvent,
    Limits,
    dead_letter,
    decode_event,
    encode_snapshot,
    register_codecs,
)
from stream.settings import Settings
from stream.topics import TABLES

log = logging.getLogger(__name__)

CONTROL_HEADER = "interest-control"
PRIOR_REFRESH_S = 1.0  # a partition's prior is rebuilt at most this often (it costs O(categories))
FORGET = b"forget"


@dataclass
class Counters:
    """Per-process counters for ``/metrics`` and the dashboard (not stream state)."""

    started: float = field(default_factory=time.time)
    events: int = 0
    applied: int = 0
    snapshots: int = 0
    dlq: Counter = field(default_factory=Counter)
    last_event_wall: float | None = None
    batches: int = 0
    duplicates: int = 0
    forgotten: int = 0


def _set_current_event(event: EventT | None) -> None:
    # Tables send a key's changelog record to the partition of the *current event*. Set it in
    # this task's context only: Stream._set_current_event would also overwrite the attribute
    # that take_events' background buffer task reads.
    _current_event.set(weakref.ref(event) if event is not None else None)


def _header(message, name: str) -> bytes | None:
    headers = message.headers or ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for k, v in items:
        if k.lower() == name:
            return v
    return None


class Pipeline:
    """Topics, tables, the ingest agent and the trailing-emit timer of one Faust app."""

    def __init__(self, app: faust.App, settings: Settings):
        self.app = app
        self.settings = settings
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
            help="Per-user interest records (online estimator state + last events).",
        )
        self.population = app.Table(
            TABLES[1],
            default=None,
            partitions=parts,
            help="Per-partition decayed population distribution.",
        )
        self.catalog = catalog_table(app, settings.items_topic)  # every worker reads it all
        for table in (self.users, self.population, self.catalog):
            # Faust derives a table's codecs from its key/value types (json for plain types)
            # and copies them into its store and changelog topic (built when the table
            # registers itself), which recovery decodes with: set all three.
            table.key_serializer, table.value_serializer = "utf8", "msgpack"
            table.data.key_serializer, table.data.value_serializer = "utf8", "msgpack"
            if table is not self.catalog:  # the catalog's changelog is the items topic
                table.changelog_topic = table._new_changelog_topic()
        self.counters = Counters()
        self.last_emit: dict[str, float] = {}
        self.pending: dict[str, float] = {}
        self.sequence: dict[str, tuple] = {}
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
        app.timer(max(0.05, settings.min_interval_s / 4), on_leader=False)(self.flush_pending)
        app.timer(5.0, on_leader=False)(self.publish_population)
        self.users.on_recover(self._on_recover)

    # -- ingest -------------------------------------------------------------------------------
    async def process(self, stream: faust.StreamT) -> None:
        s = self.settings
        async for batch in stream.take_events(s.batch, within=s.batch_ms / 1000.0):
            await self.process_batch(stream, batch)

    async def process_batch(self, stream: faust.StreamT, batch: list[EventT]) -> None:
        """Apply a batch of events, then write each touched user's record (and emit) once."""
        now = time.time()
        touched: dict[str, tuple[EventT, dict, dict]] = {}
        forgotten: dict[str, EventT] = {}
        populations: dict[int, tuple[EventT, PopulationInterest]] = {}
        self.counters.batches += 1
        for ev in batch:
            self.counters.events += 1
            if _header(ev.message, CONTROL_HEADER) == FORGET:
                uid = self.settings.user_key((ev.message.key or b"").decode(errors="replace"))
                touched.pop(uid, None)
                forgotten[uid] = ev
                continue
            try:
                await self._apply(ev, now, touched, populations, forgotten)
            except InvalidEvent as err:
                await self.dead_letter(ev.message, ev.value, err)
            except Exception as exc:  # a bug must not cost the event: it goes to the DLQ
                log.exception(
                    "event at %s[%s]@%s failed",
                    ev.message.topic,
                    ev.message.partition,
                    ev.message.offset,
                )
                err = InvalidEvent("internal-error", f"{type(exc).__name__}: {exc}"[:200])
                await self.dead_letter(ev.message, ev.value, err)
        for uid, ev in forgotten.items():
            _set_current_event(ev)
            self.forget(uid)
        for uid, (ev, record, online) in touched.items():
            _set_current_event(ev)  # the changelog record goes to this event's partition
            self.emit_or_defer(uid, record, online)
            self.users[uid] = record
            if self.scorer is not None:
                self.scorer.mark(uid)
        for partition, (ev, pop) in populations.items():
            _set_current_event(ev)
            self.population[f"p{partition}"] = pop.state()
        _set_current_event(None)

    async def _apply(
        self, ev: EventT, now: float, touched: dict, populations: dict, forgotten: dict
    ) -> None:
        msg = ev.message
        event = decode_event(ev.value, _header(msg, "content-type"), self.limits, now, True)
        resolve_categories(event, self.catalog)
        if msg.key is not None and msg.key != event["user_id"].encode():
            # Keyed by something else: re-key so the user's state stays on one partition.
            key = event["user_id"].encode()
            await self.events.send(key=key, value=ev.value, headers=msg.headers)
            return
        uid = event["user_id"] = self.settings.user_key(event["user_id"])
        if uid in touched:
            record = touched[uid][1]
        elif uid in forgotten:  # forgotten earlier in this batch: the table row is going away
            record = new_record()
        else:
            record = self.users.get(uid) or new_record()
        if record.get("p") == msg.partition and msg.offset <= record.get("o", -1):
            # Already in the state (replayed after a crash before the offset commit): skip.
            self.counters.duplicates += 1
            return
        last_ts = record["u"]["t"] if record.get("u") else None
        if last_ts is not None and event["ts"] < last_ts - self.settings.lateness_s:
            raise InvalidEvent("late", f"{last_ts - event['ts']:.0f}s before the user's latest")
        online = apply_event(record, event, self.cfg)
        record["p"], record["o"] = msg.partition, msg.offset
        touched[uid] = (ev, record, online)
        entry = populations.get(msg.partition)
        pop = entry[1] if entry else self._population(msg.partition)
        pop.learn_one(event)
        populations[msg.partition] = (ev, pop)
        self.counters.applied += 1
        self.counters.last_event_wall = now

    def forget(self, uid: str) -> None:
        """Remove a user everywhere: table (changelog tombstone), caches, snapshot topic."""
        if self.users.get(uid) is not None:
            del self.users[uid]
        for cache in (self.last_emit, self.pending, self.sequence):
            cache.pop(uid, None)
        if self.scorer is not None:
            self.scorer.dirty.pop(uid, None)
        self.snapshots.send_soon(key=uid.encode(), value=None)
        self.counters.forgotten += 1

    def _population(self, partition: int) -> PopulationInterest:
        state = self.population.get(f"p{partition}")
        if state:
            return PopulationInterest.from_state(state, self.cfg.interest)
        return PopulationInterest(self.cfg.interest)

    async def dead_letter(self, msg, original: bytes | None, err: InvalidEvent) -> None:
        self.counters.dlq[err.reason] += 1
        await self.dlq.send(
            key=msg.key,
            value=dead_letter(
                original, err.reason, err.detail, msg.topic, msg.partition, msg.offset
            ),
        )

    # -- emission -----------------------------------------------------------------------------
    def emit_or_defer(self, uid: str, record: dict, online: Mapping[str, float]) -> None:
        """Emit now if the user's last snapshot is old enough or the distribution moved a lot.

        ``online`` is the user's online distribution after the batch: enough to decide, so a
        full snapshot is built only when one is published.
        """
        now = time.monotonic()
        last = self.last_emit.get(uid)
        due = last is None or now - last >= self.settings.min_interval_s
        if not due and record.get("ed") is not None:
            due = tv(top_k(online, self.settings.top_k), record["ed"]) > self.settings.tv_threshold
        if due:
            snapshot = self.snapshot(uid, record)
            record["ed"] = snapshot["own"]
            self.publish(uid, snapshot, now)
        else:
            self.pending.setdefault(uid, last + self.settings.min_interval_s)

    def snapshot(self, uid: str, record: Mapping) -> dict:
        prior = self.prior(record.get("p"))
        seq = self.sequence.get(uid)
        if seq is None or self.scorer is None:
            return build_snapshot(uid, record, self.cfg, prior=prior, collaborative=self.collab)
        return self.scorer.fused_snapshot(uid, record, seq, prior)

    def prior(self, partition: int | None) -> PopulationPrior | None:
        """The partition's population prior as written to the table at most ``PRIOR_REFRESH_S``
        ago (snapshots name the state they used); None before the partition has any."""
        state = self.population.get(f"p{partition}") if partition is not None else None
        if not state:
            return None
        built, prior = self.priors.get(partition, (0.0, None))
        now = time.monotonic()
        moved = prior is None or (prior.n_events, prior.ts) != (state.get("n", 0), state["t"])
        if moved and (prior is None or now - built >= PRIOR_REFRESH_S):
            pop = PopulationInterest.from_state(state, self.cfg.interest)
            prior = PopulationPrior.from_population(pop, prior_depth(self.cfg))
            self.priors[partition] = (now, prior)
        return prior

    def publish(self, uid: str, snapshot: dict, now: float) -> None:
        snapshot["emitted_at"] = time.time()
        self.snapshots.send_soon(key=uid.encode(), value=encode_snapshot(snapshot))
        self.last_emit[uid] = now
        self.pending.pop(uid, None)
        self.counters.snapshots += 1

    async def flush_pending(self) -> None:
        """Trailing emit: every user's latest state is published within ``min_interval``."""
        now = time.monotonic()
        due = [uid for uid, at in self.pending.items() if at <= now]
        for i, uid in enumerate(due):
            record = self.users.get(uid)
            if record is None or record.get("u") is None:
                self.pending.pop(uid, None)
                continue
            self.publish(uid, self.snapshot(uid, record), now)
            if i % 500 == 499:
                await asyncio.sleep(0)

    async def _on_recover(self) -> None:
        # A recovered user may have had a deferred snapshot in the worker that owned it before.
        now = time.monotonic()
        for uid in list(self.users.keys()):
            self.pending.setdefault(uid, now)

    def reload_collab(self) -> None:
        """(Re)load the collaborative prior file when it is new or has changed."""
        path = self.settings.collab_prior
        if path and os.path.getmtime(path) != self._collab_mtime:
            self._collab_mtime = os.path.getmtime(path)
            self.collab = CollaborativePrior.load(path)
            log.info("collaborative prior loaded from %s", path)

    async def publish_population(self) -> None:
        self.reload_collab()  # every 5 s: a retrained prior is picked up without a restart
        for key, state in list(self.population.items()):
            if not state:
                continue
            prior = self.prior(int(key[1:]))
            self.snapshots.send_soon(
                key=f"{POPULATION_KEY}/{key}".encode(),
                value=encode_snapshot(
                    {
                        "user_id": f"{POPULATION_KEY}/{key}",
                        "ts": state["t"],
                        **prior.population_snapshot(),
                        "emitted_at": time.time(),
                    }
                ),
            )


def create_app(settings: Settings | None = None, **overrides) -> tuple[faust.App, Pipeline]:
    """A configured Faust app and its pipeline. ``overrides`` go to ``faust.App``."""
    register_codecs()
    settings = settings or Settings.from_env()
    config = dict(
        broker=settings.broker_url if settings.bootstrap else "kafka://127.0.0.1:9092",
        store=settings.store,
        datadir=settings.state_dir,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        producer_linger=0.005,
        stream_buffer_maxsize=8192,
        broker_commit_interval=1.0,
        table_cleanup_interval=30.0,
        autodiscover=False,
        # Faust's generic /table and /router views would expose raw per-user records.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=settings.security.faust_credentials(),
    )
    config.update(overrides)
    app = faust.App(settings.app_id, **config)
    # Faust warns each time its producer buffer passes 100 queued messages: routine at our rates.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    pipeline = Pipeline(app, settings)
    if importlib.util.find_spec("stream.web") is not None:
        from stream.web import register_web

        register_web(app, pipeline)
    return app, pipeline
