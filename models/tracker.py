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

from models.online import InterestConfig, UserInterest
from models.schema import OTHER

ONLINE_MODEL_VERSION = "decayed-interest/1"


@dataclass(frozen=True)
class TrackerConfig:
    """How much a record keeps and what a snapshot shows."""

    interest: InterestConfig = InterestConfig()
    history: int = 50
    top_k: int = 10
    explain_window: int = 20
    explain_top: int = 3


def new_record() -> dict:
    return {"u": None, "h": []}


def top_k(p: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` most probable categories plus ``_other`` holding the rest, summing to 1.

    >>> top_k({"a": 0.5, "b": 0.3, "c": 0.2}, 2)
    {'a': 0.5, 'b': 0.3, '_other': 0.2}
    """
    ranked = sorted((c for c in p if c != OTHER), key=lambda c: (-p[c], c))[:k]
    out = {c: p[c] for c in ranked}
    out[OTHER] = max(0.0, 1.0 - sum(out.values()))
    return out


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the L1 distance between two (sparse) distributions."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def entropy(p: Mapping[str, float]) -> float:
    """Shannon entropy in nats (``_other`` counted as one outcome)."""
    return -sum(v * math.log(v) for v in p.values() if v > 0)


def apply_event(record: dict, event: Mapping, cfg: TrackerConfig) -> dict[str, float]:
    """Learn one validated event into ``record`` (in place).

    Returns the user's online distribution after the event (``_other`` = unassigned mass).
    """
    user = (
        UserInterest.from_state(record["u"], cfg.interest)
        if record.get("u")
        else UserInterest(cfg.interest)
    )
    after, moved = user.learn_and_predict(event)
    record["u"] = user.state()
    history = record.setdefault("h", [])
    history.append(
        [
            event["item_id"],
            list(event["categories"]),
            event["event_type"],
            event["ts"],
            round(moved, 6),
        ]
    )
    if len(history) > cfg.history:
        del history[: len(history) - cfg.history]
    return after


def history_events(record: Mapping) -> list[dict]:
    """The record's last events as event dicts (oldest first), for the sequence model."""
    return [
        {"item_id": h[0], "categories": h[1], "event_type": h[2], "ts": h[3]}
        for h in record.get("h", [])
    ]


def explain(record: Mapping, cfg: TrackerConfig) -> list[dict]:
    """The recent events that moved the distribution most (total variation), largest first."""
    recent = record.get("h", [])[-cfg.explain_window :]
    ranked = sorted(recent, key=lambda h: -h[4])[: cfg.explain_top]
    return [
        {"item_id": h[0], "categories": h[1], "event_type": h[2], "ts": h[3], "moved": h[4]}
        for h in ranked
    ]


def build_snapshot(
    user_id: str,
    record: Mapping,
    cfg: TrackerConfig,
    fused: Mapping[str, float] | None = None,
    sources: Mapping[str, Mapping] | None = None,
    sequence_version: str | None = None,
) -> dict:
    """The published snapshot of a user (see the README's table).

    Without ``fused``, the distribution is the online estimate alone.
    """
    user = UserInterest.from_state(record["u"], cfg.interest)
    online = user.predict_proba_one({})
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


def replay(events: Sequence[Mapping], cfg: TrackerConfig) -> dict:
    """Offline: one user's events in order -> the record the stream would hold."""
    record = new_record()
    for e in events:
        apply_event(record, e, cfg)
    return record
