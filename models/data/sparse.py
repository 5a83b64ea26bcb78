"""A log made sparse: about ``mean_events`` events per user, as in a random sample of a large
log (most users of a real platform have a handful of events).

``sample``: of each user's events, ``1 + Poisson(mean_events - 1)`` drawn at random; one such
sample per user (the other users' events are the only "collaborative" evidence).
``split``: each user's events shuffled and cut into pseudo-users of ``1 + Poisson(mean - 1)``
events each, every event kept (a log of realistic size; the pseudo-users of one real user
share that user's tastes, which a co-occurrence prior can learn from).
Time order is kept either way.

    python -m models.data.sparse --data ../shared/data/taobao-head/UserBehavior.csv \\
        --format taobao --mode split --out sparse.csv
"""

from __future__ import annotations

import argparse
import math
import random
from collections import defaultdict
from collections.abc import Sequence

from models.data.loaders import FORMATS, load_events, sort_by_time, write_generic

MODES = ("sample", "split")


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p >= limit:
        k += 1
        p *= rng.random()
    return k


def sparsify(
    events: Sequence[dict], mean_events: float = 1.7, seed: int = 0, mode: str = "split"
) -> list[dict]:
    """``events`` (any order) made sparse as the module says, in time order.

    >>> evs = [{"user_id": u, "ts": float(t)} for t, u in enumerate("aaaabbbbbb")]
    >>> out = sparsify(evs, 1.5, seed=1, mode="split")
    >>> len(out), sorted({e["user_id"].split("~")[0] for e in out})
    (10, ['a', 'b'])
    >>> [e["ts"] for e in out] == sorted(e["ts"] for e in out)
    True
    >>> len(sparsify(evs, 1.0, mode="sample"))  # one event of each user
    2
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mean_events < 1:
        raise ValueError("mean_events must be at least 1")
    rng = random.Random(seed)
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e)
    out: list[dict] = []
    for user in sorted(by_user):
        evs = by_user[user]
        if mode == "sample":
            out += rng.sample(evs, min(len(evs), 1 + _poisson(rng, mean_events - 1)))
            continue
        order = list(range(len(evs)))
        rng.shuffle(order)
        start, group = 0, 0
        while start < len(order):
            n = 1 + _poisson(rng, mean_events - 1)
            pseudo = f"{user}~{group}"
            out += [{**evs[i], "user_id": pseudo} for i in sorted(order[start : start + n])]
            start, group = start + n, group + 1
    return sort_by_time(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.data.sparse", description=__doc__)
    p.add_argument("--data", required=True, help="the event file")
    p.add_argument("--format", choices=FORMATS, default="generic")
    p.add_argument("--items", help="movies.csv for --format movielens (default: beside --data)")
    p.add_argument("--mode", choices=MODES, default="split")
    p.add_argument("--mean-events", type=float, default=1.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the sparse log, as generic CSV")
    args = p.parse_args(argv)
    events = sparsify(
        load_events(args.data, args.format, args.items), args.mean_events, args.seed, args.mode
    )
    users = len({e["user_id"] for e in events})
    write_generic(events, args.out)
    print(f"{len(events):,} events, {users:,} users, {len(events) / users:.2f} per user")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
