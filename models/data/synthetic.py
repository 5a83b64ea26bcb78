"""A synthetic event stream with known, drifting ground-truth interests.

Each user has a true interest distribution over categories (a sparse Dirichlet draw); at random
moments it shifts to a new one. Events sample a category from the current truth, so an
estimator's error against ``truth`` can be measured exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

EVENT_TYPE_MIX = (
    ("view", 0.80),
    ("click", 0.08),
    ("cart", 0.05),
    ("fav", 0.04),
    ("purchase", 0.03),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and dynamics of the synthetic population.

    >>> SyntheticConfig(categories=3)
    Traceback (most recent call last):
    ValueError: synthetic categories must be at least 4 (each user's interests), got 3
    """

    users: int = 1000
    categories: int = 50
    interests_per_user: int = 4
    drift_probability: float = 0.01
    mean_gap_s: float = 60.0
    start_ts: float = 1_764_000_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"synthetic users must be at least 1, got {self.users}")
        if self.categories < self.interests_per_user:
            raise ValueError(
                f"synthetic categories must be at least {self.interests_per_user} "
                f"(each user's interests), got {self.categories}"
            )


def _interests(rng: random.Random, cfg: SyntheticConfig) -> dict[str, float]:
    cats = rng.sample(range(cfg.categories), cfg.interests_per_user)
    weights = [rng.gammavariate(1.0, 1.0) for _ in cats]
    total = sum(weights)
    return {f"cat-{c:03d}": w / total for c, w in zip(cats, weights, strict=True)}


def synthetic_events(cfg: SyntheticConfig, n_events: int) -> Iterator[dict]:
    """``n_events`` events in time order; each carries its user's ``truth`` at that moment.

    Examples
    --------
    >>> events = list(synthetic_events(SyntheticConfig(users=3, seed=1), 5))
    >>> [e["event_type"] in ("view", "click", "cart", "fav", "purchase") for e in events]
    [True, True, True, True, True]
    >>> all(abs(sum(e["truth"].values()) - 1) < 1e-9 for e in events)
    True
    """
    rng = random.Random(cfg.seed)
    truth = {f"user-{u}": _interests(rng, cfg) for u in range(cfg.users)}
    users = list(truth)
    types, type_weights = zip(*EVENT_TYPE_MIX, strict=True)
    ts = cfg.start_ts
    for i in range(n_events):
        ts += rng.expovariate(cfg.users / cfg.mean_gap_s)
        user = rng.choice(users)
        shifted = rng.random() < cfg.drift_probability
        if shifted:
            truth[user] = _interests(rng, cfg)
        interests = truth[user]
        category = rng.choices(list(interests), weights=list(interests.values()))[0]
        yield {
            "user_id": user,
            "item_id": f"item-{category}-{rng.randrange(200)}",
            "categories": [category],
            "event_type": rng.choices(types, weights=type_weights)[0],
            "ts": round(ts, 3),
            "truth": dict(interests),
            "shifted": shifted,
            "seq": i,
        }
