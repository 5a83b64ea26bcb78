"""A collaborative prior for users with few events: category co-occurrence across users.

``CategoryCoOccurrence`` learns, from every user's events, how often a category ``c`` follows
a user's interest in a category ``c'`` (the user's own decayed distribution just before the
event weights ``c'``). Its prediction for a user is ``q(c) = Σ_c' u(c') T(c | c')``, the rows
``T`` normalised: "users interested in what you are interested in went on to ``c``".

Why item-to-category co-occurrence rather than matrix factorisation: the target is a category
distribution, and most users of the stream have a handful of events, over items that are
mostly seen once (taobao-head: 55k items for 84k events), so item-level factors are not
learnable for exactly the users this prior is for; category rows are dense enough after a few
thousand events, learn online in O(categories of the user) per event (no retraining, no
negative sampling), and are explainable. River's ``reco`` models factorise user×item ratings
and predict a score per pair, not a distribution over categories.

``CollaborativeMixture`` is the fitted weight with which ``q`` is mixed into the online
estimate: ``p = (1 - w) p_online + w q`` with ``w = sigmoid(a + b log(1 + n))``, ``n`` the
user's event count, ``a`` and ``b`` fitted by minimising the next-event NLL as the fusion
weights are (the same fit). Two parameters rather than one per bucket of ``n``: the fit sees
few users with a handful of events, and a smooth curve carries what the many longer histories
say about the trend down to them; ``b < 0`` is the prior fading as the user's evidence grows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from river import base

from models.fusion import FusionParams, fit_target_probs
from models.schema import OTHER


@dataclass(frozen=True)
class CoOccurrenceConfig:
    """``max_row``: entries kept per row (a row of twice as many is cut back to the largest
    ``max_row``); ``context``: how many of the user's most probable categories form the
    context of an event.

    Examples
    --------
    >>> co = CategoryCoOccurrence(CoOccurrenceConfig(max_row=1, context=1))
    >>> for c in ["socks", "socks", "laces", "hats"]:  # a third entry: cut back to socks
    ...     co.learn_one({"context": {"shoes": 0.6, "tea": 0.4}}, [c])
    >>> co.state()  # tea, the second category of the context, gets no row
    {'rows': {'shoes': {'socks': 1.2}}}
    """

    max_row: int = 64
    context: int = 8


class CategoryCoOccurrence(base.Base):
    """Which categories follow interest in which, across all users (River-style, bounded).

    ``learn_one(x, y)``: ``x["context"]`` is the user's distribution before the event
    (``{category: p}``, ``_other`` ignored), ``y`` the event's categories (``x["weight"]``
    optional). ``predict_proba_one(x)`` gives ``q`` over the categories the context's rows
    reach (empty when none of them has a row yet).

    Examples
    --------
    >>> co = CategoryCoOccurrence()
    >>> for _ in range(3):
    ...     co.learn_one({"context": {"shoes": 1.0}}, ["socks"])
    ...     co.learn_one({"context": {"shoes": 1.0}}, ["laces"])
    ...     co.learn_one({"context": {"tea": 1.0}}, ["cups"])
    >>> q = co.predict_proba_one({"context": {"shoes": 0.5, "_other": 0.5}})
    >>> sorted((c, round(p, 2)) for c, p in q.items())
    [('laces', 0.5), ('socks', 0.5)]
    >>> co.predict_proba_one({"context": {"hats": 1.0}})
    {}
    """

    def __init__(self, config: CoOccurrenceConfig | None = None):
        self.config = config
        self._cfg = config or CoOccurrenceConfig()
        self._rows: dict[str, dict[str, float]] = {}
        self._totals: dict[str, float] = {}

    def _context(self, x: Mapping) -> list[tuple[str, float]]:
        ctx = [(c, p) for c, p in x["context"].items() if c != OTHER and p > 0]
        ctx.sort(key=lambda cp: (-cp[1], cp[0]))
        return ctx[: self._cfg.context]

    def learn_one(self, x: Mapping, y: Sequence[str]) -> None:
        ctx = self._context(x)
        if not ctx or not y:
            return
        w = float(x.get("weight", 1.0)) / len(y)
        cap = self._cfg.max_row
        for src, p in ctx:
            row = self._rows.setdefault(src, {})
            for c in y:
                row[c] = row.get(c, 0.0) + p * w
            self._totals[src] = self._totals.get(src, 0.0) + p * w * len(y)
            if len(row) > 2 * cap:  # prune in bulk: amortised O(1) per update
                keep = sorted(row, key=lambda k: (-row[k], k))[:cap]
                self._rows[src] = {k: row[k] for k in keep}
                # Evicted mass leaves the row and its total: the row stays a distribution.
                self._totals[src] = sum(self._rows[src].values())

    def predict_proba_one(self, x: Mapping) -> dict[str, float]:
        ctx = [(c, p) for c, p in self._context(x) if c in self._rows]
        norm = sum(p for _, p in ctx)
        out: dict[str, float] = {}
        for src, p in ctx:
            row, scale = self._rows[src], p / (norm * self._totals[src])
            for c, m in row.items():
                out[c] = out.get(c, 0.0) + m * scale
        return out

    def state(self) -> dict:
        """The learned rows as plain data (for a checkpoint or a table)."""
        return {"rows": {c: dict(r) for c, r in self._rows.items()}}

    @classmethod
    def from_state(
        cls, state: Mapping, config: CoOccurrenceConfig | None = None
    ) -> CategoryCoOccurrence:
        co = cls(config)
        co._rows = {c: dict(r) for c, r in state["rows"].items()}
        co._totals = {c: sum(r.values()) for c, r in co._rows.items()}
        return co


@dataclass(frozen=True)
class CollaborativeMixture:
    """The collaborative prior's mixture weight ``sigmoid(a + b log(1 + n))`` (fitted).

    Stored as ``FusionParams`` with no history buckets (``logits = (a,)``) and ``b`` as its
    ``age_slope``, the event count standing in for the age.

    Examples
    --------
    >>> mix = CollaborativeMixture(FusionParams(history_edges=(), logits=(1.0,), age_slope=-0.8))
    >>> [round(mix.weight(n), 2) for n in (1, 3, 30)]
    [0.61, 0.47, 0.15]
    >>> p = mix.combine({"a": 1.0}, {"b": 1.0}, 1)
    >>> round(p["a"], 2), round(p["b"], 2)
    (0.39, 0.61)
    """

    params: FusionParams = FusionParams(history_edges=(), logits=(-10.0,))

    def weight(self, n_events: int) -> float:
        return self.params.sequence_weight(0, float(n_events))

    def combine(
        self, online: Mapping[str, float], collaborative: Mapping[str, float], n_events: int
    ) -> dict[str, float]:
        """``(1 - w) online + w collaborative``; the online estimate alone when ``q`` is empty."""
        if not collaborative:
            return dict(online)
        return self.params.combine(online, collaborative, 0, float(n_events))[0]

    @classmethod
    def fit(
        cls,
        online: Sequence[Sequence[float]],
        collaborative: Sequence[Sequence[float]],
        n_events: Sequence[int],
    ) -> CollaborativeMixture:
        """Fit from the probabilities each estimate gave each event's categories."""
        zeros = [0] * len(n_events)
        n = [float(k) for k in n_events]
        return cls(fit_target_probs(online, collaborative, zeros, n, history_edges=()))

    def to_dict(self) -> dict:
        return self.params.to_dict()

    @classmethod
    def from_dict(cls, d: Mapping) -> CollaborativeMixture:
        return cls(FusionParams.from_dict(d))


