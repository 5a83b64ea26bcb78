"""One user's interest distribution, River-style.

``UserInterest`` keeps one user's time-decayed category masses at two horizons (short- and
long-term), sparse (top categories plus a residual), and an interest-drift detector on the
user's surprise.

Event time drives decay, never arrival time, and an estimator's whole state is a plain dict
(``state`` / ``from_state``) so it can live in a Faust table and be replayed offline exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from river import base

from models.online.config import InterestConfig
from models.online.drift import SurpriseDrift
from models.online.masses import (
    REBASE_EXPONENT,
    EventClock,
    Horizons,
    InterestFields,
    accelerated,
    add_mass,
    entropy,
    event_labels,
    mean_surprise,
    mix_horizons,
    rank_smoothed,
    rescale,
    smoothed,
    smoothed_tracked,
    snapshot_tops,
    top_k,
    top_smoothed,
    total_variation,
)
from models.schema import OTHER


class UserInterest(EventClock, base.Classifier, InterestFields):
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
        self._attach(config)
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

    def _attach(self, config: InterestConfig | None) -> None:
        """The configuration, and empty caches (valid until the next event, not state): the
        own distribution, its top k, and each horizon's stored-units scale (2 ** exponent) at
        the latest event."""
        self.config = config
        self._cfg = config or InterestConfig()
        self._own: dict[str, float] | None = None
        self._own_top: tuple[int, dict[str, float]] | None = None
        self._scales: tuple[float, float] | None = None

    @property
    def _multiclass(self) -> bool:
        return True

    def __reduce__(self) -> tuple:
        return type(self).from_compact_state, (self.compact_state(), self.config)

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
        return mean_surprise(p, categories, self._cfg.other_spread)

    def learn_one(self, x: dict, y: str | Sequence[str] | None = None) -> None:
        before = self.own_distribution() if self._n else None
        self._learn(x, event_labels(x, y), before)

    def learn_and_predict(self, x: dict) -> tuple[dict[str, float], float]:
        """Learn one event; return the distribution after it and how far it moved.

        The move is the total variation between the distributions before and after (1.0 for
        a user's first event). The distribution is cached until the next event, so a stream
        of events costs one prediction each. Treat the returned dict as read-only.
        """
        if type(self) is not UserInterest:  # the C definition knows this class's methods only
            return learn_event.python(self, x)
        return learn_event(self, x)

    def own_distribution(self) -> dict[str, float]:
        """``predict_proba_one({})`` (no prior: the smoothing mass as ``_other``), cached
        until the next event. Treat it as read-only."""
        if self._own is None:
            self._own = self._predict_own()
        return self._own

    def own_top(self, k: int) -> dict[str, float]:
        """``top_k(own_distribution(), k)``, cached until the next event. Treat it as
        read-only.

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["a", "b"], "event_type": "view", "ts": 0.0})
        >>> u.own_top(1) == top_k(u.own_distribution(), 1)
        True
        """
        cached = self._own_top
        if cached is None or cached[0] != k:
            cached = self._own_top = (k, top_k(self.own_distribution(), k))
        return cached[1]

    def _predict_own(self) -> dict[str, float]:
        if self._n == 0:
            return {OTHER: 1.0}
        return mix_horizons(self.horizon_parts(prior=False))

    def _learn(self, x: dict, cats: list, before: Mapping[str, float] | None) -> None:
        cfg = self._cfg
        self._own = self._own_top = self._scales = None
        ts = float(x.get("ts", self._t if self._t is not None else 0.0))
        w = cfg.weight(x)
        s = self.surprise(cats, before) if before is not None else 0.0
        if self._r is None:
            self._t = self._r = ts
        elif ts > self._t:
            self._t = ts
        e_short, e_long = self._exponents(ts, self._n)
        if max(e_short, e_long) > REBASE_EXPONENT:
            self._short_res = rescale(self._short, self._short_res, 0.5**e_short)
            self._long_res = rescale(self._long, self._long_res, 0.5**e_long)
            self._r, self._nr = ts, self._n
            e_short = e_long = 0.0
        scale_short, scale_long = 2.0**e_short, 2.0**e_long
        if ts == self._t:  # the latest event: its scales are the ones _alphas computes
            self._scales = (scale_short, scale_long)
        ws = w * scale_short
        wl = w * scale_long
        self._short_res = add_mass(self._short, self._short_res, cats, ws, cfg.max_categories)
        self._long_res = add_mass(self._long, self._long_res, cats, wl, cfg.max_categories)
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
        scales = self._scales
        if scales is None:
            t = self._t if self._t is not None else 0.0
            e_short, e_long = self._exponents(t, self._n - 1)
            scales = self._scales = (2.0**e_short, 2.0**e_long)
        a = cfg.prior_strength if prior else cfg.other_strength
        return a * scales[0], a * scales[1]

    def horizons(
        self, prior: Mapping[str, float] | None = None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The short-term and the long-term distributions, each smoothed alike."""
        a_short, a_long = self._alphas(prior is not None)
        return (
            smoothed(self._short, self._short_res, a_short, prior),
            smoothed(self._long, self._long_res, a_long, prior),
        )

    def predict_proba_one(
        self, x: dict | None = None, prior: Mapping[str, float] | None = None
    ) -> dict[str, float]:
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
        out, coef = self.smoothing(prior)
        for c in candidates:
            if c not in out:
                out[c] = coef * prior.get(c, 0.0)
        out[OTHER] = max(0.0, 1.0 - sum(out.values()))
        return out

    def predict_top(
        self, prior: Mapping[str, float], ranked: Sequence[str], k: int
    ) -> dict[str, float]:
        """The ``k`` most probable categories of ``predict_proba_one({}, prior)``, the rest as
        ``_other`` (``ranked``: the prior's categories, most probable first, at least ``k``
        more than the tracked ones or all of them): ``top_k`` of ``predict_candidates(prior,
        ranked)`` without building it (only the first ``k`` untracked ones can rank).

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["b"], "event_type": "view", "ts": 0.0})
        >>> prior = {"a": 0.5, "b": 0.25, "c": 0.25}
        >>> from models.online.masses import top_k
        >>> u.predict_top(prior, ["a", "b", "c"], 2) == top_k(u.predict_proba_one({}, prior), 2)
        True
        """
        out, coef = self.smoothing(prior)
        return rank_smoothed(out, coef, prior, ranked, k)

    def smoothing(self, prior: Mapping[str, float]) -> tuple[dict[str, float], float]:
        """The smoothed probabilities of the tracked categories, and the multiple of its prior
        that every untracked category gets (``predict_proba_one({}, prior)`` in two parts).

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["b"], "event_type": "view", "ts": 0.0})
        >>> prior = {"a": 0.5, "b": 0.25, "c": 0.25}
        >>> tracked, coef = u.smoothing(prior)
        >>> full = u.predict_proba_one({}, prior=prior)
        >>> tracked["b"] == full["b"], abs(coef * prior["c"] - full["c"]) < 1e-12
        (True, True)
        """
        if not self._n:
            return {}, 1.0
        return smoothed_tracked(self.horizon_parts(prior=True), prior)

    def horizon_parts(self, prior: bool) -> Horizons:
        """The two horizons as ``masses.mix_horizons`` reads them, with the pseudo-counts
        toward a prior (``prior_strength``) or as ``_other`` (``other_strength``)."""
        a_short, a_long = self._alphas(prior)
        return (
            self._short,
            self._long,
            self.short_weight(),
            self._short_res,
            self._long_res,
            a_short,
            a_long,
        )

    def top_horizons(self, k: int) -> tuple[dict[str, float], dict[str, float]]:
        """The ``k`` most probable categories of each of ``horizons()`` (no prior), the rest
        as ``_other``, without building the whole distributions."""
        a_short, a_long = self._alphas(False)
        return (
            top_smoothed(self._short, self._short_res, a_short, k),
            top_smoothed(self._long, self._long_res, a_long, k),
        )

    def snapshot_tops(
        self, k: int, prior: Mapping[str, float] | None = None, ranked: Sequence[str] = ()
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float], float]:
        """What a snapshot reads, in one call: ``own_top(k)``, ``top_horizons(k)``, the
        published estimate (``predict_top(prior, ranked, k)``, or a copy of ``own_top(k)``
        without a prior) and its entropy. Treat the dicts as read-only.

        >>> u = UserInterest()
        >>> u.learn_one({"categories": ["b"], "event_type": "view", "ts": 0.0})
        >>> prior = {"a": 0.5, "b": 0.25, "c": 0.25}
        >>> own_top, short, long_, dist, h = u.snapshot_tops(2, prior, ["a", "b", "c"])
        >>> own_top is u.own_top(2), (short, long_) == u.top_horizons(2)
        (True, True)
        >>> dist == u.predict_top(prior, ["a", "b", "c"], 2), h == entropy(dist)
        (True, True)
        """
        if type(self) is not UserInterest:  # the C definition knows this class's methods only
            return interest_tops.python(self, k, prior, ranked)
        return interest_tops(self, k, prior, ranked)

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
        return restore_interest(cls, SurpriseDrift, state, config, config or InterestConfig())


