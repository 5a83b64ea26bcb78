"""A user's whole tracked record and the snapshot built from it, as plain data.

The stream keeps one ``record`` per user in a Faust table; ``apply_event`` is the only way it
changes, so replaying a user's events offline through ``apply_event`` reproduces the stream's
state exactly. The record holds the online estimator's state and the last ``history`` events
(the sequence model's input and the source of ``explain``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from models.online import InterestConfig, UserInterest
from models.priors.collaborative import CollaborativePrior
from models.priors.population import PopulationPrior
from models.records import RECORD_VERSION, HistoryField, RecordField, V1Key
from models.schema import EVENT_TYPES, OTHER

ONLINE_MODEL_VERSION = "decayed-interest/1"


@dataclass(frozen=True)
class TrackerConfig:
    """How much a record keeps and what a snapshot shows."""

    interest: InterestConfig = InterestConfig()
    history: int = 50
    top_k: int = 10
    explain_window: int = 20
    explain_top: int = 3


class UserRecord:
    """One user's live record: the online estimator, the last events, and where it stands in
    the input (partition and offset of the last event applied, for exactly-once replays).

    ``to_state()`` is the compact, versioned form that goes to the table and its changelog
    (a flat list laid out as :class:`~models.records.RecordField`); ``from_state`` reads it and
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
    >>> UserRecord.from_state(r.to_state(), cfg).to_state() == r.to_state()
    True
    """

    __slots__ = ("cfg", "interest", "topics", "history", "partition", "offset")

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self.interest: UserInterest | None = None
        self.topics: UserInterest | None = None  # over the items' content topics, if any
        # models.records.HistoryField tuples, oldest first, at most cfg.history
        self.history: list[tuple] = []
        self.partition: int | None = None
        self.offset = -1

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
        history = self.history
        history.append(
            (
                event["item_id"],
                tuple(event["categories"]),
                event["event_type"],
                event["ts"],
                round(moved, 6),
            )
        )
        if len(history) > self.cfg.history:
            del history[: len(history) - self.cfg.history]
        return after

    def distribution(self) -> dict[str, float]:
        """The user's own distribution (read-only), ``{_other: 1}`` before any event."""
        return self.interest.own_distribution() if self.interest else {OTHER: 1.0}

    def to_state(self) -> list:
        """The record as the flat list of :class:`~models.records.RecordField`: history as
        columns; categories as indexes into the record's category table (a list of indexes for
        a multi-category event); times as integer deltas where both ends are whole seconds;
        moved in millionths."""
        table: dict[str, int] = {}
        cats, types, times, moved = [], [], [], []
        prev = None
        for _, cs, et, ts, mv in self.history:
            idx = [table.setdefault(c, len(table)) for c in cs]
            cats.append(idx[0] if len(idx) == 1 else idx)
            types.append(_TYPE_INDEX.get(et, et))
            whole = isinstance(ts, int) or float(ts).is_integer()
            if whole and prev is not None:
                times.append(int(ts) - prev)
            else:
                times.append(float(ts) if not whole else [int(ts)])
            prev = int(ts) if whole else None
            moved.append(round(mv * 1e6))
        state: list = [None] * len(RecordField)
        state[RecordField.VERSION] = RECORD_VERSION
        state[RecordField.PARTITION] = self.partition
        state[RecordField.OFFSET] = self.offset
        if self.interest is not None:
            state[RecordField.INTEREST] = self.interest.compact_state()
        state[RecordField.ITEMS] = [h[HistoryField.ITEM_ID] for h in self.history]
        state[RecordField.CATEGORY_TABLE] = list(table)
        state[RecordField.CATEGORIES] = cats
        state[RecordField.EVENT_TYPES] = types
        state[RecordField.TIMES] = times
        state[RecordField.MOVED] = moved
        if self.topics is not None:
            state[RecordField.TOPICS] = self.topics.compact_state()
        return state

    @classmethod
    def from_state(cls, state: Sequence | Mapping, cfg: TrackerConfig | None = None) -> UserRecord:
        """A record from ``to_state()``, or from the version-1 dict that changelogs written
        before version 2 hold (:mod:`models.records` has both layouts)."""
        r = cls(cfg)
        if isinstance(state, Mapping):
            if state.get(V1Key.INTEREST):
                r.interest = UserInterest.from_state(state[V1Key.INTEREST], r.cfg.interest)
            if state.get(V1Key.TOPICS):
                r.topics = UserInterest.from_state(state[V1Key.TOPICS], r.cfg.interest)
            r.history = [
                (h[0], tuple(h[1]), h[2], h[3], h[4]) for h in state.get(V1Key.HISTORY, [])
            ]
            r.partition, r.offset = state.get(V1Key.PARTITION), state.get(V1Key.OFFSET, -1)
            return r
        if state[RecordField.VERSION] != RECORD_VERSION:
            raise ValueError(f"unknown user record version {state[RecordField.VERSION]!r}")
        _, r.partition, r.offset, interest, items, table, cats, types, times, moved, topics = state
        if topics is not None:
            r.topics = UserInterest.from_compact_state(topics, r.cfg.interest)
        if interest is not None:
            r.interest = UserInterest.from_compact_state(interest, r.cfg.interest)
        history, prev = [], None
        for item, c, et, t, mv in zip(items, cats, types, times, moved, strict=True):
            if isinstance(t, list):
                prev = t[0]
                ts = float(prev)
            elif isinstance(t, int) and prev is not None:
                prev += t
                ts = float(prev)
            else:
                ts, prev = t, None
            cs = (table[c],) if isinstance(c, int) else tuple(table[i] for i in c)
            history.append((item, cs, EVENT_TYPES[et] if isinstance(et, int) else et, ts, mv / 1e6))
        r.history = history
        return r


