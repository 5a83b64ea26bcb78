"""Fusion of the online estimate and the sequence model's estimate into one distribution.

A mixture ``p = w·p_sequence + (1 - w)·p_online`` whose sequence weight
``w = sigmoid(θ[bucket(n_history)] + γ·log1p(age_s))`` depends on how many events the user has
(bucketed) and how stale the sequence score is (seconds since it was computed; the online
estimate is always current). ``θ`` and ``γ`` are FITTED by minimising the next-event category
NLL on the training period's tail (:func:`fit`), never hand-set; :class:`FusionParams` is frozen
and serialises to a dict (checkpoint ``extra["fusion"]``) or JSON.

Pure Python + numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.schema import OTHER

FLOOR = 1e-9
HISTORY_EDGES = (1, 2, 5, 10, 20, 50)  # buckets: 0 | 1 | 2-4 | 5-9 | 10-19 | 20-49 | 50+
DEFAULT_OTHER_SPREAD = 100.0  # a category absent from a sparse dict gets _other / this
BASES = ("online", "collaborative")  # the estimates a sequence model is fused with


def checkpoint_key(base: str) -> str:
    """Where a checkpoint's ``extra`` keeps the weights fitted for fusing with ``base``.

    >>> [checkpoint_key(b) for b in BASES]
    ['fusion', 'fusion_collaborative']
    """
    if base not in BASES:
        raise ValueError(f"unknown fusion base {base!r}; one of {', '.join(BASES)}")
    return "fusion" if base == "online" else f"fusion_{base}"


def stored_fit(extra: Mapping[str, Any], base: str) -> Mapping[str, Any] | None:
    """The fit a checkpoint's ``extra`` holds for ``base``, else its ``online`` fit (a
    checkpoint from before the per-base fits), else None.

    >>> stored_fit({"fusion": {"logits": [0.0]}}, "collaborative")
    {'logits': [0.0]}
    """
    return extra.get(checkpoint_key(base)) or extra.get(checkpoint_key("online"))


def _sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-z))


def history_bucket(n_history: int, edges: Sequence[int] = HISTORY_EDGES) -> int:
    """Index of the history-length bucket (``0`` = no history).

    Examples
    --------
    >>> [history_bucket(n) for n in (0, 1, 3, 7, 15, 30, 500)]
    [0, 1, 2, 3, 4, 5, 6]
    """
    b = 0
    for e in edges:
        if n_history >= e:
            b += 1
    return b


@dataclass(frozen=True)
class FusionParams:
    """Fitted fusion weights (frozen). Defaults (``w = 0.5`` everywhere) mean "not fitted".

    Parameters
    ----------
    history_edges
        Lower edges of the history-length buckets after the first (``0`` events).
    logits
        Sequence-weight logit ``θ`` per bucket (``len(history_edges) + 1`` values).
    age_slope
        ``γ``: change of the logit per unit of ``log1p(age_s)``.
    n_events, nll_online, nll_sequence, nll_fused
        The fit's size and its NLLs (online alone, sequence alone, fused) on the fit data.

    Examples
    --------
    >>> p = FusionParams(logits=(-3.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0), age_slope=-0.5)
    >>> round(p.sequence_weight(10, 0.0), 3), round(p.sequence_weight(10, 3600.0), 3)
    (0.731, 0.043)
    >>> dist, w = p.combine({"a": 0.5, "b": 0.5}, {"a": 0.9, "_other": 0.1}, 10, 0.0)
    >>> {k: round(v, 3) for k, v in dist.items()}, round(w["sequence"], 3)
    ({'a': 0.792, 'b': 0.134, '_other': 0.073}, 0.731)
    >>> FusionParams.from_dict(p.to_dict()) == p
    True
    """

    history_edges: tuple[int, ...] = HISTORY_EDGES
    logits: tuple[float, ...] = (0.0,) * (len(HISTORY_EDGES) + 1)
    age_slope: float = 0.0
    n_events: int = 0
    nll_online: float | None = None
    nll_sequence: float | None = None
    nll_fused: float | None = None
    method: str = field(default="mixture")

    def __post_init__(self) -> None:
        if len(self.logits) != len(self.history_edges) + 1:
            raise ValueError("need one logit per history bucket (len(history_edges) + 1)")

    # ------------------------------------------------------------------ weights
    def sequence_weight(self, n_history: int, age_s: float = 0.0) -> float:
        """The sequence estimate's mixture weight ``w`` for one user."""
        z = self.logits[history_bucket(n_history, self.history_edges)]
        z += self.age_slope * math.log1p(max(0.0, float(age_s)))
        return float(_sigmoid(z))

    def combine(
        self,
        online: Mapping[str, float],
        sequence: Mapping[str, float] | None,
        n_history: int,
        age_s: float = 0.0,
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Fused ``{category: p}`` (``_other`` mixed like any key) and the weights used.

        Without a sequence estimate the online one is returned with weight 1.
        """
        if not sequence:
            return dict(online), {"online": 1.0, "sequence": 0.0}
        w = self.sequence_weight(n_history, age_s)
        out = {k: (1.0 - w) * p for k, p in online.items()}
        for k, p in sequence.items():
            out[k] = out.get(k, 0.0) + w * p
        return out, {"online": 1.0 - w, "sequence": w}

    def combine_dense(
        self, online: np.ndarray, sequence: np.ndarray, n_history: int, age_s: float = 0.0
    ) -> np.ndarray:
        """The same mixture on dense vectors over one category list."""
        w = self.sequence_weight(n_history, age_s)
        return (1.0 - w) * np.asarray(online) + w * np.asarray(sequence)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["history_edges"] = list(self.history_edges)
        d["logits"] = list(self.logits)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FusionParams:
        d = dict(d)
        d["history_edges"] = tuple(int(e) for e in d.get("history_edges", HISTORY_EDGES))
        d["logits"] = tuple(
            float(x) for x in d.get("logits", (0.0,) * (len(d["history_edges"]) + 1))
        )
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load_json(cls, path: str | Path) -> FusionParams:
        return cls.from_dict(json.loads(Path(path).read_text()))


def target_prob(
    dist: Mapping[str, float], category: str, other_spread: float = DEFAULT_OTHER_SPREAD
) -> float:
    """``dist[category]``, else the ``_other`` mass spread over ``other_spread`` categories."""
    p = dist.get(category)
    if p is not None:
        return float(p)
    return float(dist.get(OTHER, 0.0)) / other_spread


def _flatten(
    online: Sequence[Any],
    sequence: Sequence[Any],
    targets: Sequence[Sequence[Any]],
    other_spread: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (event, target category): p_online, p_sequence, event index, weight 1/k."""
    po, ps, ev, wt = [], [], [], []
    for i, (o, s, t) in enumerate(zip(online, sequence, targets, strict=True)):
        t = list(t)
        if not t:
            continue
        for g in t:
            if isinstance(o, Mapping):
                po.append(target_prob(o, g, other_spread))
                ps.append(target_prob(s, g, other_spread))
            else:  # dense vectors, targets are column indices
                po.append(float(o[g]))
                ps.append(float(s[g]))
            ev.append(i)
            wt.append(1.0 / len(t))
    return np.array(po), np.array(ps), np.array(ev, dtype=np.int64), np.array(wt)


def _nll(po: np.ndarray, ps: np.ndarray, w: np.ndarray, wt: np.ndarray, n: int) -> float:
    return float(-(wt * np.log(np.maximum(w * ps + (1.0 - w) * po, FLOOR))).sum() / max(1, n))


def fit(
    online: Sequence[Mapping[str, float] | np.ndarray],
    sequence: Sequence[Mapping[str, float] | np.ndarray],
    n_history: Sequence[int],
    age_s: Sequence[float],
    targets: Sequence[Sequence[Any]],
    *,
    history_edges: Sequence[int] = HISTORY_EDGES,
    l2: float = 1e-3,
    steps: int = 400,
    lr: float = 0.1,
    other_spread: float = DEFAULT_OTHER_SPREAD,
) -> FusionParams:
    """Fit ``θ`` (per history bucket) and ``γ`` (staleness) by minimising the mixture's NLL.

    ``online[i]`` / ``sequence[i]`` are the two estimates made before event ``i`` (dicts, or
    dense vectors over one category list), ``targets[i]`` its categories (names for dicts,
    column indices for vectors; the NLL is averaged uniformly over them, as in the evaluation).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> # the sequence model is right for long histories, the online one for short ones
    >>> n_hist = rng.integers(0, 40, 400)
    >>> right = rng.integers(0, 2, 400)
    >>> good, bad = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    >>> seq = [good if (h >= 10) == (r == 0) else bad for h, r in zip(n_hist, right)]
    >>> onl = [bad if (h >= 10) == (r == 0) else good for h, r in zip(n_hist, right)]
    >>> params = fit(onl, seq, n_hist, np.zeros(400), [[r] for r in right])
    >>> params.nll_fused < min(params.nll_online, params.nll_sequence)
    True
    """
    po, ps, ev, wt = _flatten(online, sequence, targets, other_spread)
    return _fit_flat(po, ps, ev, wt, len(online), n_history, age_s, history_edges, l2, steps, lr)


def fit_target_probs(
    online: Sequence[Sequence[float]],
    sequence: Sequence[Sequence[float]],
    n_history: Sequence[int],
    age_s: Sequence[float],
    *,
    history_edges: Sequence[int] = HISTORY_EDGES,
    l2: float = 1e-3,
    steps: int = 400,
    lr: float = 0.1,
) -> FusionParams:
    """:func:`fit` from the probabilities each estimate gave event ``i``'s target categories.

    ``online[i]`` and ``sequence[i]`` are equally long (one value per target category).

    Examples
    --------
    >>> p = fit_target_probs([[0.9], [0.1]], [[0.1], [0.9]], [0, 30], [0.0, 0.0])
    >>> p.sequence_weight(0) < 0.5 < p.sequence_weight(30)
    True
    """
    po, ps, ev, wt = [], [], [], []
    for i, (o, s) in enumerate(zip(online, sequence, strict=True)):
        if len(o) != len(s):
            raise ValueError("online and sequence need one probability per target category")
        for a, b in zip(o, s, strict=True):
            po.append(float(a))
            ps.append(float(b))
            ev.append(i)
            wt.append(1.0 / len(o))
    return _fit_flat(
        np.array(po),
        np.array(ps),
        np.array(ev, dtype=np.int64),
        np.array(wt),
        len(online),
        n_history,
        age_s,
        history_edges,
        l2,
        steps,
        lr,
    )


def _fit_flat(
    po: np.ndarray,
    ps: np.ndarray,
    ev: np.ndarray,
    wt: np.ndarray,
    n: int,
    n_history: Sequence[int],
    age_s: Sequence[float],
    history_edges: Sequence[int],
    l2: float,
    steps: int,
    lr: float,
) -> FusionParams:
    """Full-batch Adam on the mixture NLL (convex in ``w``), small L2 pull toward ``w = 0.5``."""
    edges = tuple(int(e) for e in history_edges)
    buckets = np.array([history_bucket(int(h), edges) for h in n_history], dtype=np.int64)
    log_age = np.log1p(np.maximum(0.0, np.asarray(age_s, dtype=np.float64)))
    nb = len(edges) + 1
    b_pair, a_pair = buckets[ev], log_age[ev]
    theta = np.zeros(nb)
    gamma = 0.0
    has_age = bool(np.any(log_age > 0))
    m = np.zeros(nb + 1)
    v = np.zeros(nb + 1)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        w = _sigmoid(theta[b_pair] + gamma * a_pair)
        mix = np.maximum(w * ps + (1.0 - w) * po, FLOOR)
        # d(-wt·log mix)/dz = -wt (ps - po) w (1 - w) / mix
        gz = -wt * (ps - po) * w * (1.0 - w) / mix / max(1, n)
        g = np.zeros(nb + 1)
        np.add.at(g, b_pair, gz)
        g[nb] = float((gz * a_pair).sum()) if has_age else 0.0
        g[:nb] += l2 * theta
        g[nb] += l2 * gamma
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        step = lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        theta -= step[:nb]
        gamma -= step[nb]
    w_fit = _sigmoid(theta[b_pair] + gamma * a_pair)
    return FusionParams(
        history_edges=edges,
        logits=tuple(float(x) for x in theta),
        age_slope=float(gamma),
        n_events=int(n),
        nll_online=_nll(po, ps, np.zeros_like(po), wt, n),
        nll_sequence=_nll(po, ps, np.ones_like(po), wt, n),
        nll_fused=_nll(po, ps, w_fit, wt, n),
    )


class FusedPredictor:
    """The ``fused`` row of the evaluation harness: base ⊕ sequence with fitted weights.

    ``sequence`` and ``online`` (the base: the ``online`` or the ``collaborative`` row's
    predictor, told apart by its ``name``) follow the harness's predictor protocol (dense
    vectors over ``categories``); the weights come from ``params``, else from the sequence
    predictor's checkpoint (its ``checkpoint_extra``, read by :func:`stored_fit`), else the
    unfitted defaults (``w = 0.5``, see ``note``). Scores are fresh at evaluation
    (``age_s = 0``).

    Examples
    --------
    >>> class Const:
    ...     def __init__(self, p): self.p = np.array(p)
    ...     def predict(self, e): return self.p
    ...     def learn(self, e): pass
    >>> fused = FusedPredictor(Const([1.0, 0.0]), Const([0.0, 1.0]), ["a", "b"])
    >>> fused.predict({"user_id": "u", "ts": 0.0}).tolist(), fused.note
    ([0.5, 0.5], 'fusion weights not fitted: defaults (w = 0.5)')
    """

    name = "fused"

    def __init__(
        self,
        sequence: Any,
        online: Any,
        categories: Sequence[str],
        params: FusionParams | None = None,
    ) -> None:
        self.sequence = sequence
        self.online = online
        self.categories = list(categories)
        self.note = ""
        if params is None:
            extra = getattr(sequence, "checkpoint_extra", {})
            stored = stored_fit(extra, getattr(online, "name", "online"))
            if stored:
                params = FusionParams.from_dict(stored)
            else:
                params = FusionParams()
                self.note = "fusion weights not fitted: defaults (w = 0.5)"
        self.params = params
        self._counts: dict[Any, int] = {}

    def predict(self, event: Mapping[str, Any]) -> np.ndarray:
        n = self._counts.get(event["user_id"], 0)
        return self.params.combine_dense(
            self.online.predict(event), self.sequence.predict(event), n, 0.0
        )

    def learn(self, event: Mapping[str, Any]) -> None:
        self._counts[event["user_id"]] = self._counts.get(event["user_id"], 0) + 1
        self.sequence.learn(event)
        self.online.learn(event)


def evaluation_predictor(sequence: Any, online: Any, categories: Sequence[str]) -> FusedPredictor:
    """Hook for ``models.evaluation.evaluate``: the ``fused`` row's predictor."""
    return FusedPredictor(sequence, online, categories)
