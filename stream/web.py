"""The worker's web side: the live dashboard, its JSON endpoints, ``/health`` and ``/metrics``.

``register_web(app, pipeline)`` (called by ``stream.app.create_app``) adds these views to the
worker's own Faust web server (``INTEREST_WEB_HOST``:``INTEREST_WEB_PORT``, default
``127.0.0.1:6066``):

| path | what |
|---|---|
| ``GET /`` | the dashboard (``stream/static/``: plain HTML, CSS and hand-written SVG, no CDN) |
| ``GET /health`` | broker reachable, consumer lag, last event age; 200, or 503 without a broker |
| ``GET /metrics`` | Prometheus text format |
| ``GET /users/{id}/interest`` | the user's latest snapshot and recent ones (404 if unknown; |
| | ``?optional=1`` answers 200 with ``"found": false`` instead) |
| ``GET /population`` | population distribution, events/s, active users, DLQ, most-changed users |
| ``GET /stream[?user=ID]`` | server-sent events: ``snapshot`` (that user's), ``population`` (2 s) |

A user's latest snapshot comes from the ``interest-users`` table when the user lives on this
worker, else from a bounded cache fed by a background consumer of the snapshot topic (no
consumer group, from the latest offsets less a small backfill), which also keeps the recent
snapshots of each user for the heatmap and feeds the live channel. All of it hangs off the
:class:`Dashboard` that ``register_web`` creates: nothing is module-level.

**Token.** When ``INTEREST_WEB_TOKEN`` is set (or ``Settings.web_token``, if the settings
have one), every path except ``/health`` needs it, as ``Authorization: Bearer <token>``, as
``?token=<token>`` (open ``http://host:6066/?token=...`` once: the page then keeps it in an
HTTP-only, same-site cookie) or as that cookie. Faust's own ``/table`` and ``/router`` views
are covered too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import os
import re
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web as aioweb
from mode import Service

from models.online.population import merged_distribution
from models.schema import OTHER, POPULATION_PREFIX
from models.tracker import top_k, total_variation
from stream.codec import REASONS, decode_snapshot

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_ENV = "INTEREST_WEB_TOKEN"
TOKEN_COOKIE = "interest_web_token"


# -- bounded bookkeeping ----------------------------------------------------------------------
def compact(snapshot: Mapping) -> dict:
    """The part of a snapshot the heatmap needs (what the cache keeps per past snapshot).

    >>> compact({"version": 3, "ts": 1.0, "distribution": {"a": 1.0}, "drift": True, "x": 0})
    {'version': 3, 'ts': 1.0, 'emitted_at': None, 'distribution': {'a': 1.0}, 'drift': True}
    """
    return {
        "version": snapshot.get("version"),
        "ts": snapshot.get("ts"),
        "emitted_at": snapshot.get("emitted_at"),
        "distribution": dict(snapshot.get("distribution") or {}),
        "drift": bool(snapshot.get("drift")),
    }


class SnapshotCache:
    """The latest snapshot and the last ``per_user`` compact ones of the last ``max_users``
    users seen (least recently used users are dropped).

    Parameters
    ----------
    max_users
        Users kept; adding one more drops the least recently added or read.
    per_user
        Past snapshots kept per user (for the heatmap).

    Examples
    --------
    >>> cache = SnapshotCache(max_users=2, per_user=3)
    >>> for v in range(1, 6):
    ...     _ = cache.add({"user_id": "a", "version": v, "distribution": {"x": 1.0}})
    >>> [h["version"] for h in cache.history("a")], cache.latest("a")["version"]
    ([3, 4, 5], 5)
    >>> _ = cache.add({"user_id": "b", "version": 1, "distribution": {}})
    >>> _ = cache.add({"user_id": "c", "version": 1, "distribution": {}})
    >>> sorted(cache), cache.latest("a") is None
    (['b', 'c'], True)
    """

    def __init__(self, max_users: int = 2000, per_user: int = 40):
        self.max_users = max_users
        self.per_user = per_user
        self._users: OrderedDict[str, tuple[dict, deque]] = OrderedDict()

    def add(self, snapshot: Mapping) -> dict | None:
        """Keep ``snapshot`` as its user's latest; return the previous latest (or None)."""
        uid = str(snapshot["user_id"])
        entry = self._users.get(uid)
        previous = entry[0] if entry else None
        history = entry[1] if entry else deque(maxlen=self.per_user)
        item = compact(snapshot)
        if history and history[-1]["version"] == item["version"]:
            history[-1] = item  # the same state published again (trailing emit, rebalance)
        else:
            history.append(item)
        self._users[uid] = (dict(snapshot), history)
        self._users.move_to_end(uid)
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)
        return previous

    def latest(self, uid: str) -> dict | None:
        entry = self._users.get(uid)
        if entry is None:
            return None
        self._users.move_to_end(uid)
        return entry[0]

    def history(self, uid: str) -> list[dict]:
        entry = self._users.get(uid)
        return list(entry[1]) if entry else []

    def forget(self, uid: str) -> None:
        self._users.pop(uid, None)

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self):
        return iter(list(self._users))


