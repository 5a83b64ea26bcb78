"""How low a log's next-category NLL can go: each scored event predicted from its own future.

The rows of ``evaluate`` are judged against each other; this says how much is left to win at
all. For each scored event of the protocol (DESIGN.md), the *k-event ceiling* predicts it with
the category mix of its user's next ``k`` events, itself included (``metrics.future_mixes``,
the protocol's ``q_future`` at that horizon): an estimator that knew in advance which
categories the user will take over that span, but not in which order. With ``k = 1`` it knows
the item itself (only the split over its categories is left); as ``k`` grows it knows less and
less of the order. The *user ceiling* predicts every scored event of a user with one
distribution, the user's own mix over the scored period: the best any single distribution per
user can do there. Both are fitted to the events they score (in sample), so no estimator that
only follows a user's interest mix comes below them.

    python -m models.evaluation.ceiling --data ratings.csv --format movielens --horizons 1,5,20,50

>>> evs = [{"user_id": "u", "categories": c, "ts": float(i)}
...        for i, c in enumerate([["a"], ["a"], ["a", "b"], ["b"]])]
>>> ctx = ReplayContext.build(evs, warmup=0.5)  # scores events 2 and 3
>>> round(horizon_ceiling(ctx, 1)["nll"], 4)  # event 2 split over 2 categories, event 3 over 1
0.3466
>>> round(user_ceiling(ctx)["nll"], 4)  # u's scored mix: a 0.25, b 0.75
0.5623
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence

import numpy as np

from models.data.loaders import FORMATS, load_events
from models.evaluation.metrics import FLOOR, future_mixes
from models.evaluation.replay import WARM_MIN_EVENTS, ReplayContext

DEFAULT_HORIZONS = (1, 5, 20, 50)


def _by_user(ctx: ReplayContext) -> dict[object, list[int]]:
    """Each user's events (indices into ``ctx.events``), in replay order."""
    out: dict[object, list[int]] = {}
    for i, e in enumerate(ctx.events):
        out.setdefault(e["user_id"], []).append(i)
    return out


def _event_nll(idx: np.ndarray, val: np.ndarray, targets: np.ndarray) -> float:
    """The protocol's NLL of ``targets`` under the sparse distribution ``(idx, val)``."""
    p = dict(zip(idx.tolist(), val.tolist(), strict=True))
    return -sum(math.log(max(p.get(t, 0.0), FLOOR)) for t in targets.tolist()) / len(targets)


def _slices(ctx: ReplayContext, nll: dict[int, float]) -> dict[str, float]:
    """Mean NLL over all scored events, the warm slice and the cold slice (as ``evaluate``)."""
    order = sorted(nll)
    values = np.array([nll[i] for i in order])
    warm = ctx.prior[order] >= WARM_MIN_EVENTS
    return {
        "nll": float(values.mean()),
        "nll_warm": float(values[warm].mean()) if warm.any() else float("nan"),
        "nll_cold": float(values[~warm].mean()) if (~warm).any() else float("nan"),
        "n": len(values),
        "n_cold": int((~warm).sum()),
    }


def horizon_ceiling(ctx: ReplayContext, horizon: int) -> dict[str, float]:
    """Each scored event predicted by its user's category mix over its next ``horizon`` events."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, not {horizon}")
    nll: dict[int, float] = {}
    for seq in _by_user(ctx).values():
        scored = [j for j, i in enumerate(seq) if i >= ctx.split]
        if not scored:
            continue
        mixes = future_mixes([ctx.targets[i] for i in seq], scored, horizon=horizon)
        for j, (idx, val) in mixes.items():
            nll[seq[j]] = _event_nll(idx, val, ctx.targets[seq[j]])
    return _slices(ctx, nll)


def user_ceiling(ctx: ReplayContext) -> dict[str, float]:
    """Each scored event predicted by one distribution per user: its scored events' mix."""
    nll: dict[int, float] = {}
    for seq in _by_user(ctx).values():
        scored = [i for i in seq if i >= ctx.split]
        if not scored:
            continue
        idx, val = future_mixes([ctx.targets[i] for i in scored], [0], horizon=len(scored))[0]
        for i in scored:
            nll[i] = _event_nll(idx, val, ctx.targets[i])
    return _slices(ctx, nll)


def _horizon_name(k: int) -> str:
    return "the next event's categories" if k == 1 else f"the next {k} events' mix"


def ceilings(ctx: ReplayContext, horizons: Sequence[int] = DEFAULT_HORIZONS) -> list[dict]:
    """The rows: one per horizon, then the user ceiling."""
    rows = [{"name": _horizon_name(k), **horizon_ceiling(ctx, k)} for k in horizons]
    rows.append({"name": "the user's scored mix", **user_ceiling(ctx)})
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = ["| ceiling | NLL | NLL warm | NLL cold |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['nll']:.3f} | {r['nll_warm']:.3f} | {r['nll_cold']:.3f} |"
        )
    return "\n".join(lines)


def _horizons(text: str) -> list[int]:
    try:
        out = [int(k) for k in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"horizons must be whole numbers, not {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"horizons must be at least 1, not {text!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.evaluation.ceiling", description=__doc__)
    p.add_argument("--data", required=True, help="the event file")
    p.add_argument("--format", choices=FORMATS, default="generic")
    p.add_argument("--items", help="movies.csv for --format movielens (default: beside --data)")
    p.add_argument("--horizons", type=_horizons, default=list(DEFAULT_HORIZONS))
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    ctx = ReplayContext.build(load_events(args.data, args.format, args.items))
    rows = ceilings(ctx, args.horizons)
    print(f"{rows[0]['n']:,} scored events, {rows[0]['n_cold']:,} cold")
    print(markdown(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
