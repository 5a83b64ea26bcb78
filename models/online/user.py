"""Online interest estimators with River's API.

``UserInterest`` keeps one user's time-decayed category masses at two horizons (short- and
long-term), sparse (top categories plus a residual), and an interest-drift detector on the
user's surprise. ``PopulationInterest`` is the decayed population distribution used as the
smoothing prior and for cold-start users. ``NextCategoryClassifier`` is a global River
classifier of the next category from a user's state.

Event time drives decay, never arrival time, and an estimator's whole state is a plain dict
(``state`` / ``from_state``) so it can live in a Faust table and be replayed offline exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from river import base, drift, naive_bayes

from models.schema import DEFAULT_EVENT_WEIGHTS, OTHER, canonical_event_type


@dataclass(frozen=True)
class InterestConfig:
    """Parameters of the online estimators (one frozen object, shared by all users).

    Half-lives are in seconds of event time: event time drives decay. Each horizon may also
    decay per event of the user (``*_event_half_life``, in the user's events; 0 turns it
    off), so a burst of events (a session, a day of ratings after a year away) does not
    outweigh all that came before, however little event time it spans. That count is the
    order in which events arrive: a late event is decayed by its own time, but counted as
    the user's latest. ``prior_strength`` is the Dirichlet pseudo-count of the population
    prior (in events, as the user's masses are) when a prior is given: the next-event
    prediction. Without one (the user's own distribution, the published snapshot) the
    pseudo-count is ``other_strength``, held as ``_other``, so that a user with a handful of
    events is shown their categories rather than mostly ``_other``. ``max_categories`` bounds
    each horizon's sparse state. ``population_smoothing`` is the pseudo-count every category
    of a known vocabulary gets in the dense prior (``PopulationInterest.predict_dense``).

    The defaults were chosen on the first 60% of the taobao-head and ml-latest-small event
    streams (the evaluation protocol run on that slice); see the README's configuration.
    """

    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    short_half_life: float = 3600.0
    long_half_life: float = 90 * 86400.0
    short_event_half_life: float = 5.0
    long_event_half_life: float = 20.0
    short_weight: float = 0.5
    drift_short_weight: float = 0.8
    drift_settle_events: int = 10
    prior_strength: float = 5.0
    other_strength: float = 1.0
    max_categories: int = 24
    population_half_life: float = 30 * 86400.0
    population_max_categories: int = 100_000
    population_smoothing: float = 1.0
    other_spread: float = 100.0
    drift_threshold: float = 8.0
    drift_delta: float = 0.5
    drift_min_instances: int = 8

    def weight(self, event: Mapping) -> float:
        """The event's weight: its explicit ``weight`` or its type's default."""
        w = event.get("weight")
        if w is not None:
            return float(w)
        return float(
            self.event_weights.get(canonical_event_type(event.get("event_type", "view")), 1.0)
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["event_weights"] = dict(self.event_weights)
        return d


def _labels(x: Mapping, y) -> list:
    """The categories an event counts for: ``y`` when given (one label or several), else x's."""
    if y is None:
        return list(x["categories"])
    return list(y) if isinstance(y, list | tuple) else [y]


# Masses are stored relative to a reference time r: an event of weight w at time t adds
# w * 2**((t - r) / half_life), so nothing needs decaying per event and late events need no
# special case. The real mass at time T is the stored one times 2**(-(T - r) / half_life).
# When the exponent grows large the masses are rebased to a new r (rare, O(categories)).
REBASE_EXPONENT = 30.0


def _rescale(masses: dict[str, float], residual: float, factor: float) -> float:
    for c in masses:
        masses[c] *= factor
    return residual * factor


def _add(
    masses: dict[str, float], residual: float, cats: Sequence[str], w: float, cap: int
) -> float:
    share = w / len(cats)
    for c in cats:
        masses[c] = masses.get(c, 0.0) + share
    while len(masses) > cap:
        smallest = min(masses, key=lambda k: (masses[k], k))
        residual += masses.pop(smallest)
    return residual


def _smoothed(
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


class SurpriseDrift(drift.PageHinkley):
    """Page-Hinkley test on a user's surprise, whose state is a small list of floats.

    Examples
    --------
    >>> d = SurpriseDrift(min_instances=5, delta=0.1, threshold=3.0)
    >>> flags = [d.update(x) or d.drift_detected for x in [1.0] * 20 + [6.0] * 5]
    >>> flags.index(True)
    20
    """

    def __init__(
        self, min_instances: int = 8, delta: float = 0.5, threshold: float = 8.0, alpha: float = 1.0
    ):
        super().__init__(min_instances, delta, threshold, alpha, mode="up")

    def get_state(self) -> list[float]:
        m = self._x_mean
        return [m.n, m.get(), self._sum_increase, self._min_increase, float(self.drift_detected)]

    def set_state(self, state: Sequence[float]) -> SurpriseDrift:
        n, mean, s, lo, detected = state
        self._x_mean.n, self._x_mean._mean = n, mean
        self._sum_increase, self._min_increase = s, lo
        self._drift_detected = bool(detected)
        return self


class UserInterest(base.Classifier):
    """One user's time-decayed interest distribution over categories (River API).

    ``learn_one(x)`` takes an event dict (``categories``, ``event_type``, ``ts``, optional
    ``weight``); ``y``, when given, replaces its categories. ``predict_proba_one(x, prior)``
    returns the distribution at the latest event time, smoothed toward ``prior`` (the
    population distribution); without a prior the smoothing mass is reported as ``_other``.

    Parameters
    ----------
    config
        The shared ``InterestConfig``; default settings when omitted.

    Examples
    --------
    >>> u = UserInterest()
    >>> u.learn_one({"categories": ["shoes"], "event_type": "view", "ts": 0.0})
    >>> u.learn_one({"categories": ["shoes", "bags"], "event_type": "purchase", "ts": 60.0})
    >>> p = u.predict_proba_one({}, prior={"shoes": 0.2, "bags": 0.3, "hats": 0.5})
    >>> max(p, key=p.get), round(sum(p.values()), 9)
    ('shoes', 1.0)
    >>> u.n_events, round(u.predict_proba_one({})["_other"], 3)
    (2, 0.256)
    """

    def __init__(self, config: InterestConfig | None = None):
        self.config = config
        self._cfg = config or InterestConfig()
        self._t: float | None = None
        self._r: float | None = None
        self._nr = 0  # the event count at the reference point
        self._n = 0
        self._short: dict[str, float] = {}
        self._long: dict[str, float] = {}
        self._short_res = 0.0
        self._long_res = 0.0
        self._drift = SurpriseDrift(
            self._cfg.drift_min_instances, self._cfg.drift_delta, self._cfg.drift_threshold
        )
        self._since_drift = -1  # events since the last detected shift; -1: none yet
        self._drift_now = False
        self._own: dict[str, float] | None = None  # cached own distribution, not state

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def n_events(self) -> int:
        return self._n

    @property
    def last_ts(self) -> float | None:
        return self._t

    @property
    def drift_detected(self) -> bool:
        """Whether the last learned event was detected as an interest shift."""
        return self._drift_now

    def short_weight(self) -> float:
        """Weight of the short-term horizon: raised after a shift, relaxing as it settles."""
        cfg = self._cfg
        if self._since_drift < 0 or self._since_drift >= cfg.drift_settle_events:
            return cfg.short_weight
        frac = self._since_drift / cfg.drift_settle_events
        return cfg.drift_short_weight + (cfg.short_weight - cfg.drift_short_weight) * frac

    def surprise(self, categories: Sequence[str], p: Mapping[str, float] | None = None) -> float:
        """``-log p`` of the categories under the user's own distribution (before learning)."""
        if self._n == 0:
            return 0.0
        p = self.predict_proba_one({}) if p is None else p
        other = p[OTHER] / self._cfg.other_spread
        return -sum(math.log(max(p.get(c, other), 1e-9)) for c in categories) / len(categories)

    def learn_one(self, x: dict, y: str | Sequence[str] | None = None) -> None:
        before = self.own_distribution() if self._n else None
        self._learn(x, _labels(x, y), before)

    def learn_and_predict(self, x: dict) -> tuple[dict[str, float], float]:
        """Learn one event; return the distribution after it and how far it moved.

        The move is the total variation between the distributions before and after (1.0 for
        a user's first event). The distribution is cached until the next event, so a stream
        of events costs one prediction each. Treat the returned dict as read-only.
        """
        before = self.own_distribution() if self._n else None
        self._learn(x, _labels(x, None), before)
        after = self.own_distribution()
        if before is None:
            return after, 1.0
        moved = 0.0
        for c, p in after.items():
            moved += abs(p - before.get(c, 0.0))
        for c, p in before.items():
            if c not in after:
                moved += p
        return after, 0.5 * moved

    def own_distribution(self) -> dict[str, float]:
        """``predict_proba_one({})`` (no prior: the smoothing mass as ``_other``), cached
        until the next event. Treat it as read-only."""
        if self._own is None:
            self._own = self._predict_own()
        return self._own

    def _predict_own(self) -> dict[str, float]:
        if self._n == 0:
            return {OTHER: 1.0}
        a_short, a_long = self._alphas(False)
        ws = self.short_weight()
        t_short = sum(self._short.values()) + self._short_res + a_short
        t_long = sum(self._long.values()) + self._long_res + a_long
        out = {c: (1.0 - ws) * (m / t_long) for c, m in self._long.items()}
        for c, m in self._short.items():
            out[c] = out.get(c, 0.0) + ws * (m / t_short)
        out[OTHER] = (1.0 - ws) * ((self._long_res + a_long) / t_long) + ws * (
            (self._short_res + a_short) / t_short
        )
        return out

    def _learn(self, x: dict, cats: list, before: Mapping[str, float] | None) -> None:
        cfg = self._cfg
        self._own = None
        ts = float(x.get("ts", self._t if self._t is not None else 0.0))
        w = cfg.weight(x)
        s = self.surprise(cats, before) if before is not None else 0.0
        if self._r is None:
            self._t = self._r = ts
        elif ts > self._t:
            self._t = ts
        e_short, e_long = self._exponents(ts, self._n)
        if max(e_short, e_long) > REBASE_EXPONENT:
            self._short_res = _rescale(self._short, self._short_res, 0.5**e_short)
            self._long_res = _rescale(self._long, self._long_res, 0.5**e_long)
            self._r, self._nr = ts, self._n
            e_short = e_long = 0.0
        ws = w * 2.0**e_short
        wl = w * 2.0**e_long
        self._short_res = _add(self._short, self._short_res, cats, ws, cfg.max_categories)
        self._long_res = _add(self._long, self._long_res, cats, wl, cfg.max_categories)
        self._n += 1
        if self._n > 1:
            self._drift.update(s)
        self._drift_now = self._drift.drift_detected
        if self._drift_now:
            self._since_drift = 0
        elif self._since_drift >= 0:
            self._since_drift += 1

    def _exponents(self, ts: float, k: int) -> tuple[float, float]:
        """log2 of the stored weight, per horizon, of an event at time ``ts`` that is the user's
        ``k``-th (0-based): event-time decay plus the optional per-event decay."""
        cfg = self._cfg
        dt = ts - self._r if self._r is not None else 0.0
        dk = k - self._nr
        e_short = dt / cfg.short_half_life
        e_long = dt / cfg.long_half_life
        if cfg.short_event_half_life > 0:
            e_short += dk / cfg.short_event_half_life
        if cfg.long_event_half_life > 0:
            e_long += dk / cfg.long_event_half_life
        return e_short, e_long

    def _alphas(self, prior: bool = True) -> tuple[float, float]:
        """The smoothing pseudo-count in each horizon's stored (reference-time) units:
        ``prior_strength`` toward a given prior, else ``other_strength`` (held as ``_other``)."""
        cfg = self._cfg
        e_short, e_long = self._exponents(self._t if self._t is not None else 0.0, self._n - 1)
        a = cfg.prior_strength if prior else cfg.other_strength
        return a * 2.0**e_short, a * 2.0**e_long

    def horizons(
        self, prior: Mapping[str, float] | None = None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The short-term and the long-term distributions, each smoothed alike."""
        a_short, a_long = self._alphas(prior is not None)
        return (
            _smoothed(self._short, self._short_res, a_short, prior),
            _smoothed(self._long, self._long_res, a_long, prior),
        )

    def predict_proba_one(self, x: dict | None = None, prior: Mapping[str, float] | None = None):
        if prior is None:
            return dict(self.own_distribution())
        if self._n == 0:
            return dict(prior)
        short, long_ = self.horizons(prior)
        ws = self.short_weight()
        out = {c: (1.0 - ws) * p for c, p in long_.items()}
        for c, p in short.items():
            out[c] = out.get(c, 0.0) + ws * p
        return out

    def predict_dense(self, prior: np.ndarray, index: Mapping[str, int]) -> np.ndarray:
        """``predict_proba_one`` smoothed toward a dense ``prior``, as a dense vector.

        ``prior`` is a distribution over a vocabulary (``index``: category -> position). The
        result equals ``predict_proba_one({}, prior=<prior as a dict>)`` laid out on that
        vocabulary (tracked categories outside it dropped), but costs one vector product plus
        a loop over the tracked categories instead of a dict over the whole vocabulary.

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["b"], "event_type": "view", "ts": 0.0})
        >>> prior = np.array([0.5, 0.25, 0.25])
        >>> dense = u.predict_dense(prior, {"a": 0, "b": 1, "c": 2})
        >>> d = u.predict_proba_one({}, prior={"a": 0.5, "b": 0.25, "c": 0.25})
        >>> bool(np.allclose(dense, [d["a"], d["b"], d["c"]]))
        True
        """
        out = np.array(prior, dtype=float)
        if self._n == 0:
            return out
        ws = self.short_weight()
        a_short, a_long = self._alphas()
        coef = 0.0
        fix: dict[int, float] = {}
        for weight, masses, res, alpha in (
            (ws, self._short, self._short_res, a_short),
            (1.0 - ws, self._long, self._long_res, a_long),
        ):
            total = sum(masses.values()) + res + alpha
            pos = [index.get(c, -1) for c in masses]
            untracked = 1.0 - sum(float(prior[i]) for i in pos if i >= 0)
            spread = res / untracked if untracked > 1e-12 else 0.0
            coef += weight * (alpha + spread) / total
            for m, i in zip(masses.values(), pos, strict=True):
                if i >= 0:
                    fix[i] = fix.get(i, 0.0) + weight * (m - spread * float(prior[i])) / total
        out *= coef
        if fix:
            idx = np.fromiter(fix.keys(), dtype=np.int64, count=len(fix))
            out[idx] += np.fromiter(fix.values(), dtype=float, count=len(fix))
        return out

    def predict_candidates(
        self, prior: Mapping[str, float], candidates: Sequence[str] = ()
    ) -> dict[str, float]:
        """``predict_proba_one({}, prior)`` on the tracked categories and ``candidates`` only.

        Every other category ``c`` would get the same multiple of ``prior[c]``; their mass
        is returned as ``_other``. So the top k of the full smoothed distribution are among the
        tracked categories and the k most probable of the prior, without a loop over the
        whole prior.

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["b"], "event_type": "view", "ts": 0.0})
        >>> prior = {"a": 0.5, "b": 0.25, "c": 0.25}
        >>> full = u.predict_proba_one({}, prior=prior)
        >>> part = u.predict_candidates(prior, ["a"])
        >>> all(abs(part[c] - full[c]) < 1e-12 for c in "ab"), round(part["_other"] - full["c"], 12)
        (True, 0.0)
        """
        out: dict[str, float] = {}
        coef = 1.0
        if self._n:
            ws = self.short_weight()
            a_short, a_long = self._alphas()
            coef = 0.0
            for weight, masses, res, alpha in (
                (ws, self._short, self._short_res, a_short),
                (1.0 - ws, self._long, self._long_res, a_long),
            ):
                total = sum(masses.values()) + res + alpha
                untracked = 1.0 - sum(prior.get(c, 0.0) for c in masses)
                spread = res / untracked if untracked > 1e-12 else 0.0
                coef += weight * (alpha + spread) / total
                for c, m in masses.items():
                    out[c] = out.get(c, 0.0) + weight * (m - spread * prior.get(c, 0.0)) / total
        for c in out:
            out[c] += coef * prior.get(c, 0.0)
        for c in candidates:
            if c not in out:
                out[c] = coef * prior.get(c, 0.0)
        out[OTHER] = max(0.0, 1.0 - sum(out.values()))
        return out

    def state(self) -> dict:
        """The whole learned state as plain data (msgpack/JSON-able)."""
        return {
            "t": self._t,
            "r": self._r,
            "nr": self._nr,
            "n": self._n,
            "s": dict(self._short),
            "l": dict(self._long),
            "sr": self._short_res,
            "lr": self._long_res,
            "d": self._drift.get_state(),
            "sd": self._since_drift,
            "dn": self._drift_now,
        }

    @classmethod
    def from_state(cls, state: Mapping, config: InterestConfig | None = None) -> UserInterest:
        """Rebuild an estimator from ``state()``; learning then goes on exactly as before."""
        u = cls(config)
        u._t, u._r, u._n = state["t"], state["r"], state["n"]
        u._nr = state.get("nr", max(0, u._n - 1))  # states from before per-event decay
        u._short, u._long = dict(state["s"]), dict(state["l"])
        u._short_res, u._long_res = state["sr"], state["lr"]
        u._drift.set_state(state["d"])
        u._since_drift, u._drift_now = state["sd"], state["dn"]
        return u

    def compact_state(self) -> list:
        """``state()`` as a flat list (categories in order, masses beside them), for records
        that are stored and sent often; ``from_compact_state`` rebuilds it."""
        return [
            self._t,
            self._r,
            self._nr,
            self._n,
            list(self._short),
            list(self._short.values()),
            list(self._long),
            list(self._long.values()),
            self._short_res,
            self._long_res,
            self._drift.get_state(),
            self._since_drift,
            self._drift_now,
        ]

    @classmethod
    def from_compact_state(
        cls, state: Sequence, config: InterestConfig | None = None
    ) -> UserInterest:
        """Rebuild an estimator from ``compact_state()``.

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["a", "b"], "event_type": "cart", "ts": 5.0})
        >>> UserInterest.from_compact_state(u.compact_state()).state() == u.state()
        True
        """
        u = cls(config)
        (u._t, u._r, u._nr, u._n, sk, sm, lk, lm, u._short_res, u._long_res, d, sd, dn) = state
        u._short, u._long = dict(zip(sk, sm, strict=True)), dict(zip(lk, lm, strict=True))
        u._drift.set_state(d)
        u._since_drift, u._drift_now = sd, bool(dn)
        return u


class PopulationInterest(base.Classifier):
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
        cats = _labels(x, y)
        ts = float(x.get("ts", self._t if self._t is not None else 0.0))
        w = cfg.weight(x)
        if self._r is None:
            self._t = self._r = ts
        elif ts > self._t:
            self._t = ts
        exponent = (ts - self._r) / cfg.population_half_life
        if exponent > REBASE_EXPONENT:
            self._res = _rescale(self._masses, self._res, 0.5**exponent)
            self._r, exponent = ts, 0.0
        w *= 2.0**exponent
        self._n += 1
        res = self._res
        self._res = _add(self._masses, self._res, cats, w, cfg.population_max_categories)
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

    @property
    def n_events(self) -> int:
        return self._n

    @property
    def last_ts(self) -> float | None:
        return self._t

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
        return {"t": self._t, "ref": self._r, "m": dict(self._masses), "r": self._res, "n": self._n}

    @classmethod
    def from_state(cls, state: Mapping, config: InterestConfig | None = None) -> PopulationInterest:
        p = cls(config)
        p._t, p._r, p._masses, p._res = state["t"], state["ref"], dict(state["m"]), state["r"]
        p._n = state.get("n", 0)  # states from before the count
        return p


def user_features(user: UserInterest, last_categories: Sequence[str], top: int = 5) -> dict:
    """Features of a user's state for the global next-category classifier."""
    feats: dict[str, float] = {}
    for c in last_categories[-3:]:
        feats[f"last={c}"] = feats.get(f"last={c}", 0.0) + 1.0
    p = user.predict_proba_one({})
    for c in sorted((c for c in p if c != OTHER), key=lambda c: -p[c])[:top]:
        feats[f"top={c}"] = round(10 * p[c])
    return feats


class NextCategoryClassifier(base.Classifier):
    """A global River classifier of a user's next category from their state.

    Wraps ``naive_bayes.MultinomialNB`` over features of the user's last categories and top
    interests. It is shared by all users, so the stream trains it on a sample of events.

    Examples
    --------
    >>> clf = NextCategoryClassifier()
    >>> for _ in range(3):
    ...     clf.learn_one({"last=a": 1.0}, "b")
    ...     clf.learn_one({"last=b": 1.0}, "a")
    >>> clf.predict_one({"last=a": 1.0})
    'b'
    """

    def __init__(self, alpha: float = 0.1):
        self.alpha = alpha
        self._nb = naive_bayes.MultinomialNB(alpha=alpha)

    @property
    def _multiclass(self) -> bool:
        return True

    @staticmethod
    def _counts(x: Mapping) -> dict:
        # Multinomial naive Bayes reads features as counts: negatives carry no evidence.
        return {k: v for k, v in x.items() if v > 0}

    def learn_one(self, x: dict, y: str | Sequence[str]) -> None:
        for c in _labels({}, y):
            self._nb.learn_one(self._counts(x), c)

    def predict_proba_one(self, x: dict) -> dict[str, float]:
        return self._nb.predict_proba_one(self._counts(x))