class RateMeter:
    """A per-second rate of a growing count over a sliding window.

    Examples
    --------
    >>> meter = RateMeter(window_s=10.0)
    >>> meter.sample(100, now=0.0)
    0.0
    >>> meter.sample(150, now=5.0)
    10.0
    """

    def __init__(self, window_s: float = 10.0):
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=4096)

    def sample(self, count: float, now: float | None = None) -> float:
        """Record ``count`` at ``now``; return the rate over the window."""
        now = time.monotonic() if now is None else now
        samples = self._samples
        if not samples or now > samples[-1][0]:
            samples.append((now, count))
        while len(samples) > 2 and samples[1][0] <= now - self.window_s:
            samples.popleft()
        t0, c0 = samples[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0


class ChangeLog:
    """How much each user's distribution moved (total variation) over the last ``window_s``.

    Examples
    --------
    >>> changes = ChangeLog(window_s=60.0)
    >>> changes.record("a", 0.1, now=0.0); changes.record("b", 0.5, now=1.0)
    >>> changes.record("a", 0.2, now=2.0)
    >>> [(c["user_id"], round(c["moved"], 2), c["snapshots"]) for c in changes.top(2, now=3.0)]
    [('b', 0.5, 1), ('a', 0.3, 2)]
    >>> changes.active(now=61.5)
    1
    """

    def __init__(self, window_s: float = 60.0, max_entries: int = 50_000):
        self.window_s = window_s
        self._entries: deque[tuple[float, str, float]] = deque(maxlen=max_entries)

    def record(self, uid: str, moved: float, now: float | None = None) -> None:
        self._entries.append((time.monotonic() if now is None else now, uid, moved))

    def _prune(self, now: float) -> None:
        while self._entries and self._entries[0][0] < now - self.window_s:
            self._entries.popleft()

    def top(self, n: int = 10, now: float | None = None) -> list[dict]:
        """The ``n`` users who moved most (summed total variation, > 0), largest first."""
        self._prune(time.monotonic() if now is None else now)
        moved: Counter = Counter()
        count: Counter = Counter()
        for _, uid, tv in self._entries:
            moved[uid] += tv
            count[uid] += 1
        ranked = sorted((u for u in moved if moved[u] > 0), key=lambda u: (-moved[u], u))[:n]
        return [{"user_id": u, "moved": moved[u], "snapshots": count[u]} for u in ranked]

    def active(self, now: float | None = None) -> int:
        """Distinct users with a snapshot in the window."""
        self._prune(time.monotonic() if now is None else now)
        return len({uid for _, uid, _ in self._entries})


# -- Prometheus text format -------------------------------------------------------------------
def _label_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MetricsText:
    """A tiny writer of the Prometheus text exposition format (version 0.0.4).

    Examples
    --------
    >>> m = MetricsText()
    >>> m.add("jobs_total", "counter", "Jobs done.", 3)
    >>> m.add("queue", "gauge", "Queued.", 2, {"name": 'a"b'})
    >>> print(m.render(), end="")
    # HELP jobs_total Jobs done.
    # TYPE jobs_total counter
    jobs_total 3
    # HELP queue Queued.
    # TYPE queue gauge
    queue{name="a\\"b"} 2
    """

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float | None,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        """One sample of family ``name`` (a ``None`` value is left out, the family kept)."""
        family = self._families.setdefault(name, (kind, help_text, []))
        if value is None:
            return
        value = float(value)
        text = repr(int(value)) if value.is_integer() else repr(value)
        if labels:
            inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
            family[2].append(f"{name}{{{inner}}} {text}")
        else:
            family[2].append(f"{name} {text}")

    def render(self) -> str:
        lines = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def resident_memory_bytes() -> int | None:
    """This process's resident set size (Linux ``/proc``; None where it cannot be read)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# Known fields of the scorer's stats (``stream.scoring.ScorerStats``): metric, type, scale.
SCORER_METRICS = {
    "batches": ("interest_scorer_batches_total", "counter", 1.0, "Scorer micro-batches run."),
    "users_scored": ("interest_scorer_users_total", "counter", 1.0, "Users scored."),
    "last_batch_size": ("interest_scorer_last_batch_size", "gauge", 1.0, "Last batch's users."),
    "last_batch_ms": ("interest_scorer_last_batch_seconds", "gauge", 1e-3, "Last batch's time."),
    "total_ms": ("interest_scorer_batch_seconds_total", "counter", 1e-3, "Time in batches."),
    "reloads": ("interest_scorer_reloads_total", "counter", 1.0, "Checkpoint reloads."),
}


def _scorer_stats(scorer: Any) -> dict[str, float]:
    """Numeric fields of ``scorer.stats`` (a dataclass, a mapping or a callable giving one)."""
    stats = getattr(scorer, "stats", None) if scorer is not None else None
    if callable(stats):
        try:
            stats = stats()
        except Exception:  # a stats bug must not break /metrics
            log.exception("scorer.stats() failed")
            return {}
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        stats = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    if not isinstance(stats, Mapping):
        return {}
    return {
        re.sub(r"[^a-zA-Z0-9_]", "_", str(k)): float(v)
        for k, v in stats.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _add_scorer_metrics(m: MetricsText, scorer: Any) -> None:
    """Scorer batch size and latency, when the pipeline has a scorer with stats."""
    stats = _scorer_stats(scorer)
    if not stats:
        return
    for name, value in sorted(stats.items()):
        metric, kind, scale, help_text = SCORER_METRICS.get(
            name, (f"interest_scorer_{name}", "gauge", 1.0, f"Sequence scorer: {name}.")
        )
        m.add(metric, kind, help_text, value * scale)
    batches = stats.get("batches", 0.0)
    if batches and "users_scored" in stats:
        m.add(
            "interest_scorer_mean_batch_size",
            "gauge",
            "Mean users per scorer batch.",
            stats["users_scored"] / batches,
        )
    if batches and "total_ms" in stats:
        m.add(
            "interest_scorer_mean_batch_seconds",
            "gauge",
            "Mean time per scorer batch.",
            stats["total_ms"] / 1000 / batches,
        )
    version = getattr(scorer, "version", None)
    if isinstance(version, str):
        m.add(
            "interest_scorer_info", "gauge", "Sequence checkpoint in use.", 1, {"version": version}
        )


# -- the snapshot feed ------------------------------------------------------------------------
class SnapshotFeed(Service):
    """Follows the snapshot topic (no consumer group) into a :class:`Dashboard`.

    Starts at the latest offsets less ``backfill`` messages per partition, so a restarted
    worker's dashboard is not empty; reconnects after broker errors. It shares the worker's
    event loop, so it takes at most ``max_per_s`` snapshots a second: past that it skips to
    the end of the topic (the dashboard samples the stream; the ingest path keeps its time).
    """

    def __init__(
        self, dashboard: Dashboard, backfill: int = 200, max_per_s: int = 1000, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.dashboard = dashboard
        self.backfill = backfill
        self.max_per_s = max_per_s
        self.connected = False
        self.received = 0
        self.skips = 0
        self.last_error: str | None = None

    @Service.task
    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer

        settings = self.dashboard.settings
        topic = settings.snapshots_topic
        while not self.should_stop:
            failed = False
            consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                client_id=f"{settings.app_id}-dashboard",
                **settings.security.aiokafka(),
            )
            try:
                await consumer.start()
                if topic not in await consumer.topics():  # never auto-create it by subscribing
                    raise LookupError(f"topic {topic!r} does not exist yet")
                consumer.subscribe([topic])  # no group: every partition, as metadata shows them
                for _ in range(100):
                    if consumer.assignment() or self.should_stop:
                        break
                    await self.sleep(0.1)
                tps = sorted(consumer.assignment())
                if not tps:
                    raise LookupError(f"no partitions for topic {topic!r} yet")
                begin = await consumer.beginning_offsets(tps)
                end = await consumer.end_offsets(tps)
                for tp in tps:
                    consumer.seek(tp, max(begin[tp], end[tp] - self.backfill))
                self.connected = True
                window, taken = time.monotonic(), 0
                while not self.should_stop:
                    batches = await consumer.getmany(timeout_ms=500, max_records=250)
                    for records in batches.values():
                        for msg in records:
                            self.received += 1
                            taken += 1
                            self.dashboard.ingest(msg.key, msg.value)
                    await asyncio.sleep(0)
                    if taken >= self.max_per_s:  # over budget: skip the backlog
                        await self.sleep(max(0.0, window + 1.0 - time.monotonic()))
                        await consumer.seek_to_end()
                        self.skips += 1
                    if taken >= self.max_per_s or time.monotonic() - window >= 1.0:
                        window, taken = time.monotonic(), 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                (log.debug if error == self.last_error else log.warning)(
                    "dashboard snapshot feed: %s (retrying every 2 s)", error
                )
                self.last_error, failed = error, True
            finally:
                self.connected = False
                with contextlib.suppress(Exception):  # best effort on the way out
                    await consumer.stop()
            if failed:
                await self.sleep(2.0)


# -- the dashboard's state and payloads ------------------------------------------------------
class Dashboard:
    """Everything the web views read: the pipeline, a snapshot cache, rates and listeners.

    Parameters
    ----------
    app, pipeline
        The Faust app and its :class:`stream.app.Pipeline`.
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
        app: Any,
        pipeline: Any,
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
                return
            snap = decode_snapshot(value)
            uid = str(snap["user_id"])
            dist = snap["distribution"]
        except Exception:
            self.feed_errors += 1
            return
        previous = self.cache.add(snap)
        if previous is not None:
            moved = total_variation(previous.get("distribution") or {}, dist)
        else:
            moved = 1.0 if snap.get("n_events", 0) <= 1 else 0.0  # new user / first seen
        self.changes.record(uid, moved)
        for queue in list(self.listeners.get(uid, ())):
            self._offer(queue, ("snapshot", snap))

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
        """(payload, HTTP status) of ``GET /users/{uid}/interest``."""
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
        """Population distribution merged over this worker's partitions (mass-weighted);
        else over the per-partition snapshots the feed has seen. ``(top-k, partitions, source)``.
        """
        states = [(key, s) for key, s in list(self.pipeline.population.items()) if s]
        half_life = self.pipeline.cfg.interest.population_half_life
        dist = merged_distribution((s for _, s in states), half_life)
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
        """Events-topic partition -> messages not yet read by this worker (None: unknown)."""
        app = self.app
        if not app.started or app.should_stop:
            return None
        try:
            consumer = app.consumer
            read = app.monitor.tp_read_offsets
            lag = {}
            for tp in consumer.assignment():
                if tp.topic != self.settings.events_topic:
                    continue
                high = consumer.highwater(tp)
                if high is None:
                    continue
                last = read.get(tp)
                lag[tp.partition] = max(0, high - (last + 1 if last is not None else 0))
            return lag
        except Exception:  # not started yet, rebalancing, ...
            return None

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
        _add_scorer_metrics(m, self.pipeline.scorer)
        duplicates = getattr(c, "duplicates", None)
        m.add("interest_duplicates_total", "counter", "Replayed events skipped.", duplicates)
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
        return m.render()

    async def tick(self) -> None:
        """Once a second: keep the rate windows sampled between requests."""
        self.rates()

    # -- token ------------------------------------------------------------------------------
    def authorized(self, path: str, headers: Mapping, query: Mapping, cookies: Mapping) -> bool:
        """Whether a request may see ``path`` (``/health`` always may)."""
        if self.token is None or path == "/health":
            return True
        given = []
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given.append(auth[7:].strip())
        given += [query.get("token"), cookies.get(TOKEN_COOKIE)]
        expected = self.token.encode()
        return any(g and hmac.compare_digest(g.encode(), expected) for g in given)


def _sse(event: str, data: Any) -> bytes:
    """One server-sent event (nothing for data JSON cannot carry, such as NaN)."""
    try:
        body = json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        log.warning("live channel: %s event left out (not valid JSON)", event)
        return b""
    return f"event: {event}\ndata: {body}\n\n".encode()


def _token_from(settings: Any) -> str | None:
    return getattr(settings, "web_token", None) or os.environ.get(TOKEN_ENV) or None


def _views(app: Any, dash: Dashboard) -> None:
    @app.page("/", name="interest-dashboard")
    async def dashboard_page(self, request):
        html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        return self.html(html, headers={"Cache-Control": "no-cache"})

    @app.page("/health", name="interest-health")
    async def health(self, request):
        payload, status = await dash.health()
        return self.json(payload, status=status)

    @app.page("/metrics", name="interest-metrics")
    async def metrics(self, request):
        return self.text(dash.metrics(), content_type="text/plain; version=0.0.4")

    @app.page("/users/{user_id:.+}/interest", name="interest-user")
    async def user_interest(self, request, user_id: str):
        optional = request.query.get("optional", "") in ("1", "true", "yes")
        payload, status = dash.user_interest(user_id, optional=optional)
        return self.json(payload, status=status)

    @app.page("/population", name="interest-population")
    async def population(self, request):
        try:
            k = min(200, max(1, int(request.query.get("k", "20"))))
        except ValueError:
            return self.json({"error": "k must be an integer"}, status=400)
        return self.json(dash.population(k))

    @app.page("/stream", name="interest-stream")
    async def live(self, request):
        uid = request.query.get("user") or None
        if dash.clients >= dash.max_clients or dash.closing:
            return self.json({"error": "too many live connections"}, status=503)
        response = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        queue = dash.subscribe(uid)
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n" + _sse("population", dash.population()))
            last_version = -1
            next_push = time.monotonic() + dash.push_interval_s
            next_check = time.monotonic() + 1.0
            while not dash.closing:
                wait = max(0.0, min(next_push, next_check) - time.monotonic())
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=wait)
                except TimeoutError:
                    item = ()
                if item is None:
                    break
                if item:
                    kind, snap = item
                    if snap.get("version", 0) >= last_version:
                        last_version = snap.get("version", 0)
                        await response.write(_sse(kind, snap))
                    continue
                now = time.monotonic()
                if uid is not None and now >= next_check:
                    next_check = now + 1.0
                    local = dash.local_snapshot(uid)  # live even if the feed lags behind
                    if local is not None and local["version"] > last_version:
                        last_version = local["version"]
                        await response.write(_sse("snapshot", local))
                if now >= next_push:
                    next_push = now + dash.push_interval_s
                    await response.write(_sse("population", dash.population()))
                    if uid is None:
                        await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dash.unsubscribe(uid, queue)
        return response


