"""Synthetic events for the tests, the demo and the benchmarks (``models.synthetic`` is the
drifting-users generator behind ``interest-tracker produce --synthetic``)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

# The benchmark's mix: mostly views, some clicks, carts, favourites and purchases.
EVENT_TYPE_MIX = ("view", "view", "view", "click", "cart", "fav", "purchase")


def user_events(
    user: str,
    categories: Sequence[str],
    t0: float,
    step: float = 1.0,
    event_type: str = "view",
    item_prefix: str = "i",
) -> list[dict]:
    """One user's events, the i-th in ``categories[i]``, ``step`` seconds apart.

    >>> [(e["item_id"], e["categories"], e["ts"]) for e in user_events("u", ["a", "b"], 10.0)]
    [('i0', ['a'], 10.0), ('i1', ['b'], 11.0)]
    """
    return [
        {
            "user_id": user,
            "item_id": f"{item_prefix}{i}",
            "categories": [category],
            "event_type": event_type,
            "ts": t0 + i * step,
        }
        for i, category in enumerate(categories)
    ]


def interleaved_events(
    first_user: int, last_user: int, per_user: int, seed: int, t0: float = 1_760_000_000.0
) -> Iterator[dict]:
    """``per_user`` events for each user in [first, last), round by round, 10 ms apart: items
    from 100,000, each user's categories among six of 500, types from ``EVENT_TYPE_MIX``.

    >>> [e["user_id"] for e in interleaved_events(0, 2, 2, seed=0)]
    ['user-0', 'user-1', 'user-0', 'user-1']
    """
    rng = random.Random(seed)
    ts = t0
    for round_ in range(per_user):
        for u in range(first_user, last_user):
            ts += 0.01
            yield {
                "user_id": f"user-{u}",
                "item_id": f"item-{rng.randrange(100_000)}",
                "categories": [f"cat-{(u * 7 + rng.randrange(6)) % 500}"],
                "event_type": rng.choice(EVENT_TYPE_MIX),
                "ts": ts + round_,
            }