@dataclass(frozen=True)
class CollaborativePrior:
    """A trained co-occurrence model and its fitted weight, as the stream uses them.

    ``apply(estimate, own, n_events)`` mixes ``q`` (from the user's ``own`` distribution) into
    a published ``estimate`` (a dict that may hold ``_other``). Saved as one JSON file
    (``save`` writes it atomically, so a worker can reload it while it is replaced).

    Examples
    --------
    >>> co = CategoryCoOccurrence()
    >>> co.learn_one({"context": {"a": 1.0}}, ["b"])
    >>> mix = CollaborativeMixture(FusionParams(history_edges=(), logits=(0.0,), age_slope=0.0))
    >>> prior = CollaborativePrior(co, mix)
    >>> out = prior.apply({"a": 0.8, "_other": 0.2}, {"a": 1.0}, 1)  # w = 0.5
    >>> {k: round(v, 2) for k, v in sorted(out.items())}
    {'_other': 0.1, 'a': 0.4, 'b': 0.5}
    """

    cooccurrence: CategoryCoOccurrence
    mixture: CollaborativeMixture

    def apply(
        self, estimate: Mapping[str, float], own: Mapping[str, float], n_events: int
    ) -> dict[str, float]:
        q = self.cooccurrence.predict_proba_one({"context": own})
        return self.mixture.combine(estimate, q, n_events)

    def save(self, path: str | Path) -> None:
        doc = {"cooccurrence": self.cooccurrence.state(), "mixture": self.mixture.to_dict()}
        tmp = Path(f"{path}.tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> CollaborativePrior:
        doc = json.loads(Path(path).read_text())
        return cls(
            CategoryCoOccurrence.from_state(doc["cooccurrence"]),
            CollaborativeMixture.from_dict(doc["mixture"]),
        )
