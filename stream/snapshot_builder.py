"""Snapshots built off the ingest loop: in a process of their own, delivered in order.

Building and encoding a snapshot costs more than applying the event behind it (about 90 µs
against 60 µs with 100k users × 3 events; ``docs/RESULTS.md``), and the ingest loop holds the
GIL. ``SnapshotBuilder`` hands the users due a snapshot, as their encoded records (with the
sequence model's estimate, when it has one, to fuse in), to ``INTEREST_SNAPSHOT_PROCESSES``
builder processes, a batch per job, and adds the snapshots they return to the worker's
``Output`` in the order they were asked for, tombstones of forgotten users and snapshots
built in the worker in the same order, so a subscriber never sees a user's older snapshot
after a newer one or after its tombstone.
``drain`` waits for the jobs asked for so far, so a commit still covers the snapshots of the
events it commits. With ``0`` processes, while ``plan`` keeps them off (with an
``offload_lag``, below 4 cores: only a worker that is behind its input hands snapshots over,
``Settings.snapshot_builders``), when the builders are two jobs behind, or when one dies,
snapshots are built in the worker: nothing is lost, only the ingest loop's time.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from models.fused_snapshot import Scored, fused_snapshot, fused_snapshot_of
from models.fusion import FusionParams
from models.priors.collaborative import CollaborativePrior
from models.priors.population import PopulationPrior
from models.tracker import (
    TrackerConfig,
    UserRecord,
    build_snapshot,
    snapshot_of,
    snapshot_parts,
)
from stream.codec import encode_record, encode_snapshot, record_state
from stream.processes import exit_with_parent
from stream.settings import Settings

log = logging.getLogger(__name__)

# Unfinished jobs the builder processes may hold before the worker builds the next snapshots
# itself: a builder without a core to itself would only add a queue (see docs/RESULTS.md).
MAX_JOBS_IN_FLIGHT = 2
# With an ``offload_lag`` (below 4 cores), the builders take a batch's snapshots only if it has
# at least this many (and the worker is behind). Handing a user over costs encoding its record,
# which a long history pays again when a later event of the same window changes it: with 2k
# users × 150 events, ~400 users a batch due under the 1 s min-interval cost the worker about
# as much to hand over as to build (docs/RESULTS.md); with 100k users × 3, ~5,000 due a batch
# gain ~20%.
OFFLOAD_MIN_SNAPSHOTS = 1_000

# (user, its encoded record | None: a ready entry, the partition of its prior | None, the
# sequence model's estimate to fuse in | None)
Entry = tuple[str, bytes | None, int | None, Scored | None]


def snapshot_bytes(
    uid: str,
    record: UserRecord,
    cfg: TrackerConfig,
    fmt: str,
    prior: PopulationPrior | None = None,
    collaborative: CollaborativePrior | None = None,
    scored: Scored | None = None,
    fusion: Mapping[str, FusionParams] | None = None,
) -> bytes:
    """A user's published snapshot (``build_snapshot``; with ``scored``, the sequence
    estimate fused in with ``fusion``'s weights), stamped ``emitted_at``, encoded."""
    if scored is None:
        snapshot = build_snapshot(uid, record, cfg, prior=prior, collaborative=collaborative)
    else:
        snapshot = fused_snapshot(uid, record, cfg, scored, fusion, prior, collaborative)
    return _stamped(snapshot, fmt)


def _stamped(snapshot: dict, fmt: str) -> bytes:
    snapshot["emitted_at"] = time.time()
    return encode_snapshot(snapshot, fmt)


