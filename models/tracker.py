"""A user's whole tracked record and the snapshot built from it, as plain data.

The stream keeps one ``record`` per user in a Faust table; ``apply_event`` is the only way it
changes, so replaying a user's events offline through ``apply_event`` reproduces the stream's
state exactly. The record holds the online estimator's state and the last ``history`` events
(the sequence model's input and the source of ``explain``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.history import (
    EventHistory,
    empty_history,
    explain_entry,
    history_entry,
    history_from_columns,
    most_moved,
)
from models.online import InterestConfig, UserInterest
from models.online.masses import entropy, top_k
from models.priors.collaborative import CollaborativePrior
from models.priors.population import PopulationPrior
from models.records import (
    RECORD_VERSION,
    HistoryField,
    RecordField,
    V1Key,
    read_times,
    read_v2_times,
    stored_times,
)
from models.schema import EVENT_TYPES, OTHER

ONLINE_MODEL_VERSION = "decayed-interest/1"


@dataclass(frozen=True)
class TrackerConfig:
    """How much a record keeps and what a snapshot shows.

    >>> evs = [{"item_id": f"i{t}", "categories": [c], "event_type": "view", "ts": float(t)}
    ...        for t, c in enumerate("abb")]
    >>> for cfg in (TrackerConfig(), TrackerConfig(top_k=1)):  # the top k; the rest _other
    ...     print(build_snapshot("u", replay(evs, cfg), cfg)["distribution"])
    {'b': 0.51, 'a': 0.22, '_other': 0.27}
    {'b': 0.51, '_other': 0.49}
    """

    interest: InterestConfig = InterestConfig()
    history: int = 50
    top_k: int = 10
    explain_window: int = 20
    explain_top: int = 3


class UserRecord:
    """One user's live record: the online estimator, the last events, and where it stands in
    the input (partition and offset of the last event applied, for exactly-once replays).

    The last events are an :class:`~models.history.EventHistory` (in C where it is built;
    a history the C one refuses carries on in the Python one), whose columns ``to_state()``
    (the compact, versioned form for the table and its changelog) writes as they are stored
    (see :class:`~models.records.RecordField`); ``history`` reads them back as
    :class:`~models.records.HistoryField` tuples. ``from_state`` reads ``to_state()`` and
    the dict form of version 1 (:class:`~models.records.V1Key`).

    Examples
    --------
    >>> cfg = TrackerConfig(history=2)
    >>> r = UserRecord(cfg)
    >>> for i, c in enumerate(["a", "b", "b"]):
    ...     _ = r.apply({"item_id": f"i{i}", "categories": [c], "event_type": "view",
    ...                  "ts": 10.0 * i})
    >>> r.n_events, [h[0] for h in r.history]
    (3, ['i1', 'i2'])
    >>> r.to_state()[RecordField.TIMES]
    [[10], 10]
    >>> UserRecord.from_state(r.to_state(), cfg).to_state() == r.to_state()
    True
    """

    __slots__ = ("cfg", "interest", "topics", "partition", "offset", "_history", "_explained")

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self.interest: UserInterest | None = None
        self.topics: UserInterest | None = None  # over the items' content topics, if any
        self.partition: int | None = None
        self.offset = -1
        self._history = empty_history()  # at most cfg.history events
        # explain()'s last answer, (window, top, n_events, event numbers, entries): reused
        # while the events it names are still the ones that moved the distribution most.
        self._explained: tuple | None = None

    @property
    def n_events(self) -> int:
        return self.interest.n_events if self.interest is not None else 0

    @property
    def last_ts(self) -> float | None:
        return self.interest.last_ts if self.interest is not None else None

    def apply(self, event: Mapping) -> dict[str, float]:
        """Learn one validated event; return the user's own distribution after it
        (``_other`` = unassigned mass; read-only)."""
        if self.interest is None:
            self.interest = UserInterest(self.cfg.interest)
        after, moved = self.interest.learn_and_predict(event)
        if event.get("topics"):  # the item's content topics (models.priors.content), tracked alike
            if self.topics is None:
                self.topics = UserInterest(self.cfg.interest)
            self.topics.learn_one({**event, "categories": list(event["topics"])})
        self._append(event["item_id"], event["categories"], event["event_type"], event["ts"], moved)
        return after

    def _append(self, item: str, cats: Sequence[str], et: str, ts: float, moved: float) -> None:
        code = _TYPE_INDEX.get(et, et)
        try:
            self._history.push(item, cats, code, ts, moved, self.cfg.history)
        except TypeError:  # what the C history does not take: the Python one, from its columns
            if self._history.__class__ is EventHistory:
                raise
            self._history = EventHistory.from_columns(*self._history.columns())
            self._history.push(item, cats, code, ts, moved, self.cfg.history)

    @property
    def history(self) -> list[tuple]:
        """The last events, oldest first, as :class:`~models.records.HistoryField` tuples."""
        return [self._history.entry(i) for i in range(len(self._history))]

    def explain(self, window: int, top: int) -> list[dict]:
        """Of the last ``window`` events, the ``top`` that moved the distribution most (largest
        first, earlier first among equals), as a snapshot's ``explain`` entries (shared with
        later calls while they stay the same: treat them as read-only).

        >>> r = UserRecord(TrackerConfig(history=4))
        >>> for i, c in enumerate("abaab"):
        ...     _ = r.apply({"item_id": f"i{i}", "categories": [c], "event_type": "view",
        ...                  "ts": float(i)})
        ...     s = r.to_state()
        ...     assert r.explain(3, 2) == _explain_entries(*s[4:8], read_times(s[8]), s[9], 3, 2)
        >>> [e["item_id"] for e in r.explain(3, 2)]
        ['i2', 'i4']
        """
        n = self.n_events
        cached = self._explained
        if cached is None or cached[2] != n or cached[0] != window or cached[1] != top:
            cached = self._explained = self._history.explained(cached, window, top, n)
        return list(cached[4])

    def distribution(self) -> dict[str, float]:
        """The user's own distribution (read-only), ``{_other: 1}`` before any event."""
        return self.interest.own_distribution() if self.interest else {OTHER: 1.0}

    def own_top(self, k: int) -> dict[str, float]:
        """``top_k(distribution(), k)`` (cached until the next event; read-only)."""
        return self.interest.own_top(k) if self.interest else {OTHER: 1.0}

    def to_state(self, copy: bool = True) -> list:
        """The record as the flat list of :class:`~models.records.RecordField`: history as
        columns; categories as indexes into the record's category table (a list of indexes for
        a multi-category event); times as integer deltas in seconds, or in milliseconds once
        any time had a fraction; moved in millionths. ``copy=False`` may share the live history
        columns (the Python history's): for a caller that encodes the state before the record
        changes."""
        return [
            RECORD_VERSION,
            self.partition,
            self.offset,
            self.interest.compact_state() if self.interest is not None else None,
            *self._history.columns(copy),
            self.topics.compact_state() if self.topics is not None else None,
        ]

    @classmethod
    def from_state(cls, state: Sequence | Mapping, cfg: TrackerConfig | None = None) -> UserRecord:
        """A record from ``to_state()``, or from the version-1 dict that changelogs written
        before version 2 hold; a version-2 list is read and rewritten as version 3
        (:mod:`models.records` has the layouts)."""
        if not isinstance(state, list) and isinstance(state, Mapping):
            r = cls(cfg)
            if state.get(V1Key.INTEREST):
                r.interest = UserInterest.from_state(state[V1Key.INTEREST], r.cfg.interest)
            if state.get(V1Key.TOPICS):
                r.topics = UserInterest.from_state(state[V1Key.TOPICS], r.cfg.interest)
            for item, cats, et, ts, moved in state.get(V1Key.HISTORY, []):
                r._append(item, cats, et, ts, moved)
            r.partition, r.offset = state.get(V1Key.PARTITION), state.get(V1Key.OFFSET, -1)
            return r
        version = state[RecordField.VERSION]
        if version not in (2, RECORD_VERSION):
            raise ValueError(f"unknown user record version {version!r}")
        r = cls.__new__(cls)  # every field is set below: no __init__ to overwrite
        r.cfg = cfg = cfg or TrackerConfig()
        _, r.partition, r.offset, interest, items, table, cats, types, times, moved, topics = state
        r._explained = None
        r.topics = None if topics is None else UserInterest.from_compact_state(topics, cfg.interest)
        r.interest = (
            None if interest is None else UserInterest.from_compact_state(interest, cfg.interest)
        )
        if version == 2:  # seconds, or floats where a time had a fraction: now milliseconds
            ts = read_v2_times(times)
            ms = not all(t.is_integer() for t in ts)
            times = stored_times([round(t * 1000) / 1000 for t in ts] if ms else ts, ms)
        # the category names are interned (dict keys of every estimator, shared by all
        # users); item ids are not: interning cost ~1 µs an id, 40% of decoding a 50-event
        # record.
        r._history = history_from_columns(items, table, cats, types, times, moved)
        return r


