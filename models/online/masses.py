"""Decayed category masses: the arithmetic the user and population estimators share.

Masses are stored relative to a reference time r: an event of weight w at time t adds
w * 2**((t - r) / half_life), so nothing needs decaying per event and late events need no
special case. The real mass at time T is the stored one times 2**(-(T - r) / half_life).
When the exponent grows large the masses are rebased to a new r (rare, O(categories)).

The functions marked ``@accelerated`` run, when it is built, in C (``models/_masses.c``, the
extension ``models._masses``: beside the package, not in it, so importing it does not go
through ``models.online``'s ``__init__``, which imports this module): a user
tracks a handful of categories, and in Python each step over them is a list of tuples or a
dict comprehension of a few microseconds, a dozen of them per event and snapshot. The
definitions here are the specification; the C ones give the same results bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence

from models.native import accelerated_by
from models.schema import OTHER

try:
    from models import _masses
except ImportError:  # not built (no C compiler at install): the Python definitions run
    _masses = None

# ``python``, run by the C function of the same name when ``_masses`` is built; it takes
# exact dicts of ``str`` to ``float`` only (``models.native.accelerated_by``).
accelerated = accelerated_by(_masses)

# The bases that hold the attributes of ``UserInterest``, ``SurpriseDrift``,
# ``PopulationInterest`` and ``DecayedCounts``: built, one C block each, which the C learning
# reads and writes without looking a name up (the Python definitions read the same
# attributes); else plain attributes.
InterestFields: type = _masses.InterestFields if _masses is not None else object
DriftFields: type = _masses.DriftFields if _masses is not None else object
PopulationFields: type = _masses.PopulationFields if _masses is not None else object
CountsFields: type = _masses.CountsFields if _masses is not None else object


def event_labels(x: Mapping, y: str | Sequence[str] | None) -> list:
    """The categories an event counts for: ``y`` when given (one label or several), else x's."""
    if y is None:
        return list(x["categories"])
    return list(y) if isinstance(y, list | tuple) else [y]


REBASE_EXPONENT = 30.0


def rescale(masses: dict[str, float], residual: float, factor: float) -> float:
    for c in masses:
        masses[c] *= factor
    return residual * factor


@accelerated
def add_mass(
    masses: dict[str, float], residual: float, cats: Sequence[str], w: float, cap: int
) -> float:
    """Add ``w`` to ``masses``, split evenly over ``cats`` (in place); past ``cap``
    categories the smallest (ties by name) go to the residual, which is returned.

    >>> m = {"a": 1.0, "b": 0.5}
    >>> add_mass(m, 0.0, ["c"], 0.25, 2), m
    (0.25, {'a': 1.0, 'b': 0.5})
    """
    share = w / len(cats)
    for c in cats:
        masses[c] = masses.get(c, 0.0) + share
    while len(masses) > cap:
        smallest = min(masses, key=lambda k: (masses[k], k))
        residual += masses.pop(smallest)
    return residual


def smoothed(
    masses: Mapping[str, float], residual: float, alpha: float, prior: Mapping[str, float] | None
) -> dict[str, float]:
    """Dirichlet-smoothed distribution: tracked masses, residual and prior mass spread by prior.

    Without a prior, the residual and the prior mass are returned under ``_other``.
    """
    total = sum(masses.values()) + residual + alpha
    if prior is None:
        out = {c: m / total for c, m in masses.items()}
        out[OTHER] = (residual + alpha) / total
        return out
    untracked = 1.0 - sum(prior.get(c, 0.0) for c in masses)
    spread = residual / untracked if untracked > 1e-12 else 0.0
    out = {c: (alpha + spread) * p / total for c, p in prior.items() if c not in masses}
    for c, m in masses.items():
        out[c] = (m + alpha * prior.get(c, 0.0)) / total
    return out


