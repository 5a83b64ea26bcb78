"""The dashboard's state and payloads: what every web view reads, in one object per worker."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import faust

from models.online.masses import top_k, total_variation
from models.online.population import merged_distribution
from models.schema import OTHER, POPULATION_PREFIX
from stream.batch_consumer import partition_lag
from stream.codec import REASONS, decode_snapshot
from stream.counters import COMMIT_STEPS
from stream.web.cache import ChangeLog, SnapshotCache, compact
from stream.web.feed import SnapshotFeed
from stream.web.metrics import (
    MetricsText,
    RateMeter,
    add_main_thread_metrics,
    add_scorer_metrics,
    resident_memory_bytes,
)
from stream.web.pipeline_view import PipelineView

MAX_FORGOTTEN = 10_000  # forgotten users whose old snapshots the feed may still bring


def _servable(snap: Mapping) -> bool:
    """Whether a decoded snapshot has what the dashboard reads: an int version and a
    distribution of finite probabilities (JSON cannot carry NaN)."""
    version, dist = snap.get("version"), snap.get("distribution")
    return (
        isinstance(version, int)
        and not isinstance(version, bool)
        and isinstance(dist, Mapping)
        and all(
            isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p)
            for p in dist.values()
        )
    )


class Dashboard:
    """Everything the web views read: the pipeline, a snapshot cache, rates and listeners.

    Parameters
    ----------
    app, pipeline
        The Faust app and its pipeline (``stream.app.Pipeline``, seen through
        :class:`~stream.web.pipeline_view.PipelineView`).
    token
        Bearer token every view but ``/health`` needs (None: open).
    max_users, per_user
        Bounds of the :class:`SnapshotCache`.
    max_clients
        Live (server-sent events) connections at once.
    push_interval_s
        Period of the population push and of the local-table check on the live channel.

    Examples
    --------
    >>> from stream.app import create_app
    >>> from stream.settings import Settings
    >>> app, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> dash = pipeline.dashboard
    >>> dash.user_interest("nobody")[1], dash.population()["distribution"]
    (404, {})
    """

    def __init__(
        self,
        app: faust.App,
        pipeline: PipelineView,
        token: str | None = None,
        max_users: int = 2000,
        per_user: int = 40,
        max_clients: int = 64,
        push_interval_s: float = 2.0,
    ):
        self.app = app
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.token = token or None
        self.cache = SnapshotCache(max_users, per_user)
        self.changes = ChangeLog()
        self.events_rate = RateMeter()
        self.snapshots_rate = RateMeter()
        self.feed_population: dict[str, tuple[float, dict]] = {}
        self.feed_received = 0
        self.feed_errors = 0
        # users forgotten here whose tombstone the feed has not read back yet (oldest first)
        self.forgotten: dict[str, None] = {}
        self.max_clients = max_clients
        self.push_interval_s = push_interval_s
        self.listeners: dict[str | None, set[asyncio.Queue]] = {}
        self.clients = 0
        self.closing = False
        self.feed: SnapshotFeed | None = None
        self._broker: tuple[float, bool] = (-math.inf, False)
        self._memo: dict[str, tuple[float, Any]] = {}
        self.started = time.time()

    # -- snapshots in -----------------------------------------------------------------------
    def ingest(self, key: bytes | None, value: bytes | None) -> None:
        """One message of the snapshot topic."""
        self.feed_received += 1
        uid = key.decode("utf-8", errors="replace") if key is not None else None
        try:
            if uid is not None and uid.startswith(POPULATION_PREFIX):
                if value is not None:
                    pop = decode_snapshot(value)
                    if uid in self.feed_population or len(self.feed_population) < 4096:
                        self.feed_population[uid] = (time.time(), dict(pop["distribution"]))
                return
            if value is None:  # tombstone: the user was forgotten
                if uid is not None:
                    self.cache.forget(uid)
                    self.forgotten.pop(uid, None)  # later snapshots are of the user's new life
                return
            snap = decode_snapshot(value)
            uid = str(snap["user_id"])
            dist = snap["distribution"]
            if not _servable(snap):
                raise ValueError("not a snapshot the dashboard can serve")
            if uid in self.forgotten:  # published before the user was forgotten here
                return
            previous = self.cache.add(snap)
            if previous is not None:
                moved = total_variation(previous.get("distribution") or {}, dist)
            else:
                moved = 1.0 if snap.get("n_events", 0) <= 1 else 0.0  # new user / first seen
        except Exception:
            self.feed_errors += 1
            return
        self.changes.record(uid, moved)
        for queue in list(self.listeners.get(uid, ())):
            self._offer(queue, ("snapshot", snap))

    def forget(self, uid: str) -> None:
        """The worker forgot ``uid``: drop its snapshots, and those of it the feed has yet to
        bring (until its tombstone arrives)."""
        self.cache.forget(uid)
        self.forgotten[uid] = None
        if len(self.forgotten) > MAX_FORGOTTEN:  # a feed that never reads them back
            del self.forgotten[next(iter(self.forgotten))]

    @staticmethod
    def _offer(queue: asyncio.Queue, item: Any) -> None:
        if queue.full():  # a slow client gets the freshest items, not a backlog
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(item)

    # -- live listeners ---------------------------------------------------------------------
    def subscribe(self, uid: str | None) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=64)
        self.listeners.setdefault(uid, set()).add(queue)
        self.clients += 1
        return queue

    def unsubscribe(self, uid: str | None, queue: asyncio.Queue) -> None:
        group = self.listeners.get(uid)
        if group is not None:
            group.discard(queue)
            if not group:
                del self.listeners[uid]
        self.clients -= 1

    def close(self) -> None:
        """Ends every live connection (called when the web server shuts down)."""
        self.closing = True
        for group in self.listeners.values():
            for queue in group:
                self._offer(queue, None)

    # -- payloads ---------------------------------------------------------------------------
    def _memoised(self, name: str, ttl_s: float, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._memo.get(name)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = compute()
        self._memo[name] = (now, value)
        return value

    def local_snapshot(self, uid: str) -> dict | None:
        """The user's current snapshot from this worker's table (None if not here)."""
        record = self.pipeline.user_record(uid)
        if record is None:
            return None
        return self.pipeline.snapshot(uid, record)

    def user_interest(self, uid: str, optional: bool = False) -> tuple[dict, int]:
        """(payload, HTTP status) of ``GET /users/{uid}/interest`` (``uid`` as stored:
        ``Settings.stored_user_id``)."""
        history = self.cache.history(uid)
        local = self.local_snapshot(uid)
        cached = self.cache.latest(uid)
        if local is not None and (cached is None or local["version"] >= cached["version"]):
            snapshot, source = local, "table"
            if not history or history[-1]["version"] != local["version"]:
                history = [*history, compact(local)][-self.cache.per_user :]
        elif cached is not None:
            snapshot, source = cached, "cache"
        else:
            payload = {"user_id": uid, "found": False, "source": None, "snapshot": None}
            payload.update(history=[], history_limit=self.cache.per_user)
            if not optional:
                payload["error"] = f"no snapshot of user {uid!r} on this worker yet"
            return payload, 200 if optional else 404
        payload = {"user_id": uid, "found": True, "source": source, "snapshot": snapshot}
        payload.update(history=history, history_limit=self.cache.per_user)
        return payload, 200

    def population_distribution(self, k: int = 20) -> tuple[dict[str, float], list, str]:
        """Population distribution merged over this worker's partitions (each one's horizons
        mixed, mass-weighted); else over the per-partition snapshots the feed has seen.
        ``(top-k, partitions, source)``."""
        states = [(key, s) for key, s in list(self.pipeline.population.items()) if s]
        dist = merged_distribution((s for _, s in states), self.pipeline.cfg.interest)
        if dist:
            return top_k(dist, k), sorted(key for key, _ in states), "table"
        if self.feed_population:
            merged: Counter = Counter()
            for _, dist in self.feed_population.values():
                for c, p in dist.items():
                    merged[c] += p / len(self.feed_population)
            parts = sorted(key[len(POPULATION_PREFIX) :] for key in self.feed_population)
            return top_k(merged, k), parts, "topic"
        return {}, [], "none"

    def table_size(self) -> int:
        return self._memoised("table_size", 1.0, lambda: len(self.pipeline.users.data))

    def rates(self) -> tuple[float, float]:
        events = self.events_rate.sample(self.pipeline.counters.events)
        snaps = self.snapshots_rate.sample(self.feed_received)
        return events, snaps

    def population(self, k: int = 20) -> dict:
        """Payload of ``GET /population`` (computed at most once a second)."""
        return self._memoised(f"population:{k}", 1.0, lambda: self._population(k))

    def _population(self, k: int) -> dict:
        c = self.pipeline.counters
        dist, parts, source = self.population_distribution(k)
        events_s, snaps_s = self.rates()
        most_changed = self.changes.top(10)
        for row in most_changed:
            latest = self.cache.latest(row["user_id"]) or {}
            cats = [x for x in (latest.get("distribution") or {}) if x != OTHER]
            row["top"] = cats[0] if cats else None
        return {
            "distribution": dist,
            "partitions": parts,
            "source": source,
            "events_per_s": round(events_s, 3),
            "snapshots_per_s": round(snaps_s, 3),
            "active_users": self.changes.active(),
            "table_users": self.table_size(),
            "events": c.events,
            "applied": c.applied,
            "snapshots": c.snapshots,
            "dlq": sum(c.dlq.values()),
            "dlq_by_reason": dict(c.dlq),
            "most_changed": most_changed,
            "window_s": self.changes.window_s,
            "uptime_s": round(time.time() - c.started, 3),
        }

    # -- operations -------------------------------------------------------------------------
    async def broker_reachable(self, timeout: float = 1.0) -> bool:
        """Whether a bootstrap server accepts a TCP connection (cached for 2 s)."""
        checked, ok = self._broker
        if time.monotonic() - checked < 2.0:
            return ok
        ok = False
        for server in (self.settings.bootstrap or "").split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                conn = asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port))
                _, writer = await asyncio.wait_for(conn, timeout)
            except (OSError, ValueError, TimeoutError):
                continue
            writer.close()
            ok = True
            break
        self._broker = (time.monotonic(), ok)
        return ok

    def consumer_lag(self) -> dict[int, int] | None:
        """Events-topic partition -> messages not yet applied by this worker (None: unknown)."""
        app = self.app
        if not app.started or app.should_stop:
            return None
        try:
            lag = partition_lag(self.app.consumer, self.settings.events_topic)
        except Exception:  # not started yet, rebalancing, ...
            return None
        return {partition: n for partition, n in lag.items() if n is not None}

    def last_event_age(self) -> float | None:
        last = self.pipeline.counters.last_event_wall
        return None if last is None else max(0.0, time.time() - last)

    async def health(self) -> tuple[dict, int]:
        """(payload, HTTP status) of ``GET /health``: 503 when no broker answers."""
        broker = await self.broker_reachable()
        lag = self.consumer_lag()
        age = self.last_event_age()
        payload = {
            "status": "ok" if broker else "unavailable",
            "broker": {"reachable": broker, "bootstrap": self.settings.bootstrap},
            "worker": self.app.state,
            "consumer_lag": None if lag is None else sum(lag.values()),
            "consumer_lag_by_partition": lag,
            "last_event_age_s": None if age is None else round(age, 3),
            "snapshot_feed": {
                "connected": bool(self.feed and self.feed.connected),
                "received": self.feed_received,
                "unreadable": self.feed_errors,
            },
            "uptime_s": round(time.time() - self.pipeline.counters.started, 3),
        }
        return payload, 200 if broker else 503

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text format."""
        c = self.pipeline.counters
        events_s, snaps_s = self.rates()
        m = MetricsText()
        m.add("interest_events_total", "counter", "Events read from the events topic.", c.events)
        m.add("interest_events_applied_total", "counter", "Events applied to a user.", c.applied)
        m.add("interest_events_per_second", "gauge", "Events read per second (10 s).", events_s)
        m.add("interest_ingest_batches_total", "counter", "Ingest batches processed.", c.batches)
        for reason in sorted(set(REASONS) | set(c.dlq)):
            m.add(
                "interest_dlq_total",
                "counter",
                "Events sent to the DLQ, by reason.",
                c.dlq.get(reason, 0),
                {"reason": reason},
            )
        m.add("interest_snapshots_total", "counter", "Snapshots this worker emitted.", c.snapshots)
        builder = self.pipeline.builder
        m.add(
            "interest_snapshot_builder_processes",
            "gauge",
            "Snapshot builder processes (0: snapshots are built in the worker).",
            builder.processes,
        )
        m.add(
            "interest_snapshots_built_in_worker_total",
            "counter",
            "Snapshots built in the worker's own loop (no builder, the worker keeping up with its "
            "input, or the builders busy or failed).",
            builder.built_here,
        )
        m.add(
            "interest_snapshot_builder_fallbacks_total",
            "counter",
            "Builder jobs built in the worker because a builder process failed.",
            builder.fallbacks,
        )
        m.add(
            "interest_records_written_total",
            "counter",
            "User records written to the table and its changelog (once per commit window).",
            c.records_written,
        )
        m.add(
            "interest_snapshots_queued",
            "gauge",
            "Snapshots asked of the builder and not yet handed to the producer.",
            builder.in_flight,
        )
        m.add("interest_commit_windows_total", "counter", "Commit windows closed.", c.flushes)
        for step in COMMIT_STEPS:
            m.add(
                "interest_commit_step_seconds_total",
                "counter",
                "Seconds spent closing commit windows, by step: write (the window's records to "
                "the table and its changelog), snapshots (the builder's, of the window's events), "
                "output (the producer's acknowledgements); wall time, batches run in between.",
                c.commit_seconds.get(step, 0.0),
                {"step": step},
            )
            m.add(
                "interest_commit_step_last_seconds",
                "gauge",
                "The last commit window's seconds, by step (as above).",
                c.commit_last_seconds.get(step),
                {"step": step},
            )
        full = self.pipeline.full_collections
        m.add(
            "interest_gc_full_passes_total",
            "counter",
            "Full passes of the cyclic collector over the frozen state (stream.memory).",
            full.passes,
        )
        m.add(
            "interest_gc_full_last_seconds",
            "gauge",
            "How long the last full pass stopped the worker.",
            full.last_took,
        )
        m.add("interest_table_users", "gauge", "Users in this worker's table.", self.table_size())
        m.add(
            "interest_pending_users",
            "gauge",
            "Users with a deferred (trailing) snapshot.",
            len(self.pipeline.pending),
        )
        age = self.last_event_age()
        m.add("interest_last_event_age_seconds", "gauge", "Since the last applied event.", age)
        lag = self.consumer_lag()
        m.add("interest_consumer_lag", "gauge", "Events-topic messages not yet read.", None)
        for partition, value in sorted((lag or {}).items()):
            m.add("interest_consumer_lag", "gauge", "", value, {"partition": partition})
        add_scorer_metrics(m, self.pipeline.scorer)
        duplicates = getattr(c, "duplicates", None)
        m.add("interest_duplicates_total", "counter", "Replayed events skipped.", duplicates)
        offsets = self.app.consumer.next_offsets
        m.add(
            "interest_fetch_unread_total",
            "counter",
            "Events-partition fetches not applied then (paused, rebalancing): read again later.",
            offsets.declines,
        )
        m.add(
            "interest_fetch_jumps_total",
            "counter",
            "Events-partition fetches that started past the next offset to apply: read again.",
            offsets.jumps,
        )
        m.add(
            "interest_feed_snapshots_total",
            "counter",
            "Snapshot-topic messages the dashboard feed read (all workers).",
            self.feed_received,
        )
        m.add("interest_feed_snapshots_per_second", "gauge", "Feed rate (10 s).", snaps_s)
        m.add(
            "interest_feed_cache_users", "gauge", "Users in the dashboard cache.", len(self.cache)
        )
        m.add("interest_web_live_clients", "gauge", "Open live connections.", self.clients)
        m.add(
            "interest_uptime_seconds", "gauge", "Since the worker started.", time.time() - c.started
        )
        m.add(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            resident_memory_bytes(),
        )
        add_main_thread_metrics(m)
        return m.render()

    async def tick(self) -> None:
        """Once a second: keep the rate windows sampled between requests."""
        self.rates()
