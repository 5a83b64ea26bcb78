"""The sequence model inside the stream: micro-batched scoring off the event loop, and fusion.

Users touched since their last scoring are marked dirty by the ingest path. Every
``scorer_ms`` (or as soon as ``scorer_batch`` users are waiting) a batch of their histories
is scored in a separate process (``INTEREST_SCORER_PROCESS=1``, the default; a thread with
``0``), so the model neither holds the worker's GIL nor its event loop, and at a lower CPU
priority (``INTEREST_SCORER_NICE``, by default the idle scheduling class), so on a busy
machine it scores less often rather than slowing ingestion; each scored user's fused snapshot
goes out with the normal emission policy (at most one per min-interval). A newer checkpoint
file is picked up without a restart and its version appears in the snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from models.fused_snapshot import Scored, fused_snapshot
from models.fusion import BASES, FusionParams, stored_fit
from models.priors.collaborative import CollaborativePrior
from models.priors.population import PopulationPrior
from models.records import HistoryField
from models.sequence.scorer import SequenceScorer
from models.tracker import UserRecord, stored_history
from stream.codec import record_state
from stream.processes import exit_with_parent, lower_priority

log = logging.getLogger(__name__)
RELOAD_EVERY_S = 2.0
# Users whose latest sequence estimate is kept, the most recently scored: without a bound the
# estimates of every user ever scored stayed (~1,000 users a second on the bench machine).
SEQUENCE_USERS = 65_536


@dataclass
class ScorerStats:
    """Per-process scorer counters for ``/metrics`` (not stream state).

    >>> from types import SimpleNamespace
    >>> from stream.web.metrics import MetricsText, add_scorer_metrics
    >>> stats = ScorerStats(batches=2, users_scored=9, total_ms=30.0)
    >>> metrics = MetricsText()
    >>> add_scorer_metrics(metrics, SimpleNamespace(stats=stats))  # a StreamScorer's stats
    >>> [m for m in metrics.render().splitlines() if m.startswith("interest_scorer_mean")]
    ['interest_scorer_mean_batch_size 4.5', 'interest_scorer_mean_batch_seconds 0.015']
    """

    batches: int = 0
    users_scored: int = 0
    last_batch_size: int = 0
    last_batch_ms: float = 0.0
    total_ms: float = 0.0
    reloads: int = 0
    versions: list[str] = field(default_factory=list)


# The scorer process's model (one per process: set by ``_child_init``, never in the worker).
_CHILD: SequenceScorer | None = None


def _child_init(options: dict, parent: int, nice: int | str = 0) -> None:
    global _CHILD
    exit_with_parent(parent)
    lower_priority(nice)  # below the worker: ingestion first, the model on what it leaves
    _CHILD = SequenceScorer.from_checkpoint(**options)


def _child_info() -> tuple[str, dict]:
    return _CHILD.version, dict(_CHILD.extra)


def _child_reload() -> tuple[bool, str, dict]:
    changed = _CHILD.reload_if_changed()
    return changed, _CHILD.version, dict(_CHILD.extra)


def _as_events(histories: list[list[tuple] | bytes]) -> list[list[dict]]:
    return [
        [
            {"item_id": i, "categories": list(c), "event_type": t, "ts": ts}
            for i, c, t, ts in (stored_history(record_state(h)) if h.__class__ is bytes else h)
        ]
        for h in histories
    ]


def score_histories(
    scorer: SequenceScorer, histories: list[list[tuple] | bytes], n_items: int
) -> tuple[list[dict[str, float]], list[list[tuple[str, float]]]]:
    """Category distributions and the ``n_items`` most probable next items per history:
    ``(item_id, categories, event_type, ts)`` tuples, oldest first, or a stored record's
    bytes (read here: in the scorer's process when it has one, not in the worker's)."""
    events = _as_events(histories)
    dists = scorer.score(events)
    items = scorer.top_items(events, n_items) if n_items > 0 else [[] for _ in events]
    return dists, items


def _child_score(histories: list[list[tuple]], n_items: int) -> tuple[str, list, list]:
    dists, items = score_histories(_CHILD, histories, n_items)
    return _CHILD.version, dists, items


class ScorerProcess:
    """A ``SequenceScorer`` in its own process, with the methods the stream calls.

    Its ``score_histories`` answers what the module's :func:`score_histories` answers for
    the scorer that ``options`` load (``tests/unit/test_sequence.py`` compares the two).
    Starting the process takes seconds (a fresh interpreter imports torch), so this runs
    the call the process makes, here:

    >>> from models.sequence import SequenceConfig, SequenceEncoder, SequenceModel
    >>> config = SequenceConfig.tiny(n_item_buckets=64, max_len=8).with_vocab(4)
    >>> here = SequenceScorer(SequenceModel(config), SequenceEncoder(["a", "b"], 64, 8),
    ...                       device="cpu", top_k=2, num_threads=1)
    >>> dists, items = score_histories(here, [[("i1", ["a"], "view", 1.0)]], n_items=0)
    >>> sorted(dists[0]), round(sum(dists[0].values()), 6), items
    (['_other', 'a', 'b'], 1.0, [[]])
    """

    def __init__(self, options: dict, nice: int | str = 0):
        ctx = multiprocessing.get_context("spawn")
        self.executor: Executor = ProcessPoolExecutor(
            1, mp_context=ctx, initializer=_child_init, initargs=(options, os.getpid(), nice)
        )
        self.version, self.extra = self.executor.submit(_child_info).result()

    def reload_if_changed(self) -> bool:
        changed, self.version, self.extra = self.executor.submit(_child_reload).result()
        return changed

    def score_histories(self, histories: list[list[tuple]], n_items: int) -> tuple[list, list]:
        version, dists, items = self.executor.submit(_child_score, histories, n_items).result()
        self.version = version
        return dists, items


class StreamScorer:
    """Scores dirty users in micro-batches beside a ``Pipeline`` and fuses the estimates.

    Users touched by the ingest path are marked; a full micro-batch wakes :meth:`run`
    before its period is up:

    >>> from models.sequence import SequenceConfig, SequenceEncoder, SequenceModel
    >>> from stream.app import create_app
    >>> from stream.settings import Settings
    >>> _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc", scorer_batch=2))
    >>> config = SequenceConfig.tiny(n_item_buckets=64, max_len=8).with_vocab(4)
    >>> sequence = SequenceScorer(SequenceModel(config), SequenceEncoder(["a", "b"], 64, 8),
    ...                           device="cpu", num_threads=1)
    >>> scorer = StreamScorer(pipeline, sequence)
    >>> scorer.mark("u1"); scorer.wakeup.is_set()
    False
    >>> scorer.mark("u2"); scorer.wakeup.is_set(), list(scorer.dirty)
    (True, ['u1', 'u2'])
    """

    def __init__(self, pipeline, scorer: SequenceScorer | ScorerProcess):
        self.pipeline = pipeline
        self.scorer = scorer
        self.settings = pipeline.settings
        self.dirty: dict[str, None] = {}  # insertion-ordered set of users to score
        self.wakeup = asyncio.Event()
        # Calls into the scorer wait here; with a process, the work happens there.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="sequence-scorer")
        self.stats = ScorerStats(versions=[scorer.version])
        self._fusion_version = None
        self._fusion: dict[str, FusionParams] = {}
        self._refresh_fusion()

    @classmethod
    def from_settings(cls, pipeline) -> StreamScorer:
        s = pipeline.settings
        # Leave a core to the event loop: the model must not starve ingestion.
        options: dict[str, Any] = dict(
            path=s.checkpoint,
            device=None if s.scorer_device == "auto" else s.scorer_device,
            quantize=s.scorer_int8,
            top_k=2 * s.top_k,
            batch_size=s.scorer_batch,
            num_threads=max(1, (os.cpu_count() or 2) - 1),
        )
        if s.scorer_process:
            return cls(pipeline, ScorerProcess(options, s.scorer_nice))
        return cls(pipeline, SequenceScorer.from_checkpoint(**options))

    @property
    def version(self) -> str:
        return self.scorer.version

    def _refresh_fusion(self) -> None:
        if self._fusion_version != self.scorer.version:
            fits = {base: stored_fit(self.scorer.extra, base) for base in BASES}
            self._fusion = {
                base: FusionParams.from_dict(fit) if fit else FusionParams()  # not fitted
                for base, fit in fits.items()
            }
            self._fusion_version = self.scorer.version

    def mark(self, uid: str) -> None:
        self.dirty[uid] = None
        if len(self.dirty) >= self.settings.scorer_batch:
            self.wakeup.set()

    async def run(self) -> None:
        """The scoring loop (a Faust app task)."""
        loop = asyncio.get_running_loop()
        last_reload = time.monotonic()
        period = self.settings.scorer_ms / 1000.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=period)
            self.wakeup.clear()
            if time.monotonic() - last_reload >= RELOAD_EVERY_S:
                last_reload = time.monotonic()
                if await loop.run_in_executor(self.executor, self.scorer.reload_if_changed):
                    self.stats.reloads += 1
                    self.stats.versions.append(self.scorer.version)
                    log.info("sequence model reloaded: version %s", self.scorer.version)
            if self.dirty:
                await self.score_pending(loop)

    async def score_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        # The oldest marks first; never a copy of all of them (up to every user in a window:
        # a list of them per micro-batch took ~4% of the worker's main thread, flat out).
        batch = list(islice(self.dirty, self.settings.scorer_batch))
        histories: list[list[tuple] | bytes] = []
        users = []
        in_process = isinstance(self.scorer, ScorerProcess)
        for uid in batch:
            del self.dirty[uid]
            history = self.history(uid, as_bytes=in_process) if self.pipeline.cfg.history else None
            if history:
                users.append(uid)
                histories.append(history)
        if not users:
            return
        started = time.perf_counter()
        dists, items = await loop.run_in_executor(self.executor, self._score, histories)
        elapsed_ms = (time.perf_counter() - started) * 1000
        st = self.stats
        st.batches += 1
        st.users_scored += len(users)
        st.last_batch_size, st.last_batch_ms = len(users), elapsed_ms
        st.total_ms += elapsed_ms
        now_wall, now = time.time(), time.monotonic()
        version = self.scorer.version
        recent, interval = self.pipeline.recent, self.settings.min_interval_s
        sequence = self.pipeline.sequence
        for uid, dist, top in zip(users, dists, items, strict=True):
            sequence.pop(uid, None)  # re-inserted: the dict's order is the order of scoring
            sequence[uid] = (dist, now_wall, version, top)
            # the fused snapshot goes out under the emission policy: at most one per interval
            last = recent.get(uid)
            self.pipeline.pending.owe(uid, now if last is None else last[0] + interval)
        excess = len(sequence) - SEQUENCE_USERS
        if excess > 0:  # the least recently scored go first, read in one pass from the front
            for uid in list(islice(sequence, excess)):
                del sequence[uid]

    def history(self, uid: str, as_bytes: bool) -> list[tuple] | bytes | None:
        """What the model reads of a user with events: its record's bytes for a scorer
        process, which reads them there (a 50-event history's tuples cost the worker ~7× as
        much to build and pickle: docs/RESULTS.md), else the history's tuples."""
        state = self.pipeline.user_state(uid)
        if isinstance(state, UserRecord):
            if state.interest is None:
                return None
            if as_bytes:
                return self.pipeline.user_bytes(uid)
            return [h[: HistoryField.MOVED] for h in state.history]
        return bytes(state) if state is not None else None

    def _score(self, histories: list) -> tuple[list[dict], list[list[tuple[str, float]]]]:
        """Category distributions and, with ``INTEREST_TOP_ITEMS``, the top predicted items."""
        if isinstance(self.scorer, ScorerProcess):
            return self.scorer.score_histories(histories, self.settings.top_items)
        return score_histories(self.scorer, histories, self.settings.top_items)

    @property
    def fusion(self) -> dict[str, FusionParams]:
        """The fusion weights of the current checkpoint, per base (``"online"``,
        ``"collaborative"``): one object until the checkpoint changes."""
        self._refresh_fusion()
        return self._fusion

    def fused_snapshot(
        self,
        uid: str,
        record: UserRecord,
        seq: Scored,
        prior: PopulationPrior | None = None,
        collaborative: CollaborativePrior | None = None,
    ) -> dict:
        """The user's snapshot with the sequence estimate ``seq`` fused in with the current
        checkpoint's weights (``models.fused_snapshot.fused_snapshot``)."""
        cfg = self.pipeline.cfg
        return fused_snapshot(uid, record, cfg, seq, self.fusion, prior, collaborative)
