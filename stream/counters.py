"""The worker's per-process counters (``/metrics``, the dashboard): not stream state."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


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
