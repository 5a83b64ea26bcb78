"""The worker's per-process counters (``/metrics``, the dashboard): not stream state."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field

# The steps of closing a commit window (``Pipeline.before_commit``), as ``/metrics`` names them:
# the window's records written to the table and its changelog; the snapshot builder's snapshots
# of the window's events handed to the producer; the producer's acknowledgements of both.
COMMIT_STEPS = ("write", "snapshots", "output")


@dataclass
class Counters:
    """Per-process counters for ``/metrics`` and the dashboard (not stream state).

    >>> from stream.app import create_app
    >>> from stream.settings import Settings
    >>> _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> pipeline.counters.events += 3; pipeline.counters.dlq["late"] += 1  # as ingest does
    >>> population = pipeline.dashboard.population()  # GET /population
    >>> population["events"], population["dlq"], population["dlq_by_reason"]
    (3, 1, {'late': 1})
    """

    started: float = field(default_factory=time.time)
    events: int = 0
    applied: int = 0
    snapshots: int = 0
    dlq: Counter = field(default_factory=Counter)
    last_event_wall: float | None = None
    batches: int = 0
    duplicates: int = 0
    forgotten: int = 0
    flushes: int = 0
    records_written: int = 0
    commit_seconds: Counter = field(default_factory=Counter)  # per step, every window's
    commit_last_seconds: dict[str, float] = field(default_factory=dict)  # per step, the last's

    async def timed(self, step: str, work: Awaitable) -> None:
        """Await ``work``, a step of closing a commit window (``COMMIT_STEPS``), and count the
        seconds it took (the ingest loop runs between its slices: wall time, not CPU).

        >>> import asyncio
        >>> c = Counters()
        >>> asyncio.run(c.timed("write", asyncio.sleep(0.01)))
        >>> c.commit_last_seconds["write"] >= 0.01, c.commit_seconds["write"] >= 0.01
        (True, True)
        """
        start = time.monotonic()
        try:
            await work
        finally:
            took = time.monotonic() - start
            self.commit_seconds[step] += took
            self.commit_last_seconds[step] = took
