"""The population's decayed category distribution: the prior and the cold-start answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from river import base

from models.online.config import InterestConfig
from models.online.masses import REBASE_EXPONENT, EventClock, add_mass, event_labels, rescale
from models.records import PopulationField


class PopulationInterest(EventClock, base.Classifier):
    """The population's decayed category distribution: the prior and the cold-start answer.

    Examples
    --------
    >>> pop = PopulationInterest()
    >>> for i, c in enumerate(["a", "a", "b"]):
    ...     pop.learn_one({"categories": [c], "event_type": "view", "ts": float(i)})
    >>> {c: round(p, 2) for c, p in sorted(pop.predict_proba_one({}).items())}
    {'a': 0.67, 'b': 0.33}
    """

    def __init__(self, config: InterestConfig | None = None):
        self.config = config
        self._cfg = config or InterestConfig()
        self._t: float | None = None
        self._r: float | None = None
        self._masses: dict[str, float] = {}
        self._res = 0.0
        self._n = 0
        self._dense_index: Mapping[str, int] | None = None  # predict_dense's cache, not state
        self._dense_keys: list[str] = []
        self._dense_pos = np.zeros(0, dtype=np.int64)

    @property
    def _multiclass(self) -> bool:
        return True

    def learn_one(self, x: dict, y: str | Sequence[str] | None = None) -> None:
        cfg = self._cfg
        cats = event_labels(x, y)
        ts = float(x.get("ts", self._t if self._t is not None else 0.0))
        w = cfg.weight(x)
        if self._r is None:
            self._t = self._r = ts
        elif ts > self._t:
            self._t = ts
        exponent = (ts - self._r) / cfg.population_half_life
        if exponent > REBASE_EXPONENT:
            self._res = rescale(self._masses, self._res, 0.5**exponent)
            self._r, exponent = ts, 0.0
        w *= 2.0**exponent
        self._n += 1
        res = self._res
        self._res = add_mass(self._masses, self._res, cats, w, cfg.population_max_categories)
        if self._res != res:  # a category was evicted: predict_dense's positions are stale
            self._dense_keys, self._dense_index = [], None

    def predict_proba_one(self, x: dict | None = None) -> dict[str, float]:
        total = sum(self._masses.values())
        if total <= 0:
            return {}
        return {c: m / total for c, m in self._masses.items()}

    def predict_dense(self, index: Mapping[str, int]) -> np.ndarray:
        """The prior over a known vocabulary (``index``: category -> position), smoothed.

        Each category gets ``population_smoothing`` pseudo-events on top of its decayed mass
        (in event-weight units at the latest event time), so none is ever zero: as the
        popularity baseline's ``(n_c + s) / (N + s C)``. Categories outside ``index`` are left
        out. The positions of the tracked categories are cached between calls.

        >>> pop = PopulationInterest()
        >>> pop.learn_one({"categories": ["a"], "event_type": "view", "ts": 0.0})
        >>> pop.predict_dense({"a": 0, "b": 1}).round(4).tolist()  # (1 + s, s) / (1 + 2 s), s = 1
        [0.6667, 0.3333]
        """
        out = np.full(len(index), self._cfg.population_smoothing)
        keys = self._dense_keys
        if self._dense_index is not index:
            self._dense_index, keys = index, []
        if len(keys) < len(self._masses):  # new categories are appended to the dict
            keys = keys + list(self._masses)[len(keys) :]
            self._dense_pos = np.array([index.get(c, -1) for c in keys], dtype=np.int64)
            self._dense_keys = keys
        if keys:
            masses = np.fromiter(self._masses.values(), dtype=float, count=len(keys))
            now = 0.0 if self._t is None else (self._t - self._r) / self._cfg.population_half_life
            known = self._dense_pos >= 0
            out[self._dense_pos[known]] += masses[known] * 2.0**-now
        return out / out.sum()

    def predict_smoothed(self) -> dict[str, float]:
        """``predict_dense`` over the categories seen so far, as a dict (the stream's prior)."""
        if not self._masses:
            return {}
        now = 0.0 if self._t is None else (self._t - self._r) / self._cfg.population_half_life
        masses = np.fromiter(self._masses.values(), dtype=float, count=len(self._masses))
        dense = masses * 2.0**-now + self._cfg.population_smoothing
        dense /= dense.sum()
        return dict(zip(self._masses, dense.tolist(), strict=True))

    def state(self) -> dict:
        """The learned state as plain data, keyed as :class:`~models.records.PopulationField`."""
        F = PopulationField
        return {
            F.LAST_TS: self._t,
            F.REFERENCE: self._r,
            F.MASSES: dict(self._masses),
            F.RESIDUAL: self._res,
            F.N_EVENTS: self._n,
        }

    @classmethod
    def from_state(cls, state: Mapping, config: InterestConfig | None = None) -> PopulationInterest:
        F = PopulationField
        p = cls(config)
        p._t, p._r = state[F.LAST_TS], state[F.REFERENCE]
        p._masses, p._res = dict(state[F.MASSES]), state[F.RESIDUAL]
        p._n = state.get(F.N_EVENTS, 0)  # states from before the count
        return p


def merged_distribution(states: Iterable[Mapping], half_life: float) -> dict[str, float]:
    """The mass-weighted distribution of several ``PopulationInterest.state()`` dicts (one per
    partition), every state's masses decayed to the latest event time among them.

    Examples
    --------
    >>> a, b = PopulationInterest(), PopulationInterest()
    >>> a.learn_one({"categories": ["x"], "event_type": "view", "ts": 0.0})
    >>> b.learn_one({"categories": ["y"], "event_type": "view", "ts": 10.0})
    >>> {c: round(p, 3) for c, p in merged_distribution([a.state(), b.state()], 10.0).items()}
    {'x': 0.333, 'y': 0.667}
    """
    F = PopulationField
    states = list(states)
    if not states:
        return {}
    t_max = max(s[F.LAST_TS] or 0.0 for s in states)
    merged: dict[str, float] = {}
    residual = 0.0
    for s in states:
        ref = s.get(F.REFERENCE, s[F.LAST_TS]) or 0.0
        factor = 0.5 ** ((t_max - ref) / half_life)
        for c, m in s[F.MASSES].items():
            merged[c] = merged.get(c, 0.0) + m * factor
        residual += s.get(F.RESIDUAL, 0.0) * factor
    total = sum(merged.values()) + residual
    if total <= 0:
        return {}
    return {c: m / total for c, m in merged.items()}