@accelerated
def top_k(p: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` most probable categories plus ``_other`` holding the rest, summing to 1.

    >>> top_k({"a": 0.5, "b": 0.3, "c": 0.2}, 2)
    {'a': 0.5, 'b': 0.3, '_other': 0.2}
    """
    return rank_top([(-v, c) for c, v in p.items() if c != OTHER], k)


@accelerated
def top_smoothed(
    masses: Mapping[str, float], residual: float, alpha: float, k: int
) -> dict[str, float]:
    """``top_k(smoothed(masses, residual, alpha, None), k)``, without the residual's entry.

    >>> top_smoothed({"a": 3.0, "b": 1.0, "c": 0.5}, 0.25, 0.25, 1)
    {'a': 0.6, '_other': 0.4}
    """
    total = sum(masses.values()) + residual + alpha
    return rank_top([(-(m / total), c) for c, m in masses.items() if c != OTHER], k)


def rank_top(negated: list[tuple[float, str]], k: int) -> dict[str, float]:
    """``(-p, category)`` pairs -> the k most probable (ties by name), ``_other`` the rest.

    >>> rank_top([(-0.2, "b"), (-0.5, "a"), (-0.2, "a2")], 2)
    {'a': 0.5, 'a2': 0.2, '_other': 0.30000000000000004}
    """
    ranked = sorted(negated)[:k]
    out = {c: -v for v, c in ranked}
    out[OTHER] = max(0.0, 1.0 - sum(out.values()))
    return out


@accelerated
def rank_smoothed(
    tracked: Mapping[str, float],
    coef: float,
    prior: Mapping[str, float],
    ranked: Sequence[str],
    k: int,
) -> dict[str, float]:
    """The ``k`` most probable of the ``tracked`` categories (their probabilities) and of the
    first ``k`` untracked ones of ``ranked`` (the prior's, most probable first), each of those
    at ``coef * prior[c]``; the rest as ``_other``.

    >>> rank_smoothed({"b": 0.5}, 0.5, {"a": 0.6, "b": 0.2, "c": 0.2}, ["a", "b", "c"], 2)
    {'b': 0.5, 'a': 0.3, '_other': 0.19999999999999996}
    """
    negated = [(-v, c) for c, v in tracked.items() if c != OTHER]
    if k > 0:
        get, left, append = prior.get, k, negated.append
        for c in ranked:
            if c not in tracked:
                append((-(coef * get(c, 0.0)), c))
                left -= 1
                if not left:
                    break
    return rank_top(negated, k)


@accelerated
def fused_rank(
    tracked: Mapping[str, float],
    coef: float,
    prior: Mapping[str, float],
    ranked: Sequence[str],
    ranked_set: Container[str],
    sequence: Mapping[str, float],
    w: float,
    k: int,
) -> dict[str, float]:
    """The ``k`` most probable of the published estimate (``rank_smoothed``'s candidates)
    mixed with a sequence estimate at weight ``w``: ``(1 - w) * online + w * sequence`` for
    each candidate and each of ``sequence``'s categories, the online part of one
    ``rank_smoothed`` did not rank read as it would (tracked, else ``coef * prior[c]`` when
    ``c`` is among ``ranked_set``, else 0); the rest as ``_other``.

    >>> prior = {"a": 0.6, "b": 0.2, "c": 0.2}
    >>> fused_rank({"b": 0.5}, 0.5, prior, ["a", "b", "c"], {"a", "b", "c"},
    ...            {"c": 0.75, "_other": 0.25}, 0.5, 2)
    {'c': 0.425, 'b': 0.25, '_other': 0.32499999999999996}
    """
    online = 1.0 - w
    fused = {c: online * p for c, p in rank_smoothed(tracked, coef, prior, ranked, k).items()}
    for c, q in sequence.items():
        p = tracked.get(c)
        if p is None and c in ranked_set:
            p = coef * prior.get(c, 0.0)
        fused[c] = (0.0 if p is None else online * p) + w * q
    return top_k(fused, k)


# A user's two horizons as mix_horizons and smoothed_tracked read them: (short masses, long
# masses, the short horizon's weight, short residual, long residual, short pseudo-count, long
# pseudo-count), masses and pseudo-counts in stored units (UserInterest.horizon_parts).
Horizons = tuple[Mapping[str, float], Mapping[str, float], float, float, float, float, float]


@accelerated
def mix_horizons(horizons: Horizons) -> dict[str, float]:
    """The two horizons' masses, each smoothed by its pseudo-count and mixed with weights
    ``ws`` and ``1 - ws``; residuals and pseudo-counts as ``_other``.

    >>> mix_horizons(({"a": 1.0}, {"a": 1.0, "b": 2.0}, 0.5, 0.0, 0.0, 1.0, 1.0))
    {'a': 0.375, 'b': 0.25, '_other': 0.375}
    """
    short, long_, ws, short_res, long_res, a_short, a_long = horizons
    t_short = sum(short.values()) + short_res + a_short
    t_long = sum(long_.values()) + long_res + a_long
    wl = 1.0 - ws
    out = {c: wl * (m / t_long) for c, m in long_.items()}
    get = out.get
    for c, m in short.items():
        out[c] = get(c, 0.0) + ws * (m / t_short)
    out[OTHER] = (1.0 - ws) * ((long_res + a_long) / t_long) + ws * (
        (short_res + a_short) / t_short
    )
    return out


@accelerated
def smoothed_tracked(
    horizons: Horizons, prior: Mapping[str, float]
) -> tuple[dict[str, float], float]:
    """The two horizons smoothed toward ``prior`` and mixed (as :func:`mix_horizons`), on the
    tracked categories only; and the multiple of its prior that every untracked category
    gets. A horizon's residual is spread over the untracked categories by the prior.

    >>> out, coef = smoothed_tracked(({"a": 1.0}, {"a": 1.0}, 0.5, 0.0, 0.0, 1.0, 1.0),
    ...                              {"a": 0.5, "b": 0.5})
    >>> out, coef, out["a"] + coef * 0.5
    ({'a': 0.75}, 0.5, 1.0)
    """
    short, long_, ws, short_res, long_res, a_short, a_long = horizons
    get = prior.get
    out: dict[str, float] = {}
    coef = 0.0
    for weight, masses, res, alpha in (
        (ws, short, short_res, a_short),
        (1.0 - ws, long_, long_res, a_long),
    ):
        total = sum(masses.values()) + res + alpha
        oget = out.get
        if not res:  # nothing evicted (most users): no mass to spread over the untracked
            coef += weight * alpha / total
            for c, m in masses.items():
                out[c] = oget(c, 0.0) + weight * m / total
            continue
        p_tracked = [get(c, 0.0) for c in masses]
        untracked = 1.0 - sum(p_tracked)
        spread = res / untracked if untracked > 1e-12 else 0.0
        coef += weight * (alpha + spread) / total
        for (c, m), p in zip(masses.items(), p_tracked, strict=True):
            out[c] = oget(c, 0.0) + weight * (m - spread * p) / total
    for c in out:
        out[c] += coef * get(c, 0.0)
    return out, coef


@accelerated
def snapshot_tops(
    own: Mapping[str, float],
    parts: Horizons,
    smoothing: Horizons | None,
    prior: Mapping[str, float] | None,
    ranked: Sequence[str],
    k: int,
) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float], float]:
    """A snapshot's numbers in one call: the ``k`` most probable of the own distribution
    ``own`` and of each horizon of ``parts`` (pseudo-counts as ``_other``), the published
    estimate (``parts`` smoothed toward ``prior`` as ``smoothing`` holds them, ranked as
    :func:`rank_smoothed`; without a prior a copy of the own top k) and its entropy.

    >>> parts = ({"a": 1.0}, {"a": 1.0, "b": 2.0}, 0.5, 0.0, 0.0, 1.0, 1.0)
    >>> own_top, short, long_, dist, h = snapshot_tops(mix_horizons(parts), parts, None, None,
    ...                                                (), 1)
    >>> own_top, short, long_
    ({'a': 0.375, '_other': 0.625}, {'a': 0.5, '_other': 0.5}, {'b': 0.5, '_other': 0.5})
    >>> dist == own_top, dist is own_top
    (True, False)
    """
    short, long_, _, short_res, long_res, a_short, a_long = parts
    own_top = top_k(own, k)
    short_top = top_smoothed(short, short_res, a_short, k)
    long_top = top_smoothed(long_, long_res, a_long, k)
    if prior is None:
        dist = dict(own_top)
    else:
        tracked, coef = smoothed_tracked(smoothing, prior)
        dist = rank_smoothed(tracked, coef, prior, ranked, k)
    return own_top, short_top, long_top, dist, entropy(dist)


@accelerated
def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the L1 distance between two (sparse) distributions: over ``q``'s entries, then
    ``p``'s that ``q`` lacks.

    >>> total_variation({"a": 0.5, "b": 0.5}, {"a": 0.75, "c": 0.25})
    0.5
    """
    get = p.get
    moved = sum([abs(v - get(c, 0.0)) for c, v in q.items()])
    gone = [v for c, v in p.items() if c not in q]
    if gone:
        moved += sum(gone)
    return 0.5 * moved


@accelerated
def mean_surprise(p: Mapping[str, float], categories: Sequence[str], other_spread: float) -> float:
    """Mean ``-log p(c)`` of ``categories``; one ``p`` does not name gets ``p["_other"] /
    other_spread``, and no probability counts as less than 1e-9.

    >>> round(mean_surprise({"a": 0.5, "_other": 0.5}, ["a", "b"], 100.0), 4)
    2.9957
    """
    other = p[OTHER] / other_spread
    log, get = math.log, p.get
    return -sum([log(max(get(c, other), 1e-9)) for c in categories]) / len(categories)


@accelerated
def entropy(p: Mapping[str, float]) -> float:
    """Shannon entropy in nats (``_other`` counted as one outcome).

    >>> round(entropy({"a": 0.5, "_other": 0.5}), 6)
    0.693147
    """
    log = math.log
    return -sum([v * log(v) for v in p.values() if v > 0])  # a list: half a generator's cost


class EventClock:
    """``n_events`` and ``last_ts`` of an estimator that counts its events in ``_n`` and keeps
    the latest event time in ``_t``.

    Examples
    --------
    >>> from models.online import UserInterest
    >>> user = UserInterest()
    >>> user.n_events, user.last_ts
    (0, None)
    >>> user.learn_one({"categories": ["a"], "ts": 100.0})
    >>> user.learn_one({"categories": ["b"], "ts": 50.0})  # late: counted, time kept
    >>> user.n_events, user.last_ts
    (2, 100.0)
    """

    _n: int
    _t: float | None

    @property
    def n_events(self) -> int:
        return self._n

    @property
    def last_ts(self) -> float | None:
        return self._t
