"""The sequence model inside the stream: micro-batched scoring off the event loop, and fusion.

Users touched since their last scoring are marked dirty by the ingest agent. Every
``scorer_ms`` (or as soon as ``scorer_batch`` users are waiting) a batch of their histories
is scored in a one-thread executor, so the event loop keeps ingesting while the model runs;
each scored user then gets a fused snapshot through the pipeline's trailing emit. A newer
checkpoint file is picked up without a restart and its version appears in the snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from models.fusion import FusionParams
from models.online import UserInterest
from models.scorer import SequenceScorer
from models.tracker import build_snapshot, history_events

log = logging.getLogger(__name__)
RELOAD_EVERY_S = 2.0


@dataclass
class ScorerStats:
    """Per-process scorer counters for ``/metrics`` (not stream state)."""

    batches: int = 0
    users_scored: int = 0
    last_batch_size: int = 0
    last_batch_ms: float = 0.0
    total_ms: float = 0.0
    reloads: int = 0
    versions: list[str] = field(default_factory=list)


class StreamScorer:
    """Scores dirty users in micro-batches beside a ``Pipeline`` and fuses the estimates."""

    def __init__(self, pipeline, scorer: SequenceScorer):
        self.pipeline = pipeline
        self.scorer = scorer
        self.settings = pipeline.settings
        self.dirty: dict[str, None] = {}  # insertion-ordered set of users to score
        self.wakeup = asyncio.Event()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="sequence-scorer")
        self.stats = ScorerStats(versions=[scorer.version])
        self._fusion_version = None
        self._fusion = FusionParams()
        self._refresh_fusion()

    @classmethod
    def from_settings(cls, pipeline) -> StreamScorer:
        s = pipeline.settings
        # Leave a core to the event loop: the model must not starve ingestion.
        threads = max(1, (os.cpu_count() or 2) - 1)
        scorer = SequenceScorer.from_checkpoint(
            s.checkpoint,
            quantize=s.scorer_int8,
            top_k=2 * s.top_k,
            batch_size=s.scorer_batch,
            num_threads=threads,
        )
        return cls(pipeline, scorer)

    @property
    def version(self) -> str:
        return self.scorer.version

    def _refresh_fusion(self) -> None:
        if self._fusion_version != self.scorer.version:
            fitted = self.scorer.extra.get("fusion")
            self._fusion = FusionParams.from_dict(fitted) if fitted else FusionParams()
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
        batch = list(self.dirty)[: self.settings.scorer_batch]
        histories, users = [], []
        for uid in batch:
            del self.dirty[uid]
            record = self.pipeline.users.get(uid)
            if record and record.get("h"):
                users.append(uid)
                histories.append(history_events(record))
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
        for uid, dist, top in zip(users, dists, items, strict=True):
            self.pipeline.sequence[uid] = (dist, now_wall, version, top)
            self.pipeline.pending[uid] = now  # publish the fused snapshot at the next flush

    def _score(self, histories: list) -> tuple[list[dict], list[list[tuple[str, float]]]]:
        """Category distributions and, with ``INTEREST_TOP_ITEMS``, the top predicted items."""
        dists = self.scorer.score(histories)
        n = self.settings.top_items
        items = self.scorer.top_items(histories, n) if n > 0 else [[] for _ in histories]
        return dists, items

    def fused_snapshot(self, uid: str, record: Mapping, seq: tuple) -> dict:
        """The user's snapshot with the sequence estimate fused in (weights in ``sources``)."""
        self._refresh_fusion()
        dist, scored_at, version, *rest = seq
        cfg = self.pipeline.cfg
        user = UserInterest.from_state(record["u"], cfg.interest)
        online = user.predict_proba_one({})
        age = max(0.0, time.time() - scored_at)
        fused, weights = self._fusion.combine(online, dist, user.n_events, age)
        sources = {
            "online": {"weight": weights["online"]},
            "sequence": {"weight": weights["sequence"], "version": version, "age_s": age},
            "fused": {"method": self._fusion.method, "fitted": self._fusion.n_events > 0},
        }
        snapshot = build_snapshot(
            uid, record, cfg, fused=fused, sources=sources, sequence_version=version
        )
        if rest and rest[0]:  # INTEREST_TOP_ITEMS: the item head's most probable next items
            snapshot["top_items"] = [{"item_id": i, "p": p} for i, p in rest[0]]
        return snapshot
