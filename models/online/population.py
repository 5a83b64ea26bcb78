"""The population's decayed category distribution: the prior and the cold-start answer.

The population is tracked at two horizons, a long one (``population_half_life``) and a short
one (``population_short_half_life``): what is popular lately and what is popular at all. Which
one serves new users better depends on the log (trends over days on a shop's log, a catalog
that barely moves on a log of film ratings spread over years), so the mixture weight is
learned online: each horizon is scored by its log-loss on the events of users with fewer than
``population_cold_events`` earlier events (the events the prior answers nearly alone), the
scores forget with a memory of ``population_mix_memory`` scored events, and the short
horizon's weight is ``sigmoid(score_long - score_short)``: its posterior probability as the
better model of new users' next categories (Bayesian model averaging with forgetting).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from river import base

from models.online.config import InterestConfig
from models.online.masses import (
    REBASE_EXPONENT,
    CountsFields,
    EventClock,
    PopulationFields,
    accelerated,
    add_mass,
    event_labels,
    rescale,
)
from models.records import PopulationField


class DecayedCounts(CountsFields):
    """Category masses decayed with one half-life (event time), with their running total.

    Masses are stored relative to the reference time ``ref`` (see ``models.online.masses``);
    ``total`` is their sum plus the residual of evicted categories, kept as events arrive so
    that one category's probability costs O(1).

    >>> counts = DecayedCounts(10.0)
    >>> counts.add(["a"], 1.0, 0.0, 100)
    >>> counts.add(["b"], 1.0, 10.0, 100)  # a has halved by t = 10
    >>> p_b, p_c = (math.exp(-counts.log_loss([c], 10.0, s)) for c, s in (("b", 0.0), ("c", 1.0)))
    >>> round(p_b, 3), round(p_c, 3)  # 1 / 1.5; 1 / (1.5 + 3 pseudo-events)
    (0.667, 0.222)
    """

    # CountsFields holds them when built (slots of these names would hide its fields)
    __slots__ = (
        ()
        if CountsFields is not object
        else ("half_life", "masses", "residual", "ref", "total", "_dense_index", "_dense")
    )

    def __init__(self, half_life: float):
        self.half_life = half_life
        self.masses: dict[str, float] = {}
        self.residual = 0.0
        self.ref: float | None = None
        self.total = 0.0
        self._dense_index: Mapping[str, int] | None = None  # dense()'s cache, not state
        self._dense: tuple[list[str], np.ndarray] = ([], np.zeros(0, dtype=np.int64))

    def __reduce__(self) -> tuple:
        state = (self.half_life, dict(self.masses), self.residual, self.ref, self.total)
        return restored_counts, state

    def add(self, cats: Sequence[str], w: float, ts: float, cap: int) -> None:
        """Add an event of weight ``w`` at time ``ts`` to ``cats`` (split evenly)."""
        if self.ref is None:
            self.ref = ts
        exponent = (ts - self.ref) / self.half_life
        if exponent > REBASE_EXPONENT:
            factor = 0.5**exponent
            self.residual = rescale(self.masses, self.residual, factor)
            self.total *= factor
            self.ref, exponent = ts, 0.0
        w *= 2.0**exponent
        self.total += w
        before = self.residual
        self.residual = add_mass(self.masses, self.residual, cats, w, cap)
        if self.residual != before:  # a category was evicted: dense()'s positions are stale
            self._dense_index = None

    def decay(self, now: float | None) -> float:
        """The factor from stored masses to masses at time ``now``."""
        if now is None or self.ref is None:
            return 1.0
        return 2.0 ** (-(now - self.ref) / self.half_life)

    def log_loss(self, cats: Sequence[str], now: float | None, smoothing: float) -> float:
        """Mean ``-log p`` of ``cats`` at ``now``, each category seen (and the one asked
        about) with ``smoothing`` pseudo-events."""
        d = self.decay(now)
        seen = self.total * d + smoothing * len(self.masses)
        get = self.masses.get
        loss = 0.0
        for c in cats:
            m = get(c)
            loss -= math.log(
                (m * d + smoothing) / seen if m is not None else smoothing / (seen + smoothing)
            )
        return loss / len(cats)

    def dense(self, index: Mapping[str, int], now: float | None, smoothing: float) -> np.ndarray:
        """The smoothed distribution over a vocabulary (``index``: category -> position),
        ``smoothing`` pseudo-events per category of it; positions are cached between calls."""
        out = np.full(len(index), smoothing)
        keys, pos = self._dense
        if self._dense_index is not index:
            self._dense_index, keys = index, []
        if len(keys) < len(self.masses):  # new categories are appended to the dict
            keys = keys + list(self.masses)[len(keys) :]
            pos = np.array([index.get(c, -1) for c in keys], dtype=np.int64)
            self._dense = (keys, pos)
        if keys:
            masses = np.fromiter(self.masses.values(), dtype=float, count=len(keys))
            known = pos >= 0
            out[pos[known]] += masses[known] * self.decay(now)
        return out / out.sum()

    def smoothed(self, now: float | None, smoothing: float) -> dict[str, float]:
        """``dense`` over the categories seen, as a dict."""
        if not self.masses:
            return {}
        masses = np.fromiter(self.masses.values(), dtype=float, count=len(self.masses))
        dense = masses * self.decay(now) + smoothing
        dense /= dense.sum()
        return dict(zip(self.masses, dense.tolist(), strict=True))

    def load(self, masses: Mapping[str, float], residual: float, ref: float | None) -> None:
        self.masses, self.residual, self.ref = dict(masses), residual, ref
        self.total = sum(self.masses.values()) + residual
        self._dense_index = None


def restored_counts(
    half_life: float, masses: dict[str, float], residual: float, ref: float | None, total: float
) -> DecayedCounts:
    """A ``DecayedCounts`` with the state it pickled (``__reduce__``); its caches empty."""
    counts = DecayedCounts(half_life)
    counts.masses, counts.residual, counts.ref, counts.total = masses, residual, ref, total
    return counts


class PopulationInterest(EventClock, base.Classifier, PopulationFields):
    """The population's decayed category distribution: the prior and the cold-start answer.

    ``learn_one(x, user_events=k)``: ``k`` is how many earlier events the event's user has;
    an event of a user with fewer than ``population_cold_events`` of them scores the two
    horizons before it is learned (without ``k`` it scores nothing).

    Examples
    --------
    >>> pop = PopulationInterest()
    >>> for i, c in enumerate(["a", "a", "b"]):
    ...     pop.learn_one({"categories": [c], "event_type": "view", "ts": float(i)})
    >>> {c: round(p, 2) for c, p in sorted(pop.predict_proba_one({}).items())}
    {'a': 0.67, 'b': 0.33}

    New users follow today's trend here, so the short horizon wins the mixture:

    >>> cfg = InterestConfig(population_short_half_life=10.0)
    >>> pop = PopulationInterest(cfg)
    >>> for day in range(5):
    ...     for i in range(100):
    ...         x = {"categories": [f"trend{day}"], "event_type": "view", "ts": day * 1e3 + i}
    ...         pop.learn_one(x, user_events=0)
    >>> round(pop.short_weight(), 2)
    1.0
    """

    def __init__(self, config: InterestConfig | None = None):
        self.config = config
        self._cfg = cfg = config or InterestConfig()
        self._t: float | None = None
        self._n = 0
        self._long = DecayedCounts(cfg.population_half_life)
        # A short horizon that is not shorter than the long one is off.
        self._two = 0 < cfg.population_short_half_life < cfg.population_half_life
        self._short = DecayedCounts(cfg.population_short_half_life if self._two else 1.0)
        self._scores = [0.0, 0.0]  # decayed log-loss of the long and the short horizon

    @property
    def _multiclass(self) -> bool:
        return True

    def __reduce__(self) -> tuple:
        return type(self).from_state, (self.state(), self.config)

    def short_weight(self) -> float:
        """The short horizon's weight in the mixture (0 when it is off)."""
        if not self._two or not self._short.masses:
            return 0.0
        z = self._scores[0] - self._scores[1]
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def learn_one(
        self, x: dict, y: str | Sequence[str] | None = None, *, user_events: int | None = None
    ) -> None:
        if y is None and type(self) is PopulationInterest:  # the C definition's class only
            learn_population(self, x, user_events)
        else:
            self._learn(x, event_labels(x, y), user_events)

    def _learn(self, x: dict, cats: list, user_events: int | None) -> None:
        cfg = self._cfg
        ts = float(x.get("ts", self._t if self._t is not None else 0.0))
        cold = user_events is not None and user_events < cfg.population_cold_events
        if self._two and cold and self._n:
            self._score(cats)
        if self._t is None or ts > self._t:
            self._t = ts
        w = cfg.weight(x)
        self._n += 1
        cap = cfg.population_max_categories
        self._long.add(cats, w, ts, cap)
        if self._two:
            self._short.add(cats, w, ts, cap)

    def _score(self, cats: Sequence[str]) -> None:
        """Add each horizon's log-loss on ``cats`` to its score (the older scores fade)."""
        cfg = self._cfg
        keep = 1.0 - 1.0 / cfg.population_mix_memory
        s, t = cfg.population_smoothing, self._t
        self._scores[0] = keep * self._scores[0] + self._long.log_loss(cats, t, s)
        self._scores[1] = keep * self._scores[1] + self._short.log_loss(cats, t, s)

    def _mix(self, long_: Mapping[str, float], short: Mapping[str, float]) -> dict[str, float]:
        w = self.short_weight()
        if w == 0.0:
            return dict(long_)
        out = {c: (1.0 - w) * p for c, p in long_.items()}
        for c, p in short.items():
            out[c] = out.get(c, 0.0) + w * p
        return out

    def predict_proba_one(self, x: dict | None = None) -> dict[str, float]:
        parts = []
        for counts in (self._long, self._short):
            total = sum(counts.masses.values())
            parts.append({c: m / total for c, m in counts.masses.items()} if total > 0 else {})
        return self._mix(*parts) if parts[0] else {}

    def predict_dense(self, index: Mapping[str, int]) -> np.ndarray:
        """The prior over a known vocabulary (``index``: category -> position), smoothed.

        Each category gets ``population_smoothing`` pseudo-events on top of its decayed mass
        (in event-weight units at the latest event time), in each horizon, so none is ever
        zero: as the popularity baseline's ``(n_c + s) / (N + s C)``. Categories outside
        ``index`` are left out.

        >>> pop = PopulationInterest()
        >>> pop.learn_one({"categories": ["a"], "event_type": "view", "ts": 0.0})
        >>> pop.predict_dense({"a": 0, "b": 1}).round(4).tolist()  # (1 + s, s) / (1 + 2 s), s = 1
        [0.6667, 0.3333]
        """
        s = self._cfg.population_smoothing
        out = self._long.dense(index, self._t, s)
        w = self.short_weight()
        if w > 0.0:
            out = (1.0 - w) * out + w * self._short.dense(index, self._t, s)
        return out

    def predict_smoothed(self) -> dict[str, float]:
        """``predict_dense`` over the categories seen so far, as a dict (the stream's prior)."""
        s = self._cfg.population_smoothing
        long_ = self._long.smoothed(self._t, s)
        if not long_ or self.short_weight() == 0.0:
            return long_
        return self._mix(long_, self._short.smoothed(self._t, s))

    def mass_at(self, now: float) -> float:
        """The long horizon's total mass (events' weights, decayed) at time ``now``."""
        return self._long.total * self._long.decay(now)

    def state(self) -> dict:
        """The learned state as plain data, keyed as :class:`~models.records.PopulationField`
        (the short horizon's keys only when it is on)."""
        F = PopulationField
        state = {
            F.LAST_TS: self._t,
            F.REFERENCE: self._long.ref,
            F.MASSES: dict(self._long.masses),
            F.RESIDUAL: self._long.residual,
            F.N_EVENTS: self._n,
        }
        if self._two:
            state[F.SHORT_REFERENCE] = self._short.ref
            state[F.SHORT_MASSES] = dict(self._short.masses)
            state[F.SHORT_RESIDUAL] = self._short.residual
            state[F.SCORES] = list(self._scores)
        return state

    @classmethod
    def from_state(cls, state: Mapping, config: InterestConfig | None = None) -> PopulationInterest:
        """Rebuild from ``state()``. A state without the short horizon (from before it, or
        written with it off) starts it as the long one's masses, scored even: the prior does
        not jump."""
        F = PopulationField
        p = cls(config)
        p._t = state[F.LAST_TS]
        p._n = state.get(F.N_EVENTS, 0)  # states from before the count
        p._long.load(state[F.MASSES], state[F.RESIDUAL], state[F.REFERENCE])
        if not p._two:
            return p
        if state.get(F.SHORT_MASSES):
            p._short.load(state[F.SHORT_MASSES], state[F.SHORT_RESIDUAL], state[F.SHORT_REFERENCE])
            p._scores = [float(v) for v in state[F.SCORES]]
        elif p._long.masses:  # the long horizon's masses as of the latest event
            d = p._long.decay(p._t)
            masses = {c: m * d for c, m in p._long.masses.items()}
            p._short.load(masses, p._long.residual * d, p._t)
        return p


