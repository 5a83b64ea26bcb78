"""Warming the local broker before timed rows.

A freshly started broker's JVM took 45–57% of a core during the first two worker passes over
100k users × 3 events, and 13% from the third on (``stream.dev.compare``, the same tree three
times after a restart, docs/RESULTS.md): its code is compiled while it serves. On 2 cores that
CPU is taken from the worker being timed, so the first timed rows of a bench read the broker's
warm-up, not the worker. ``warm_broker`` runs untimed passes until one finds the broker warm.

>>> shares = iter([0.55, 0.41, 0.12, 0.11])
>>> warm_broker(lambda k: next(shares))  # each untimed pass: the broker's share of a core
[0.55, 0.41, 0.12]
"""

from __future__ import annotations

from collections.abc import Callable

WARM_SHARE = 0.25  # of a core, during a worker pass: warm (13% measured; 45%+ cold)
MAX_PASSES = 4


def warm_broker(
    run_pass: Callable[[int], float],
    warm_share: float = WARM_SHARE,
    max_passes: int = MAX_PASSES,
) -> list[float]:
    """Run ``run_pass(k)`` (one untimed worker pass; returns the broker's share of a core
    while the worker consumed) until a pass finds it below ``warm_share``, at most
    ``max_passes`` times; each pass's share."""
    shares: list[float] = []
    for k in range(max_passes):
        shares.append(round(run_pass(k), 2))
        if shares[-1] < warm_share:
            break
    return shares
