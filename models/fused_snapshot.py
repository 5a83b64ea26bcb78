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
    base = published_estimate(user, prior, cfg)
    if collaborative is not None:
        base = collaborative.apply(base, user.own_distribution(), user.n_events)
    params = fusion["online" if collaborative is None else "collaborative"]
    age = max(0.0, time.time() - scored_at)
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
