"""Decayed category masses: the arithmetic the user and population estimators share.

Masses are stored relative to a reference time r: an event of weight w at time t adds
w * 2**((t - r) / half_life), so nothing needs decaying per event and late events need no
special case. The real mass at time T is the stored one times 2**(-(T - r) / half_life).
When the exponent grows large the masses are rebased to a new r (rare, O(categories)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.schema import OTHER


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


def add_mass(
    masses: dict[str, float], residual: float, cats: Sequence[str], w: float, cap: int
) -> float:
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


def top_k(p: Mapping[str, float], k: int) -> dict[str, float]:
    """The ``k`` most probable categories plus ``_other`` holding the rest, summing to 1.

    >>> top_k({"a": 0.5, "b": 0.3, "c": 0.2}, 2)
    {'a': 0.5, 'b': 0.3, '_other': 0.2}
    """
    return rank_top([(-v, c) for c, v in p.items() if c != OTHER], k)


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
