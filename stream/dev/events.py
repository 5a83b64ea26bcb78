"""Synthetic events for the tests, the demo and the benchmarks (``models.data.synthetic`` is the
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


ITEMS = 100_000  # item ids of ``interleaved_events``: item-0 … item-99999


def item_category(item: int) -> str:
    """The category an item has in the catalog of ``categories="item"`` events."""
    return f"cat-{item % 500}"


def interleaved_events(
    first_user: int,
    last_user: int,
    per_user: int,
    seed: int,
    t0: float = 1_760_000_000.0,
    categories: str = "user",
) -> Iterator[dict]:
    """``per_user`` events for each user in [first, last), round by round, 10 ms apart: items
    from ``ITEMS``, types from ``EVENT_TYPE_MIX``. ``categories``: ``user`` (each user's among
    six of 500), ``item`` (the item's, ``item_category``) or ``catalog`` (none: a worker finds
    the item's in the catalog).

    >>> [e["user_id"] for e in interleaved_events(0, 2, 2, seed=0)]
    ['user-0', 'user-1', 'user-0', 'user-1']
    >>> sorted(next(interleaved_events(0, 1, 1, seed=0, categories="catalog")))
    ['event_type', 'item_id', 'ts', 'user_id']
    """
    if categories not in ("user", "item", "catalog"):
        raise ValueError(f"categories must be user, item or catalog, not {categories!r}")
    rng = random.Random(seed)
    ts = t0
    for round_ in range(per_user):
        for u in range(first_user, last_user):
            ts += 0.01
            item = rng.randrange(ITEMS)
            event = {"user_id": f"user-{u}", "item_id": f"item-{item}"}
            if categories == "user":
                event["categories"] = [f"cat-{(u * 7 + rng.randrange(6)) % 500}"]
            elif categories == "item":
                event["categories"] = [item_category(item)]
            event["event_type"] = rng.choice(EVENT_TYPE_MIX)
            event["ts"] = ts + round_
            yield event