def _explain_entries(
    items: Sequence,
    table: Sequence,
    cats: Sequence,
    types: Sequence,
    ts: Sequence,
    moved: Sequence[int],
    window: int,
    top: int,
) -> list[dict]:
    """A snapshot's ``explain`` entries, read from history columns: the events of
    ``most_moved``, each as a dict (the snapshot schema's), without history tuples."""
    columns = items, table, cats, types, ts, moved
    return [explain_entry(columns, i) for i in most_moved(moved, window, top)]


def snapshot_parts(
    state: Sequence | Mapping, cfg: TrackerConfig
) -> tuple[UserInterest | None, UserInterest | None, list[dict]]:
    """What a snapshot reads from a stored record (``UserRecord.to_state()``): its estimator,
    its content-topic estimator and its ``explain`` entries, without rebuilding the record's
    history.

    >>> cfg = TrackerConfig(explain_top=1)
    >>> r = replay([{"item_id": "i", "categories": ["a"], "event_type": "view", "ts": 1.5}], cfg)
    >>> user, topics, entries = snapshot_parts(r.to_state(), cfg)
    >>> user.state() == r.interest.state(), topics, entries == explain(r, cfg)
    (True, None, True)
    """
    if isinstance(state, Mapping) or state[RecordField.VERSION] != RECORD_VERSION:
        r = UserRecord.from_state(state, cfg)
        return r.interest, r.topics, explain(r, cfg)
    _, _, _, interest, items, table, cats, types, times, moved, topics = state
    window, top = cfg.explain_window, cfg.explain_top
    ts = read_times(times) if moved and top > 0 else []
    return (
        UserInterest.from_compact_state(interest, cfg.interest) if interest is not None else None,
        UserInterest.from_compact_state(topics, cfg.interest) if topics is not None else None,
        _explain_entries(items, table, cats, types, ts, moved, window, top),
    )