class _Context:
    """What a builder needs besides the records: settings, priors, the collaborative prior,
    the sequence model's fusion weights."""

    def __init__(self, cfg: TrackerConfig, fmt: str, collab_path: str | None):
        self.cfg, self.fmt, self.collab_path = cfg, fmt, collab_path
        self.priors: dict[int, PopulationPrior] = {}
        self.collab: CollaborativePrior | None = None
        self.collab_mtime = 0.0
        self.fusion: Mapping[str, FusionParams] | None = None

    def update(
        self,
        priors: Mapping[int, PopulationPrior],
        collab_mtime: float,
        fusion: Mapping[str, FusionParams] | None = None,
    ) -> None:
        self.priors.update(priors)
        if fusion is not None:
            self.fusion = fusion
        if self.collab_path and collab_mtime and collab_mtime != self.collab_mtime:
            self.collab = CollaborativePrior.load(self.collab_path)
            self.collab_mtime = collab_mtime

    def build(self, entries: list[Entry]) -> list[bytes | None]:
        cfg, fmt, priors, collab = self.cfg, self.fmt, self.priors, self.collab
        out: list[bytes | None] = []
        for uid, blob, partition, scored in entries:
            if blob is None:
                out.append(None)
                continue
            user, topic_user, explained = snapshot_parts(record_state(blob), cfg)
            prior = priors.get(partition) if partition is not None else None
            if scored is None:
                snapshot = snapshot_of(
                    uid, user, topic_user, explained, cfg, prior=prior, collaborative=collab
                )
            else:
                snapshot = fused_snapshot_of(
                    uid, user, topic_user, explained, cfg, scored, self.fusion, prior, collab
                )
            out.append(_stamped(snapshot, fmt))
        return out


_CHILD: _Context | None = None  # a builder process's context (set by _child_init)


def _child_init(cfg: TrackerConfig, fmt: str, collab_path: str | None, parent: int) -> None:
    global _CHILD
    exit_with_parent(parent)
    _CHILD = _Context(cfg, fmt, collab_path)


def _child_build(
    entries: list[Entry],
    priors: dict[int, PopulationPrior],
    collab_mtime: float,
    fusion: Mapping[str, FusionParams] | None,
) -> list[bytes | None]:
    _CHILD.update(priors, collab_mtime, fusion)
    return _CHILD.build(entries)


def _child_ping() -> int:
    return os.getpid()


class _Job:
    __slots__ = ("entries", "ready", "future", "delivered")

    def __init__(
        self,
        entries: list[Entry],
        ready: dict[int, bytes | None],
        future: Future | None,
        delivered: asyncio.Future,
    ):
        self.entries = entries  # in order; a None record: its bytes are in ``ready``
        self.ready = ready  # position -> a snapshot built in the worker, or None: a tombstone
        self.future = future  # the builder process's answer; None: build in the worker
        self.delivered = delivered


