"""The scorer's cost to ingestion, measured in alternating pairs.

On the bench machine the rate of one setting moves by 10–25% between runs minutes apart
(``stream.dev.compare`` of one tree against itself, docs/RESULTS.md), so a single run with the
scorer against a single run without it, taken at different times, measured the machine as much
as the scorer (81% and 67% in two runs of one tree). Here each round runs the worker without
the scorer and with it back to back, which one first alternating, and the goal reads the
median of the rounds' ratios (the lower middle one of an even count); every round's ratio is
reported beside it.

>>> rates = iter([100.0, 90.0, 80.0, 100.0, 100.0, 70.0])  # round 1 off/on, 2 on/off, 3 off/on
>>> r = scorer_rounds(lambda scored, k: {"rate": next(rates), "metric_per_s": 5.0}, rounds=3)
>>> r["order"], r["ratios"], r["ratio"], r["with_per_s"], r["without_per_s"]
([('off', 'on'), ('on', 'off'), ('off', 'on')], [0.9, 0.8, 0.7], 0.8, 80.0, 100.0)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

ROUNDS = 3


def scorer_rounds(run: Callable[[bool, int], dict], rounds: int = ROUNDS) -> dict:
    """``run(scored, k)`` runs round ``k``'s worker with the scorer flat out (``scored``) or
    without it and returns its ``consume_phase`` result (``rate``; ``metric_per_s``: users
    scored a second). Each round's ratio (with / without), their median, and the rates of the
    median round."""
    order, ratios, pairs = [], [], []
    for k in range(rounds):
        first = (False, True) if k % 2 == 0 else (True, False)
        got = {scored: run(scored, k) for scored in first}
        order.append(tuple("on" if s else "off" for s in first))
        ratios.append(round(got[True]["rate"] / got[False]["rate"], 4))
        pairs.append(got)
    ratio = statistics.median_low(ratios)  # one round's: its rates go with it
    median = pairs[ratios.index(ratio)]
    return {
        "order": order,
        "ratios": ratios,
        "ratio": ratio,
        "with_per_s": median[True]["rate"],
        "without_per_s": median[False]["rate"],
        "users_scored_per_s": median[True]["metric_per_s"],
        "without_rates": [p[False]["rate"] for p in pairs],
    }