def stored_history(state: Sequence | Mapping, cfg: TrackerConfig | None = None) -> list[tuple]:
    """The history of a stored record (``UserRecord.to_state()``, any version) as
    ``(item_id, categories, event_type, ts)`` tuples, oldest first, without rebuilding the
    record's estimators (what the sequence model reads).

    >>> cfg = TrackerConfig()
    >>> evs = [{"item_id": "i", "categories": ["a", "b"], "event_type": "cart", "ts": 1.25},
    ...        {"item_id": "j", "categories": ["b"], "event_type": "view", "ts": 3.0}]
    >>> r = replay(evs, cfg)
    >>> stored_history(r.to_state())
    [('i', ('a', 'b'), 'cart', 1.25), ('j', ('b',), 'view', 3.0)]
    >>> stored_history(r.to_state()) == [h[: HistoryField.MOVED] for h in r.history]
    True
    """
    if isinstance(state, Mapping) or state[RecordField.VERSION] != RECORD_VERSION:
        return [h[: HistoryField.MOVED] for h in UserRecord.from_state(state, cfg).history]
    items, table, cats, types, times, moved = state[RecordField.ITEMS : RecordField.TOPICS]
    ts = read_times(times)
    return [
        history_entry(items, table, cats, types, ts, moved, i)[: HistoryField.MOVED]
        for i in range(len(items))
    ]


_TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}


def apply_event(record: UserRecord, event: Mapping, cfg: TrackerConfig) -> dict[str, float]:
    """Learn one validated event into ``record`` (in place); ``record.apply`` under ``cfg``.

    Returns the user's online distribution after the event (``_other`` = unassigned mass).
    """
    record.cfg = cfg
    return record.apply(event)


def explain(record: UserRecord, cfg: TrackerConfig) -> list[dict]:
    """The recent events that moved the distribution most (total variation), largest first."""
    return record.explain(cfg.explain_window, cfg.explain_top)


def prior_depth(cfg: TrackerConfig) -> int:
    """How many of the prior's categories a snapshot needs ranked (see published_estimate)."""
    return cfg.top_k + 2 * cfg.interest.max_categories


