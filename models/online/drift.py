"""Interest drift: a Page-Hinkley test on the user's surprise."""

from __future__ import annotations

from collections.abc import Sequence

from river import drift


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
