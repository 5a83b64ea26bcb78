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

from models.collaborative import CollaborativePrior
from models.online import InterestConfig, UserInterest
from models.prior import PopulationPrior
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
    if event.get("topics"):  # the item's content topics (models.content), tracked alike
        topics = (
            UserInterest.from_state(record["t"], cfg.interest)
            if record.get("t")
            else UserInterest(cfg.interest)
        )
        topics.learn_one({**event, "categories": list(event["topics"])})
        record["t"] = topics.state()
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
    record: Mapping,
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
    user = UserInterest.from_state(record["u"], cfg.interest)
    own = user.predict_proba_one({})
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
    if record.get("t"):
        topics = UserInterest.from_state(record["t"], cfg.interest).predict_proba_one({})
        snapshot["topics"] = top_k(topics, cfg.top_k)
    return snapshot


def replay(events: Sequence[Mapping], cfg: TrackerConfig) -> dict:
    """Offline: one user's events in order -> the record the stream would hold."""
    record = new_record()
    for e in events:
        apply_event(record, e, cfg)
    return record