class SnapshotBuilder:
    """Builds the snapshots the worker publishes, in builder processes, in order.

    Snapshots go to ``output`` (``Output``: ``add``, ``partition_for``, ``send``) under
    ``topic``; ``processes`` 0 builds them in the caller, at once. With an ``offload_lag``
    a batch's snapshots go to the processes only while the worker is behind (``plan``):

    >>> b = SnapshotBuilder(TrackerConfig(), "json", "snapshots", None, 1, offload_lag=20_000)
    >>> for due, behind in [(5_000, 50_000), (5_000, 100), (10, 50_000)]:
    ...     b.plan(due, lambda: behind)
    ...     print(due, behind, b.offload)
    5000 50000 True
    5000 100 False
    10 50000 False
    """

    def __init__(
        self,
        cfg: TrackerConfig,
        fmt: str,
        topic: str,
        output: Any,
        processes: int = 1,
        collab_path: str | None = None,
        offload_lag: int = 0,
    ):
        self.cfg, self.fmt, self.topic, self.output = cfg, fmt, topic, output
        self.processes = processes
        self.offload_lag = offload_lag
        self.offload = True  # False: build here even with processes (see ``plan``)
        self._full: bool | None = None  # ``_at_limit`` as counted since the last submit
        self._local = _Context(cfg, fmt, collab_path)
        self._executors: list[ProcessPoolExecutor | None] = [None] * processes
        self._sent_priors: list[dict[int, PopulationPrior]] = [{} for _ in range(processes)]
        self._sent_collab = [0.0] * processes
        self._sent_fusion: list[Mapping[str, FusionParams] | None] = [None] * processes
        self._next = 0
        self._entries: list[Entry] = []
        self._ready: dict[int, bytes | None] = {}  # position in _entries -> bytes built here
        self._priors: dict[int, PopulationPrior] = {}
        self._collab_mtime = 0.0
        self._jobs: deque[_Job] = deque()
        self._delivering: asyncio.Task | None = None
        self._error: BaseException | None = None
        self.fallbacks = 0  # jobs built in the worker because a builder process failed
        self.built_here = 0  # snapshots built in the worker

    @classmethod
    def from_settings(cls, settings: Settings, cfg: TrackerConfig, output: Any) -> SnapshotBuilder:
        """The worker's builder: ``INTEREST_SNAPSHOT_*`` and ``INTEREST_COLLAB_PRIOR``."""
        processes, offload_lag = settings.snapshot_builders()
        fmt, topic, collab = (
            settings.snapshot_format,
            settings.snapshots_topic,
            settings.collab_prior,
        )
        return cls(cfg, fmt, topic, output, processes, collab, offload_lag)

    # -- what the worker asks for, in order --------------------------------------------------
    def plan(self, snapshots: int, behind: Callable[[], int]) -> None:
        """Whether the next ``snapshots`` (a batch's) go to the builder processes: always
        without an ``offload_lag``, else when they are ``OFFLOAD_MIN_SNAPSHOTS`` or more and
        the worker is ``behind()`` its input by ``offload_lag`` events or more."""
        self.offload = not self.offload_lag or (
            snapshots >= OFFLOAD_MIN_SNAPSHOTS and behind() >= self.offload_lag
        )

    def collaborative(self, prior: CollaborativePrior | None, mtime: float) -> None:
        """Use ``prior`` (loaded from the file with modification time ``mtime``) from now on."""
        self._local.collab, self._collab_mtime = prior, mtime

    def fusion(self, weights: Mapping[str, FusionParams]) -> None:
        """Fuse sequence estimates with ``weights`` (per base) from now on; the builder
        processes get them with their next job when they are a new object."""
        self._local.fusion = weights

    def build(
        self,
        uid: str,
        record: UserRecord,
        prior: PopulationPrior | None,
        scored: Scored | None = None,
    ) -> bytes | None:
        """Ask for ``uid``'s snapshot from ``record`` as it is now (``record.interest`` set),
        with the sequence estimate ``scored`` fused in when given (weights: ``fusion``):
        from a builder process, or built here when they are busy or there are none. Returns
        the encoded record (``encode_record``) a builder process takes, for the caller to
        reuse while the record does not change."""
        if not (self.processes and self.offload) or self._at_limit():
            local = self._local
            value = snapshot_bytes(
                uid, record, self.cfg, self.fmt, prior, local.collab, scored, local.fusion
            )
            self.ready(uid, value)
            self.built_here += 1
            return None
        if prior is not None:
            self._priors[record.partition] = prior
        blob = encode_record(record)
        partition = record.partition if prior is not None else None
        self._entries.append((uid, blob, partition, scored))
        return blob

    def ready(self, uid: str, value: bytes | None) -> None:
        """Publish ``value`` (a snapshot built by the caller; None: a tombstone) in order."""
        if not (self._entries or self._jobs):
            self._add(uid, value)
            return
        self._ready[len(self._entries)] = value
        self._entries.append((uid, None, None, None))

    def submit(self) -> None:
        """Send what was asked since the last call to a builder (the end of an ingest batch)."""
        self._full = None
        if not self._entries:
            return
        entries, ready, self._entries, self._ready = self._entries, self._ready, [], {}
        future = self._submit(entries) if len(ready) < len(entries) else None
        job = _Job(entries, ready, future, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        if self._delivering is None or self._delivering.done():
            self._delivering = asyncio.ensure_future(self._deliver())

    async def drain(self) -> None:
        """Submit, then wait until every snapshot asked for so far is in the output (not
        those asked for meanwhile); raises what delivering them raised."""
        self.submit()
        if self._jobs:
            await asyncio.shield(self._jobs[-1].delivered)
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _at_limit(self) -> bool:
        """Whether the processes have ``MAX_JOBS_IN_FLIGHT`` jobs unfinished: counted once
        until the next ``submit`` (a future's ``done`` takes a lock; once per snapshot it
        cost ~5% of the worker's main thread with 100,000 users)."""
        if self._full is None:
            self._full = self._backlog() >= MAX_JOBS_IN_FLIGHT
        return self._full

    def _backlog(self) -> int:
        """Jobs the builder processes have not finished (finished ones wait for the loop)."""
        return sum(1 for j in self._jobs if j.future is not None and not j.future.done())

    @property
    def in_flight(self) -> int:
        """Snapshots asked for and not yet in the output."""
        return sum(len(j.entries) for j in self._jobs) + len(self._entries)

    async def start(self) -> None:
        """Start the builder processes now (each imports the models: about a second)."""
        for i in range(self.processes):
            await asyncio.wrap_future(self._executor(i).submit(_child_ping))

    def close(self) -> None:
        for i in range(self.processes):
            self._discard(i)

    # -- the builder processes ---------------------------------------------------------------
    def _executor(self, i: int) -> ProcessPoolExecutor:
        executor = self._executors[i]
        if executor is None:
            executor = self._executors[i] = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_init,
                initargs=(self.cfg, self.fmt, self._local.collab_path, os.getpid()),
            )
            self._sent_priors[i], self._sent_collab[i] = {}, 0.0
            self._sent_fusion[i] = None
        return executor

    def _submit(self, entries: list[Entry]) -> Future | None:
        i = self._next
        self._next = (i + 1) % self.processes
        try:
            executor = self._executor(i)
            sent = self._sent_priors[i]
            priors = {p: prior for p, prior in self._priors.items() if sent.get(p) is not prior}
            collab = self._collab_mtime if self._collab_mtime != self._sent_collab[i] else 0.0
            fusion = self._local.fusion
            new_fusion = fusion if fusion is not self._sent_fusion[i] else None
            future = executor.submit(_child_build, entries, priors, collab, new_fusion)
            sent.update(priors)
            self._sent_collab[i] = self._collab_mtime
            self._sent_fusion[i] = fusion
            return future
        except Exception:  # a broken pool: this job is built here, a fresh pool starts next time
            log.exception("snapshot builder process %d could not take a job", i)
            self._discard(i)
            return None

    def _discard(self, i: int) -> None:
        executor, self._executors[i] = self._executors[i], None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _deliver(self) -> None:
        """Add each job's snapshots to the output in the order the jobs were submitted."""
        while self._jobs:
            job = self._jobs[0]
            try:
                values = await self._values(job)
                ready = job.ready
                for i, (entry, value) in enumerate(zip(job.entries, values, strict=True)):
                    self._add(entry[0], ready.get(i, value))
                await self.output.send()
            except Exception as exc:  # a bug or a failed producer: the next drain (a commit)
                log.exception("snapshots could not be delivered")  # raises, nothing is acked
                self._error = self._error or exc
            finally:
                self._jobs.popleft()
                job.delivered.set_result(None)

    async def _values(self, job: _Job) -> list:
        """A job's snapshots in entry order (None for its ready entries): the builder
        process's, else built here from the same records."""
        if len(job.ready) == len(job.entries):
            return [None] * len(job.entries)
        values = None
        if job.future is not None:
            try:
                values = await asyncio.wrap_future(job.future)
            except Exception:
                log.exception("snapshot builder process failed: building its job here")
                for i, executor in enumerate(self._executors):
                    if executor is not None and getattr(executor, "_broken", False):
                        self._discard(i)
        if values is None:
            self.fallbacks += 1
            self._local.priors.update(self._priors)
            values = self._local.build(job.entries)
        return values

    def _add(self, uid: str, value: bytes | None) -> None:
        key = uid.encode()
        self.output.add(self.topic, key, value, self.output.partition_for(self.topic, key))