def published_estimate(
    user: UserInterest, prior: PopulationPrior | None, cfg: TrackerConfig
) -> dict[str, float]:
    """The estimate a snapshot publishes, before its cut to the top ``k``.

    With a prior: the user's masses smoothed toward it (what ``evaluate`` scores for the
    ``online`` row), on the tracked categories and the prior's most probable ones, the rest as
    ``_other``. Without one: the user's own distribution (smoothing mass as ``_other``).
    The prior must rank :func:`prior_depth` categories (or all it has): the top k are among
    them and the tracked ones.
    """
    if prior is None:
        return user.predict_proba_one({})
    _check_depth(prior, cfg)
    return user.predict_candidates(prior.probs, prior.ranked)


def _check_depth(prior: PopulationPrior, cfg: TrackerConfig) -> None:
    if len(prior.ranked) < min(len(prior.probs), prior_depth(cfg)):
        raise ValueError("the prior ranks too few categories for this top k")


def build_snapshot(user_id: str, record: UserRecord, cfg: TrackerConfig, **options: Any) -> dict:
    """The published snapshot of a user (see the README's table): :func:`snapshot_of` the
    record's estimators and its most moving recent events; ``options`` are its keywords
    (``fused``, ``sources``, ``sequence_version``, ``prior``, ``collaborative``)."""
    return snapshot_of(
        user_id, record.interest, record.topics, explain(record, cfg), cfg, **options
    )


def snapshot_of(
    user_id: str,
    user: UserInterest,
    topics: UserInterest | None,
    explain_entries: list[dict],
    cfg: TrackerConfig,
    *,
    fused: Mapping[str, float] | None = None,
    sources: Mapping[str, Mapping] | None = None,
    sequence_version: str | None = None,
    prior: PopulationPrior | None = None,
    collaborative: CollaborativePrior | None = None,
) -> dict:
    """A snapshot from a user's estimator ``user``, content-topic estimator ``topics`` and
    ``explain_entries`` (what :func:`build_snapshot` reads from a record).

    ``distribution`` is ``fused`` when given, else :func:`published_estimate` (smoothed toward
    ``prior`` when given); ``own`` is always the user's own distribution, prior mass as
    ``_other``, which depends on the user's events alone; ``topics``, when the user's items
    carried content topics, the user's distribution over them. With ``collaborative`` (and no
    ``fused``), the collaborative prior is mixed in with its fitted weight for the user's
    event count (as ``evaluate``'s ``collaborative`` row).
    """
    top = cfg.top_k
    if fused is None and collaborative is None and prior is not None:
        # the top k only: the prior's k most probable untracked suffice
        _check_depth(prior, cfg)
        own_top, short, long_, dist, h = user.snapshot_tops(top, prior.probs, prior.ranked)
    else:  # without a prior, dist is a copy: "own" and "distribution" are edited apart
        own_top, short, long_, dist, h = user.snapshot_tops(top)
    if fused is not None:
        dist = top_k(fused, top)
        h = entropy(dist)
    elif collaborative is not None:
        estimate = published_estimate(user, prior, cfg)
        dist = top_k(collaborative.apply(estimate, user.own_distribution(), user.n_events), top)
        h = entropy(dist)
    src = {k: dict(v) for k, v in sources.items()} if sources else {"online": {"weight": 1.0}}
    if prior is not None:
        src.setdefault("online", {})["prior"] = {"n_events": prior.n_events, "ts": prior.ts}
    if collaborative is not None and fused is None:
        src["online"]["collaborative"] = True
    snapshot = {
        "user_id": user_id,
        "ts": user.last_ts,
        "version": user.n_events,
        "n_events": user.n_events,
        "distribution": dist,
        "own": own_top,
        "entropy": h,
        "short_term": short,
        "long_term": long_,
        "sources": src,
        "drift": user.drift_detected,
        "explain": explain_entries,
        "model": {"online": ONLINE_MODEL_VERSION, "sequence": sequence_version},
    }
    if topics is not None:
        snapshot["topics"] = top_k(topics.own_distribution(), cfg.top_k)
    return snapshot


def replay(events: Sequence[Mapping], cfg: TrackerConfig) -> UserRecord:
    """Offline: one user's events in order -> the record the stream would hold."""
    record = UserRecord(cfg)
    for e in events:
        record.apply(e)
    return record
