"""Interest drift: a Page-Hinkley test on the user's surprise."""

from __future__ import annotations

from collections.abc import Sequence

from river import base

from models.online.masses import DriftFields


class SurpriseDrift(base.DriftDetector, DriftFields):
    """Page-Hinkley test for a rise in a user's surprise; its state is five floats.

    The one-sided (``mode="up"``) test of River's ``drift.PageHinkley``, written here because
    importing ``river.drift`` also imports River's datasets and, through them, scikit-learn
    and SciPy: seconds of every worker's start, most of the stall after a restart.
    ``tests/unit/test_drift.py`` checks it against River's on random streams.

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
        super().__init__()
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._count = 0.0  # the surprises' running mean, as River's stats.Mean keeps it
        self._mean = 0.0
        self._sum_increase = 0.0
        self._min_increase = float("inf")

    def update(self, x: float) -> None:
        if self._drift_detected:
            self._reset()
        n = self._count = self._count + 1.0
        mean = self._mean = self._mean + (1.0 / n) * (x - self._mean)
        s = self._sum_increase = self.alpha * self._sum_increase + x - mean - self.delta
        if s < self._min_increase:
            self._min_increase = s
        if n >= self.min_instances:
            self._drift_detected = s - self._min_increase > self.threshold

    def get_state(self) -> list[float]:
        return [
            self._count,
            self._mean,
            self._sum_increase,
            self._min_increase,
            float(self._drift_detected),
        ]

    @classmethod
    def restored(
        cls,
        state: Sequence[float],
        min_instances: int,
        delta: float,
        threshold: float,
        alpha: float = 1.0,
    ) -> SurpriseDrift:
        """``SurpriseDrift(min_instances, delta, threshold, alpha).set_state(state)`` without
        resetting first (records are decoded at every cache miss, and the reset was a third of
        an estimator's decoding).

        >>> d = SurpriseDrift(min_instances=2, delta=0.1, threshold=3.0)
        >>> for x in (1.0, 2.0, 9.0):
        ...     d.update(x)
        >>> SurpriseDrift.restored(d.get_state(), 2, 0.1, 3.0).get_state() == d.get_state()
        True
        """
        d = cls.__new__(cls)
        d.min_instances, d.delta, d.threshold, d.alpha = min_instances, delta, threshold, alpha
        return d.set_state(state)

    def __reduce__(self) -> tuple:
        args = (self.get_state(), self.min_instances, self.delta, self.threshold, self.alpha)
        return SurpriseDrift.restored, args

    def set_state(self, state: Sequence[float]) -> SurpriseDrift:
        n, mean, s, lo, detected = state
        self._count, self._mean = n, mean
        self._sum_increase, self._min_increase = s, lo
        self._drift_detected = bool(detected)
        return self
