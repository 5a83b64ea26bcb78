"""The snapshot of a user whose sequence-model estimate is fused in: one definition, used by
the worker's loop and by the snapshot builder processes (which must not import torch).

``Scored`` is what the scorer left for a user: its category distribution, when it was scored
(wall-clock seconds), the checkpoint's version and the most probable next items (possibly
empty).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from models.fusion import FusionParams
from models.online import UserInterest
from models.online.masses import fused_rank
from models.priors.collaborative import CollaborativePrior
from models.priors.population import PopulationPrior
from models.tracker import TrackerConfig, UserRecord, explain, published_estimate, snapshot_of

# (distribution, scored at, version, top items: [(item_id, p), ...])
Scored = tuple[Mapping[str, float], float, str, list]


def fused_snapshot_of(
    uid: str,
    user: UserInterest,
    topics: UserInterest | None,
    explain_entries: list[dict],
    cfg: TrackerConfig,
    scored: Scored,
    fusion: Mapping[str, FusionParams],
    prior: PopulationPrior | None = None,
    collaborative: CollaborativePrior | None = None,
) -> dict[str, Any]:
    """The user's snapshot (``snapshot_of``) with the sequence estimate fused in, weights in
    ``sources``.

    The base is what the snapshot would publish without the sequence model, as in
    ``evaluate``'s fused row: the online estimate smoothed toward ``prior`` when given, with
    ``collaborative`` mixed in when given; ``fusion`` holds the weights fitted for each base
    (``"online"``, ``"collaborative"``).
    """
    dist, scored_at, version, top_items = scored
    params = fusion["online" if collaborative is None else "collaborative"]
    age = max(0.0, time.time() - scored_at)
    w = params.sequence_weight(user.n_events, age) if dist else 0.0
    if dist and prior is not None and collaborative is None and w < 1.0:
        fused = fused_top(user, prior, dist, w, cfg.top_k)
        weights = {"online": 1.0 - w, "sequence": w}
    else:
        base = published_estimate(user, prior, cfg)
        if collaborative is not None:
            base = collaborative.apply(base, user.own_distribution(), user.n_events)
        fused, weights = params.combine(base, dist, user.n_events, age)
    sources = {
        "online": {"weight": weights["online"], "collaborative": collaborative is not None},
        "sequence": {"weight": weights["sequence"], "version": version, "age_s": age},
        "fused": {"method": params.method, "fitted": params.n_events > 0},
    }
    snapshot = snapshot_of(
        uid,
        user,
        topics,
        explain_entries,
        cfg,
        fused=fused,
        sources=sources,
        sequence_version=version,
        prior=prior,
    )
    if top_items:  # INTEREST_TOP_ITEMS: the item head's most probable next items
        snapshot["top_items"] = [{"item_id": i, "p": p} for i, p in top_items]
    return snapshot


def fused_top(
    user: UserInterest, prior: PopulationPrior, sequence: Mapping[str, float], w: float, k: int
) -> dict[str, float]:
    """``top_k(FusionParams.combine(published_estimate(user, prior), sequence), k)`` at
    sequence weight ``w``, bit for bit, from the only categories that can rank: the published
    estimate's top ``k`` and the sequence estimate's categories. Any other category gets
    ``(1 - w)`` times its published probability, and each of those ``k`` has at least as
    much (ties by name, as ``top_k``), as long as ``w < 1`` (at 1 every online term is 0) and
    the product's rounding keeps two different probabilities apart. Building the whole
    estimate over the prior's ranked categories took most of a fused snapshot's time
    (docs/RESULTS.md).

    >>> from models.online import PopulationInterest
    >>> from models.fusion import FusionParams
    >>> from models.online.masses import top_k
    >>> pop, user = PopulationInterest(), UserInterest()
    >>> for i, c in enumerate("aabcdde"):
    ...     pop.learn_one({"categories": [c], "event_type": "view", "ts": float(i)})
    >>> user.learn_one({"categories": ["c"], "event_type": "view", "ts": 7.0})
    >>> prior = PopulationPrior.from_population(pop)
    >>> sequence = {"e": 0.5, "b": 0.3, "_other": 0.2}
    >>> cfg = TrackerConfig(top_k=3)
    >>> full = FusionParams().combine(published_estimate(user, prior, cfg), sequence, 1)[0]
    >>> fused_top(user, prior, sequence, 0.5, 3) == top_k(full, 3)
    True
    """
    tracked, coef = user.smoothing(prior.probs)
    return fused_rank(tracked, coef, prior.probs, prior.ranked, prior.ranked_set, sequence, w, k)


def fused_snapshot(
    uid: str,
    record: UserRecord,
    cfg: TrackerConfig,
    scored: Scored,
    fusion: Mapping[str, FusionParams],
    prior: PopulationPrior | None = None,
    collaborative: CollaborativePrior | None = None,
) -> dict[str, Any]:
    """:func:`fused_snapshot_of` a record's estimators and most moving recent events (as
    ``build_snapshot`` is ``snapshot_of`` for a record)."""
    entries = explain(record, cfg)
    return fused_snapshot_of(
        uid, record.interest, record.topics, entries, cfg, scored, fusion, prior, collaborative
    )
