"""The dense category index every evaluation predictor's vectors follow."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np


class Vocabulary:
    """Dense index of category names, sorted as strings (index order = tie-break order).

    Parameters
    ----------
    categories
        Any iterable of category names; duplicates are dropped.

    Examples
    --------
    >>> v = Vocabulary(["b", "a", "c", "a"])
    >>> v.names, len(v), v.index["c"]
    (['a', 'b', 'c'], 3, 2)
    >>> v.encode(["c", "a"]).tolist()
    [2, 0]
    """

    def __init__(self, categories: Iterable[str]):
        self.names: list[str] = sorted({str(c) for c in categories})
        self.index: dict[str, int] = {c: i for i, c in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, categories: Sequence[str]) -> np.ndarray:
        """Indices of ``categories`` (in the given order) as an ``int64`` array."""
        return np.fromiter(
            (self.index[c] for c in categories), dtype=np.int64, count=len(categories)
        )

    def to_dense(self, proba: dict[str, float]) -> np.ndarray:
        """A ``{category: p}`` mapping as a dense vector; unknown keys (e.g. ``_other``) dropped.

        Examples
        --------
        >>> Vocabulary(["a", "b"]).to_dense({"b": 0.75, "_other": 0.25}).tolist()
        [0.0, 0.75]
        """
        out = np.zeros(len(self.names))
        n = len(proba)
        idx = np.fromiter(map(self.index.get, proba, repeat(-1, n)), dtype=np.int64, count=n)
        val = np.fromiter(proba.values(), dtype=float, count=n)
        known = idx >= 0
        out[idx[known]] = val[known]
        return out

    @classmethod
    def from_events(cls, events: Iterable[dict]) -> Vocabulary:
        """Every category of every event."""
        return cls(c for e in events for c in e["categories"])