_TYPE_INDEX = {name: i for i, name in enumerate(EVENT_TYPES)}


def top_k(p: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` most probable categories plus ``_other`` holding the rest, summing to 1.

    >>> top_k({"a": 0.5, "b": 0.3, "c": 0.2}, 2)
    {'a': 0.5, 'b': 0.3, '_other': 0.2}
    """
    ranked = sorted([(-v, c) for c, v in p.items() if c != OTHER])[:k]
    out = {c: -v for v, c in ranked}
    out[OTHER] = max(0.0, 1.0 - sum(out.values()))
    return out


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the L1 distance between two (sparse) distributions."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def entropy(p: Mapping[str, float]) -> float:
    """Shannon entropy in nats (``_other`` counted as one outcome)."""
    return -sum(v * math.log(v) for v in p.values() if v > 0)


def apply_event(record: UserRecord, event: Mapping, cfg: TrackerConfig) -> dict[str, float]:
    """Learn one validated event into ``record`` (in place); ``record.apply`` under ``cfg``.

    Returns the user's online distribution after the event (``_other`` = unassigned mass).
    """
    record.cfg = cfg
    return record.apply(event)


def explain(record: UserRecord, cfg: TrackerConfig) -> list[dict]:
    """The recent events that moved the distribution most (total variation), largest first."""
    recent = record.history[-cfg.explain_window :]
    ranked = sorted(recent, key=itemgetter(HistoryField.MOVED), reverse=True)[: cfg.explain_top]
    return [
        {
            "item_id": h[HistoryField.ITEM_ID],
            "categories": list(h[HistoryField.CATEGORIES]),
            "event_type": h[HistoryField.EVENT_TYPE],
            "ts": h[HistoryField.TS],
            "moved": h[HistoryField.MOVED],
        }
        for h in ranked
    ]


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
    if len(prior.ranked) < min(len(prior.probs), prior_depth(cfg)):
        raise ValueError("the prior ranks too few categories for this top k")
    return user.predict_candidates(prior.probs, prior.ranked)


def build_snapshot(
    user_id: str,
    record: UserRecord,
    cfg: TrackerConfig,
    fused: Mapping[str, float] | None = None,
    sources: Mapping[str, Mapping] | None = None,
    sequence_version: str | None = None,
    prior: PopulationPrior | None = None,
    collaborative: CollaborativePrior | None = None,
) -> dict:
    """The published snapshot of a user (see the README's table).

    ``distribution`` is ``fused`` when given, else :func:`published_estimate` (smoothed toward
    ``prior`` when given); ``own`` is always the user's own distribution, prior mass as
    ``_other``, which depends on the user's events alone; ``topics``, when the user's items
    carried content topics, the user's distribution over them. With ``collaborative`` (and no
    ``fused``), the collaborative prior is mixed in with its fitted weight for the user's
    event count (as ``evaluate``'s ``collaborative`` row).
    """
    user = record.interest
    own = user.own_distribution()
    short, long_ = user.horizons()
    estimate = fused if fused is not None else published_estimate(user, prior, cfg)
    if collaborative is not None and fused is None:
        estimate = collaborative.apply(estimate, own, user.n_events)
    dist = top_k(estimate, cfg.top_k)
    src = {k: dict(v) for k, v in sources.items()} if sources else {"online": {"weight": 1.0}}
    if prior is not None:
        src.setdefault("online", {})["prior"] = {"n_events": prior.n_events, "ts": prior.ts}
    snapshot = {
        "user_id": user_id,
        "ts": user.last_ts,
        "version": user.n_events,
        "n_events": user.n_events,
        "distribution": dist,
        "own": top_k(own, cfg.top_k),
        "entropy": entropy(dist),
        "short_term": top_k(short, cfg.top_k),
        "long_term": top_k(long_, cfg.top_k),
        "sources": src,
        "drift": user.drift_detected,
        "explain": explain(record, cfg),
        "model": {"online": ONLINE_MODEL_VERSION, "sequence": sequence_version},
    }
    if record.topics is not None:
        snapshot["topics"] = top_k(record.topics.own_distribution(), cfg.top_k)
    return snapshot


def replay(events: Sequence[Mapping], cfg: TrackerConfig) -> UserRecord:
    """Offline: one user's events in order -> the record the stream would hold."""
    record = UserRecord(cfg)
    for e in events:
        record.apply(e)
    return record
