"""What the web layer reads of a worker's pipeline (``stream.app.Pipeline`` provides it), so
that the web modules never import the app that wires them in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sized
from typing import Protocol

from models.tracker import TrackerConfig, UserRecord
from stream.settings import Settings


class WorkerCounters(Protocol):
    """Per-process counters the dashboard, ``/health`` and ``/metrics`` show."""

    started: float
    events: int
    applied: int
    snapshots: int
    batches: int
    duplicates: int
    dlq: Counter
    last_event_wall: float | None


class SizedTable(Protocol):
    """A Faust table whose local store can be counted."""

    data: Sized


class PipelineView(Protocol):
    """The pipeline as the dashboard sees it: settings, counters, tables and two lookups."""

    settings: Settings
    cfg: TrackerConfig
    counters: WorkerCounters
    users: SizedTable
    population: Mapping[str, dict]
    pending: Sized
    scorer: object | None
    dashboard: object | None

    def user_record(self, uid: str) -> UserRecord | None:
        """The user's live record on this worker (None when another worker holds the user)."""
        ...

    def snapshot(self, uid: str, record: UserRecord) -> dict:
        """The user's current snapshot built from ``record``."""
        ...