@accelerated
def restore_interest(
    cls: type[UserInterest],
    drift_cls: type[SurpriseDrift],
    state: Sequence,
    config: InterestConfig | None,
    cfg: InterestConfig,
) -> UserInterest:
    """``UserInterest.from_compact_state``'s definition (``cfg``: ``config`` or the default):
    every cold cache read decodes a record, so the C definition (``models/_masses.c``) sets
    the same attributes in the same order from an exact list of the layout
    ``compact_state`` writes (else TypeError, and this definition runs).

    >>> u = UserInterest()
    >>> u.learn_one({"categories": ["a"], "event_type": "view", "ts": 1.0})
    >>> v = restore_interest(UserInterest, SurpriseDrift, u.compact_state(), None, u._cfg)
    >>> v.state() == u.state(), v.drift_detected, v.n_events
    (True, False, 1)
    """
    u = cls.__new__(cls)  # every field is set below: no __init__ to overwrite
    u.config, u._cfg = config, cfg
    u._own = u._own_top = u._scales = None  # UserInterest._attach's caches
    (u._t, u._r, u._nr, u._n, sk, sm, lk, lm, u._short_res, u._long_res, d, sd, dn) = state
    u._short, u._long = dict(zip(sk, sm, strict=True)), dict(zip(lk, lm, strict=True))
    u._drift = drift_cls.restored(d, cfg.drift_min_instances, cfg.drift_delta, cfg.drift_threshold)
    u._since_drift, u._drift_now = sd, bool(dn)
    return u


