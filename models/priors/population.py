"""The prior a snapshot is smoothed with, and how a subscriber reads a snapshot's ``_other``.

A published ``distribution`` is the user's estimate smoothed toward the population prior (the
estimate ``evaluate`` scores for the ``online`` row): its top k categories are named and the
rest is ``_other``. Outside the tracked categories the smoothed estimate is proportional to
the prior, so a subscriber recovers a category's probability by spreading ``_other`` over the
unnamed categories in proportion to the population snapshot (:class:`SubscriberView`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from models.online import PopulationInterest
from models.schema import OTHER

FLOOR = 1e-9
# Categories a population snapshot names; the rest of its mass is its ``_other``.
POPULATION_TOP = 500


@dataclass(frozen=True)
class PopulationPrior:
    """A population distribution prepared for smoothing snapshots (built once, used by many).

    ``probs`` is the smoothed population distribution over the categories seen (as
    ``PopulationInterest.predict_dense``), ``ranked`` its most probable categories first,
    ``n_events`` and ``ts`` say which population state it is (published in ``sources``).

    Examples
    --------
    >>> pop = PopulationInterest()
    >>> for i, c in enumerate("aab"):
    ...     pop.learn_one({"categories": [c], "event_type": "view", "ts": float(i)})
    >>> prior = PopulationPrior.from_population(pop)
    >>> prior.ranked, round(prior.probs["a"], 3), prior.n_events
    (('a', 'b'), 0.6, 3)
    """

    probs: Mapping[str, float]
    ranked: tuple[str, ...]
    n_events: int = 0
    ts: float | None = None

    @cached_property
    def ranked_set(self) -> frozenset[str]:
        """``ranked`` as a set, for membership tests."""
        return frozenset(self.ranked)

    @classmethod
    def from_population(cls, pop: PopulationInterest, depth: int = 100) -> PopulationPrior:
        probs = pop.predict_smoothed()
        ranked = tuple(sorted(probs, key=lambda c: (-probs[c], c))[:depth])
        return cls(probs, ranked, pop.n_events, pop.last_ts)

    def population_snapshot(self, top: int = POPULATION_TOP) -> dict:
        """``distribution`` (top categories + ``_other``), ``n_categories`` and ``n_events``."""
        named = sorted(self.probs, key=lambda c: (-self.probs[c], c))[:top]
        dist = {c: self.probs[c] for c in named}
        dist[OTHER] = max(0.0, 1.0 - sum(dist.values()))
        return {"distribution": dist, "n_categories": len(self.probs), "n_events": self.n_events}


class SubscriberView:
    """A snapshot's distribution read as a full distribution, the way the README tells.

    A named category has its published probability. The ``_other`` mass is spread over the
    categories the snapshot does not name in proportion to the population distribution
    (``population``: the population snapshot's ``distribution``; a category it does not name
    gets an even share of its ``_other`` over its ``n_categories`` minus the ones it names).

    Examples
    --------
    >>> pop = {"a": 0.5, "b": 0.25, "_other": 0.25}  # 3 categories: c has 0.25
    >>> view = SubscriberView({"b": 0.6, "_other": 0.4}, pop, n_categories=3)
    >>> [round(view.prob(c), 3) for c in "abc"]  # a and c share 0.4 as 0.5 : 0.25
    [0.267, 0.6, 0.133]
    >>> view.top()
    'b'
    """

    def __init__(
        self, distribution: Mapping[str, float], population: Mapping[str, float], n_categories: int
    ):
        self.distribution = distribution
        self.population = population
        unnamed = max(1, n_categories - sum(1 for c in population if c != OTHER))
        self._tail = population.get(OTHER, 0.0) / unnamed
        named_mass = sum(self._pop(c) for c in distribution if c != OTHER)
        rest = 1.0 - named_mass
        self._scale = distribution.get(OTHER, 0.0) / rest if rest > 1e-12 else 0.0

    def _pop(self, category: str) -> float:
        return self.population.get(category, self._tail)

    def prob(self, category: str) -> float:
        p = self.distribution.get(category)
        if p is not None and category != OTHER:
            return p
        return self._scale * self._pop(category)

    def top(self) -> str:
        """The most probable named category (ties: the name that sorts first)."""
        named = [c for c in self.distribution if c != OTHER]
        return min(named, key=lambda c: (-self.distribution[c], c))


@dataclass(frozen=True)
class SnapshotScore:
    """How well frozen snapshots predict their users' later events (see :func:`score_snapshots`).

    Examples
    --------
    >>> later = [{"user_id": "u", "categories": ["a"]}, {"user_id": "u", "categories": ["b"]},
    ...          {"user_id": "v", "categories": ["a"]}]  # v has no snapshot: not scored
    >>> score_snapshots({"u": {"a": 0.5, "_other": 0.5}}, {"a": 0.5, "b": 0.5}, 2, later)
    SnapshotScore(nll=0.6931, n_events=2, hits=1, n_users=1)
    """

    nll: float
    n_events: int
    hits: int
    n_users: int


def score_snapshots(
    distributions: Mapping[str, Mapping[str, float]],
    population: Mapping[str, float],
    n_categories: int,
    later: Sequence[Mapping],
) -> SnapshotScore:
    """Score each user's ``later`` events with their snapshot, as a subscriber would.

    NLL (floor 1e-9, averaged over an item's categories) over every later event of a user
    with a snapshot; Hit@1 on each such user's next event (the snapshot's top category is one
    of the item's).

    >>> later = [{"user_id": "u", "categories": ["a"]}, {"user_id": "u", "categories": ["c"]}]
    >>> s = score_snapshots({"u": {"a": 0.5, "_other": 0.5}}, {"a": 0.5, "c": 0.5}, 2, later)
    >>> round(s.nll, 4), s.hits, s.n_users  # -(log 0.5 + log 0.5) / 2
    (0.6931, 1, 1)
    """
    views = {u: SubscriberView(d, population, n_categories) for u, d in distributions.items() if d}
    total, n, hits, seen = 0.0, 0, 0, set()
    for e in later:
        view = views.get(e["user_id"])
        if view is None:
            continue
        cats = list(e["categories"])
        total -= sum(math.log(max(view.prob(c), FLOOR)) for c in cats) / len(cats)
        n += 1
        if e["user_id"] not in seen:
            seen.add(e["user_id"])
            hits += view.top() in cats
    return SnapshotScore(total / max(1, n), n, hits, len(seen))
