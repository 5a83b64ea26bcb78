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


RECORD_VERSION = 2


class UserRecord:
    """One user's live record: the online estimator, the last events, and where it stands in
    the input (partition and offset of the last event applied, for exactly-once replays).

    ``to_state()`` is the compact, versioned form that goes to the table and its changelog
    (a flat list); ``from_state`` reads it and the dict form of version 1.

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

    __slots__ = ("cfg", "interest", "history", "partition", "offset")

    def __init__(self, cfg: TrackerConfig | None = None):
        self.cfg = cfg or TrackerConfig()
        self.interest: UserInterest | None = None
        # (item_id, categories, event_type, ts, moved), oldest first, at most cfg.history
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
        """``[version, partition, offset, interest, items, categories, types, times, moved]``:
        history as columns; categories as indexes into the record's category table (a list
        of indexes for a multi-category event); times as integer deltas where both ends are
        whole seconds; moved in millionths."""
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
        return [
            RECORD_VERSION,
            self.partition,
            self.offset,
            self.interest.compact_state() if self.interest is not None else None,
            [h[0] for h in self.history],
            list(table),
            cats,
            types,
            times,
            moved,
        ]

    @classmethod
    def from_state(cls, state: Sequence | Mapping, cfg: TrackerConfig | None = None) -> UserRecord:
        """A record from ``to_state()``, or from the version-1 dict (``u``, ``h``, ``p``,
        ``o``) that changelogs written before version 2 hold."""
        r = cls(cfg)
        if isinstance(state, Mapping):
            if state.get("u"):
                r.interest = UserInterest.from_state(state["u"], r.cfg.interest)
            r.history = [(h[0], tuple(h[1]), h[2], h[3], h[4]) for h in state.get("h", [])]
            r.partition, r.offset = state.get("p"), state.get("o", -1)
            return r
        version, r.partition, r.offset, interest, items, table, cats, types, times, moved = state
        if version != RECORD_VERSION:
            raise ValueError(f"unknown user record version {version!r}")
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


def new_record(cfg: TrackerConfig | None = None) -> UserRecord:
    return UserRecord(cfg)


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


def history_events(record: UserRecord) -> list[dict]:
    """The record's last events as event dicts (oldest first), for the sequence model."""
    return [
        {"item_id": h[0], "categories": list(h[1]), "event_type": h[2], "ts": h[3]}
        for h in record.history
    ]


def explain(record: UserRecord, cfg: TrackerConfig) -> list[dict]:
    """The recent events that moved the distribution most (total variation), largest first."""
    recent = record.history[-cfg.explain_window :]
    ranked = sorted(recent, key=itemgetter(4), reverse=True)[: cfg.explain_top]
    return [
        {"item_id": h[0], "categories": list(h[1]), "event_type": h[2], "ts": h[3], "moved": h[4]}
        for h in ranked
    ]


def build_snapshot(
    user_id: str,
    record: UserRecord,
    cfg: TrackerConfig,
    fused: Mapping[str, float] | None = None,
    sources: Mapping[str, Mapping] | None = None,
    sequence_version: str | None = None,
) -> dict:
    """The published snapshot of a user (see the README's table).

    Without ``fused``, the distribution is the online estimate alone.
    """
    user = record.interest
    online = user.own_distribution()
    short, long_ = user.horizons()
    dist = top_k(fused if fused is not None else online, cfg.top_k)
    return {
        "user_id": user_id,
        "ts": user.last_ts,
        "version": user.n_events,
        "n_events": user.n_events,
        "distribution": dist,
        "entropy": entropy(dist),
        "short_term": top_k(short, cfg.top_k),
        "long_term": top_k(long_, cfg.top_k),
        "sources": dict(sources) if sources else {"online": {"weight": 1.0}},
        "drift": user.drift_detected,
        "explain": explain(record, cfg),
        "model": {"online": ONLINE_MODEL_VERSION, "sequence": sequence_version},
    }


def replay(events: Sequence[Mapping], cfg: TrackerConfig) -> UserRecord:
    """Offline: one user's events in order -> the record the stream would hold."""
    record = UserRecord(cfg)
    for e in events:
        record.apply(e)
    return record