@accelerated
def learn_event(user: UserInterest, x: dict) -> tuple[dict[str, float], float]:
    """``UserInterest.learn_and_predict``'s definition: one event learned into ``user``; its
    own distribution after it (cached in ``user``) and the total variation it moved.

    The C definition (``models/_masses.c``) reads and writes the estimator's and its drift
    detector's attributes as the methods called here do, and the config's numbers; it takes
    events with a float ``ts`` and a type its weights name (else TypeError before anything
    changes, and this definition runs). ``tests/unit/test_masses_c.py`` checks the two give
    the same state, caches and results bit for bit.

    >>> u = UserInterest()
    >>> after, moved = learn_event(u, {"categories": ["a"], "event_type": "view", "ts": 0.0})
    >>> moved, after is u.own_distribution(), u.n_events
    (1.0, True, 1)
    """
    before = user.own_distribution() if user._n else None
    user._learn(x, event_labels(x, None), before)
    after = user.own_distribution()
    if before is None:
        return after, 1.0
    return after, total_variation(before, after)


@accelerated
def interest_tops(
    user: UserInterest, k: int, prior: Mapping[str, float] | None, ranked: Sequence[str]
) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float], float]:
    """``UserInterest.snapshot_tops``'s definition. Every published snapshot reads it, so
    the C definition (``models/_masses.c``) reads the estimator's fields and sets its caches
    (``_scales``, ``_own``, ``_own_top``) as this one does, for a user with events (else
    TypeError, and this definition runs).

    >>> u = UserInterest()
    >>> u.learn_one({"categories": ["a"], "event_type": "view", "ts": 0.0})
    >>> own_top, short, long_, dist, h = interest_tops(u, 1, None, ())
    >>> own_top, dist == own_top, dist is own_top
    ({'a': 0.5, '_other': 0.5}, True, False)
    """
    if not user._n:
        own_top, (short, long_) = user.own_top(k), user.top_horizons(k)
        dist = dict(own_top) if prior is None else user.predict_top(prior, ranked, k)
        return own_top, short, long_, dist, entropy(dist)
    smoothing = user.horizon_parts(prior=True) if prior is not None else None
    tops = snapshot_tops(
        user.own_distribution(), user.horizon_parts(prior=False), smoothing, prior, ranked, k
    )
    user._own_top = (k, tops[0])
    return tops