@accelerated
def learn_population(pop: PopulationInterest, x: dict, user_events: int | None) -> None:
    """``pop.learn_one(x, user_events=user_events)``'s definition (``x``'s own categories).

    The C definition (``models/_masses.c``) reads and writes the population's and its two
    ``DecayedCounts``' attributes as the methods called here do; it takes events with a float
    ``ts`` and a type the weights name (else TypeError before anything changes, and this
    definition runs). ``tests/unit/test_masses_c.py`` checks the two leave the same state.

    >>> pop = PopulationInterest()
    >>> learn_population(pop, {"categories": ["a"], "event_type": "view", "ts": 1.0}, 0)
    >>> pop.n_events, pop.predict_proba_one()
    (1, {'a': 1.0})
    """
    pop._learn(x, event_labels(x, None), user_events)


def merged_distribution(
    states: Iterable[Mapping], config: InterestConfig | None = None
) -> dict[str, float]:
    """The distribution of several ``PopulationInterest.state()`` dicts (one per partition):
    each partition's own (its horizons mixed, as its prior is), weighted by its long-horizon
    mass decayed to the latest event time among them.

    Examples
    --------
    >>> cfg = InterestConfig(population_half_life=10.0)
    >>> a, b = PopulationInterest(cfg), PopulationInterest(cfg)
    >>> a.learn_one({"categories": ["x"], "event_type": "view", "ts": 0.0})
    >>> b.learn_one({"categories": ["y"], "event_type": "view", "ts": 10.0})
    >>> {c: round(p, 3) for c, p in merged_distribution([a.state(), b.state()], cfg).items()}
    {'x': 0.333, 'y': 0.667}
    """
    F = PopulationField
    states = list(states)
    if not states:
        return {}
    t_max = max(s[F.LAST_TS] or 0.0 for s in states)
    merged: dict[str, float] = {}
    total = 0.0
    for state in states:
        pop = PopulationInterest.from_state(state, config)
        weight = pop.mass_at(t_max)
        total += weight
        for c, p in pop.predict_proba_one().items():
            merged[c] = merged.get(c, 0.0) + weight * p
    if total <= 0:
        return {}
    return {c: m / total for c, m in merged.items()}
