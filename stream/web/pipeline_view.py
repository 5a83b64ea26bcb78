"""What the web layer reads of a worker's pipeline (``stream.app.Pipeline`` provides it), so
that the web modules never import the app that wires them in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sized
from typing import Protocol

from models.tracker import TrackerConfig, UserRecord
from stream.settings import Settings


class WorkerCounters(Protocol):
    """Per-process counters the dashboard, ``/health`` and ``/metrics`` show.

    The worker's :class:`~stream.counters.Counters` has each of them:

    >>> from stream.counters import Counters
    >>> counters = Counters(started=0.0)
    >>> {name: getattr(counters, name) for name in WorkerCounters.__annotations__}
    {'started': 0.0, 'events': 0, 'applied': 0, 'snapshots': 0, 'batches': 0, 'duplicates': 0,
     'dlq': Counter(), 'last_event_wall': None, 'records_written': 0, 'flushes': 0,
     'commit_seconds': Counter(), 'commit_last_seconds': {}}
    """

    started: float
    events: int
    applied: int
    snapshots: int
    batches: int
    duplicates: int
    dlq: Counter
    last_event_wall: float | None
    records_written: int
    flushes: int  # commit windows closed
    commit_seconds: Counter  # per step of closing them (stream.counters.COMMIT_STEPS)
    commit_last_seconds: Mapping[str, float]


class SizedTable(Protocol):
    """A Faust table whose local store can be counted.

    >>> from stream.app import create_app
    >>> from stream.codec import encode_record
    >>> _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> pipeline.users.data["u1"] = encode_record(pipeline.record("u1"))  # a stored user
    >>> len(pipeline.users.data), pipeline.dashboard.table_size()  # interest_table_users
    (1, 1)
    """

    data: Sized


class PipelineView(Protocol):
    """The pipeline as the dashboard sees it: settings, counters, tables and two lookups.

    >>> from stream.app import create_app
    >>> _, pipeline = create_app(Settings(bootstrap="127.0.0.1:1", app_id="doc"))
    >>> event = {"item_id": "i1", "categories": ["shoes"], "event_type": "click", "ts": 1.0}
    >>> _ = pipeline.record("u1").apply(event)  # a live record on this worker
    >>> payload, status = pipeline.dashboard.user_interest("u1")  # read through this view
    >>> status, payload["source"], payload["snapshot"]["n_events"], pipeline.user_record("u2")
    (200, 'table', 1, None)
    """

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