def _auth_middleware(dash: Dashboard) -> Callable:
    @aioweb.middleware
    async def auth(request: aioweb.Request, handler: Callable) -> aioweb.StreamResponse:
        if not dash.authorized(request.path, request.headers, request.query, request.cookies):
            return aioweb.json_response(
                {"error": "unauthorized: give the token (Authorization: Bearer ...)"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="interest-tracker"'},
            )
        response = await handler(request)
        if dash.token and request.query.get("token") and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, dash.token, httponly=True, samesite="Strict")
        return response

    return auth


def page_weight() -> dict[str, int]:
    """Bytes of each file of the dashboard page (``stream/static``)."""
    return {p.name: p.stat().st_size for p in sorted(STATIC_DIR.iterdir()) if p.is_file()}


def register_web(app: Any, pipeline: Any, **options: Any) -> Dashboard:
    """Add the dashboard, ``/health``, ``/metrics`` and the JSON endpoints to ``app``.

    Returns the :class:`Dashboard` (also set as ``pipeline.dashboard``); ``options`` go to
    its constructor (``token`` defaults to ``INTEREST_WEB_TOKEN``).
    """
    options.setdefault("token", _token_from(pipeline.settings))
    dash = Dashboard(app, pipeline, **options)
    _views(app, dash)
    web = app.web
    web.add_static("/static/", STATIC_DIR)
    web_app = getattr(web, "web_app", None)
    if web_app is not None:
        web_app.middlewares.append(_auth_middleware(dash))

        async def on_shutdown(_app: Any) -> None:
            dash.close()

        web_app.on_shutdown.append(on_shutdown)
    elif dash.token:
        raise RuntimeError("the web token needs Faust's aiohttp web driver")
    if pipeline.settings.bootstrap:
        dash.feed = SnapshotFeed(dash, max_per_s=pipeline.settings.dashboard_feed_max_per_s)
        app.service(dash.feed)
    app.timer(1.0, on_leader=False)(dash.tick)
    pipeline.dashboard = dash
    return dash
