"""Ratios measured in alternating pairs: the scorer's cost to ingestion, the worker against the
bare consumer, the catalog join's CPU per event.

On the bench machine the rate of one setting moves by 10–25% between runs minutes apart
(``stream.dev.compare`` of one tree against itself, docs/RESULTS.md), so a single run of one
setting against a single run of another, taken at different times, measured the machine as
much as the settings (the scorer's ratio read 81% and 67% in two runs of one tree). Here each
round runs the baseline and the setting back to back, which one first alternating, and a goal
reads the median of the rounds' ratios (the lower middle one of an even count); every round's
ratio is reported beside it.

>>> rates = iter([100.0, 90.0, 80.0, 100.0, 100.0, 70.0])  # round 1 off/on, 2 on/off, 3 off/on
>>> r = paired_rounds(lambda on, k: {"rate": next(rates)}, rounds=3)
>>> r["order"], r["ratios"], r["ratio"], r["median"][True]["rate"], r["median"][False]["rate"]
([('off', 'on'), ('on', 'off'), ('off', 'on')], [0.9, 0.8, 0.7], 0.8, 80.0, 100.0)

Any figure of the results can be the one compared (``key``), a cost as well as a rate:

>>> cpu = iter([40.0, 44.0, 48.0, 40.0])  # round 1 off/on, round 2 on/off
>>> paired_rounds(lambda on, k: {"cpu": next(cpu)}, rounds=2, key="cpu")["ratios"]
[1.1, 1.2]
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

ROUNDS = 3


def paired_rounds(
    run: Callable[[bool, int], dict], rounds: int = ROUNDS, key: str = "rate"
) -> dict:
    """``run(on, k)`` runs round ``k``'s setting (``on``) or its baseline and returns a result
    with a ``key`` figure. Each round's ratio of it (setting / baseline), their median, and
    the median round's two results (``median[True]``, ``median[False]``)."""
    order, ratios, pairs = [], [], []
    for k in range(rounds):
        first = (False, True) if k % 2 == 0 else (True, False)
        got = {on: run(on, k) for on in first}
        order.append(tuple("on" if on else "off" for on in first))
        ratios.append(round(got[True][key] / got[False][key], 4))
        pairs.append(got)
    ratio = statistics.median_low(ratios)  # one round's: its results go with it
    return {"order": order, "ratios": ratios, "ratio": ratio, "median": pairs[ratios.index(ratio)]}
