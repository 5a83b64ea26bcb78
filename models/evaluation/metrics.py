"""Metrics of the evaluation protocol over a dense category index.

A prediction is a probability vector ``p`` over the vocabulary ``C`` (every category of the
replayed file), indexed by :class:`~models.evaluation.vocabulary.Vocabulary`, which sorts the
category names as strings: so "ties go to the category whose name sorts first" is simply
"ties go to the lower index".

- ``nll``: ``-Σ_g w_g log max(p_g, 1e-9)``, ``w`` uniform over the item's categories.
- ``hit_at_k``: any of the item's categories among the ``k`` most probable.
- ``kl_divergence``: ``KL(q ‖ p)`` where ``q`` is the user's category mix over their next
  events (see :func:`future_mixes`), ``p`` floored at 1e-9.
- ``miscalibration``: Steck's ``KL(q ‖ (1 - α) p + α q)``, α = 0.01.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

FLOOR = 1e-9
STECK_ALPHA = 0.01


def nll(p: np.ndarray, targets: np.ndarray) -> float:
    """Negative log-likelihood of the item's categories, averaged uniformly over them.

    Examples
    --------
    >>> p = np.array([0.5, 0.25, 0.25, 0.0])
    >>> round(nll(p, np.array([0])), 6), round(nll(p, np.array([0, 1])), 6)
    (0.693147, 1.039721)
    >>> round(nll(p, np.array([3])), 4)  # floored at 1e-9
    20.7233
    """
    return float(-np.mean(np.log(np.maximum(p[targets], FLOOR))))


def rank(p: np.ndarray, targets: np.ndarray) -> int:
    """0-based rank of the best-ranked target: categories sorted by ``p`` descending, ties by index.

    Examples
    --------
    >>> p = np.array([0.1, 0.4, 0.4, 0.1])
    >>> rank(p, np.array([1])), rank(p, np.array([2])), rank(p, np.array([3, 0]))
    (0, 1, 2)
    >>> rank(np.array([0.5, np.nan]), np.array([1]))  # a broken (NaN) score ranks last
    2
    """
    best = len(p)
    for t in targets.tolist():
        pt = p[t]
        if pt != pt:  # NaN compares false with everything: it would rank first
            continue
        r = int(np.count_nonzero(p > pt)) + int(np.count_nonzero(p[:t] == pt))
        best = min(best, r)
    return best


def hit_at_k(p: np.ndarray, targets: np.ndarray, k: int) -> bool:
    """Whether any target is among the ``k`` most probable categories (ties by index).

    Examples
    --------
    >>> p = np.array([0.1, 0.4, 0.4, 0.1])
    >>> hit_at_k(p, np.array([2]), 1), hit_at_k(p, np.array([2]), 2)
    (False, True)
    """
    return rank(p, targets) < k


def kl_divergence(q_idx: np.ndarray, q_val: np.ndarray, p: np.ndarray) -> float:
    """``KL(q ‖ p)`` for a sparse ``q`` (indices, values summing to 1); ``p`` floored at 1e-9.

    Examples
    --------
    >>> p = np.array([0.5, 0.5])
    >>> round(kl_divergence(np.array([0]), np.array([1.0]), p), 6)
    0.693147
    >>> kl_divergence(np.array([0, 1]), np.array([0.5, 0.5]), p)
    0.0
    """
    return float(np.sum(q_val * np.log(q_val / np.maximum(p[q_idx], FLOOR))))


def miscalibration(
    q_idx: np.ndarray, q_val: np.ndarray, p: np.ndarray, alpha: float = STECK_ALPHA
) -> float:
    """Steck's miscalibration ``KL(q ‖ (1 - α) p + α q)`` for a sparse ``q``.

    Examples
    --------
    >>> p = np.array([0.5, 0.5, 0.0])
    >>> round(miscalibration(np.array([0]), np.array([1.0]), p), 6)  # log(1 / 0.505)
    0.683197
    >>> round(miscalibration(np.array([2]), np.array([1.0]), p), 6)  # log(1 / 0.01)
    4.60517
    """
    return float(np.sum(q_val * np.log(q_val / ((1.0 - alpha) * p[q_idx] + alpha * q_val))))


def future_mixes(
    user_events: Sequence[np.ndarray], positions: Iterable[int], horizon: int = 20
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``q_future`` at each of ``positions`` in one user's sequence of category-index arrays.

    The mix at position ``j`` is over the user's events ``j, ..., j + horizon - 1`` (the event
    about to be predicted and the ones after it, fewer at the end of the log), each event
    splitting weight 1 as ``1/k`` over its ``k`` categories, normalised to sum to 1.

    Examples
    --------
    >>> seq = [np.array([0]), np.array([1, 2]), np.array([0])]
    >>> idx, val = future_mixes(seq, [0], horizon=2)[0]
    >>> idx.tolist(), val.tolist()
    ([0, 1, 2], [0.5, 0.25, 0.25])
    >>> idx, val = future_mixes(seq, [2], horizon=20)[2]
    >>> idx.tolist(), val.tolist()
    ([0], [1.0])
    """
    out = {}
    for j in positions:
        mix: dict[int, float] = {}
        window = user_events[j : j + horizon]
        for cats in window:
            share = 1.0 / len(cats)
            for c in cats.tolist():
                mix[c] = mix.get(c, 0.0) + share
        keys = sorted(mix)
        out[j] = (
            np.array(keys, dtype=np.int64),
            np.array([mix[c] for c in keys]) / len(window),
        )
    return out
