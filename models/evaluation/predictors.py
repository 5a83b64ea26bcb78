"""The project's own estimators behind the evaluation's predictor protocol: the ``online`` and
``collaborative`` rows."""

from __future__ import annotations

import math

import numpy as np

from models.evaluation.vocabulary import Vocabulary
from models.online import InterestConfig, PopulationInterest, UserInterest
from models.priors.collaborative import CategoryCoOccurrence, CollaborativeMixture


class OnlinePredictor:
    """The project's online estimator (``models.online``) behind the predictor protocol.

    One ``UserInterest`` per user, smoothed toward a ``PopulationInterest`` prior; a user's
    first event gets the population distribution. The prior is the population's over the
    whole vocabulary with ``population_smoothing`` pseudo-events per category (as the
    popularity baseline's +0.001), and both are computed as dense vectors
    (``predict_dense``): the same numbers as ``predict_proba_one(x, prior)``, without a dict
    over every category per event.

    Parameters
    ----------
    vocab
        The dense category index.
    config
        An ``models.online.InterestConfig``; the default settings when omitted.

    Examples
    --------
    >>> v = Vocabulary(["a", "b"])
    >>> online = OnlinePredictor(v)
    >>> for i, c in enumerate("aab"):
    ...     online.learn({"user_id": "u", "categories": [c], "event_type": "view", "ts": float(i)})
    >>> p = online.predict({"user_id": "u", "ts": 3.0})
    >>> bool(p[0] > p[1]), round(float(p.sum()), 6)
    (True, 1.0)
    """

    name = "online"

    def __init__(self, vocab: Vocabulary, config: InterestConfig | None = None):
        self.vocab = vocab
        self.config = config
        self._population = PopulationInterest(config)
        self._users: dict = {}

    def predict(self, event: dict) -> np.ndarray:
        prior = self._population.predict_dense(self.vocab.index)
        user = self._users.get(event["user_id"])
        return prior if user is None else user.predict_dense(prior, self.vocab.index)

    def learn(self, event: dict) -> None:
        user = self._users.get(event["user_id"])
        if user is None:
            user = self._users[event["user_id"]] = UserInterest(self.config)
        user.learn_one(event)
        self._population.learn_one(event, user_events=user.n_events - 1)


class CollaborativePredictor(OnlinePredictor):
    """The online estimate mixed with the collaborative prior (``models.priors.collaborative``).

    ``p = (1 - w) p_online + w q``: ``q`` from category co-occurrence given the user's own
    distribution, ``w`` fading with the user's event count, fitted on the last
    ``fit_fraction`` of the warm-up (each event predicted before it is learned there) when
    the warm-up ends, i.e. on the ``split``-th learned event.

    Examples
    --------
    >>> v = Vocabulary(["a", "b", "c"])
    >>> evs = [{"user_id": u, "categories": [c], "event_type": "view", "ts": float(i)}
    ...        for i, (u, c) in enumerate(zip("uuvvwwxx", "abababab"))]
    >>> collab = CollaborativePredictor(v, split=8, fit_fraction=0.5)
    >>> for e in evs:
    ...     collab.learn(e)
    >>> collab.learn({"user_id": "y", "categories": ["a"], "event_type": "view", "ts": 9.0})
    >>> p = collab.predict({"user_id": "y", "ts": 10.0})  # after a, users went on to b
    >>> bool(p[1] > OnlinePredictor.predict(collab, {"user_id": "y", "ts": 10.0})[1])
    True
    """

    name = "collaborative"

    def __init__(
        self,
        vocab: Vocabulary,
        split: int,
        config: InterestConfig | None = None,
        fit_fraction: float = 0.25,
    ):
        super().__init__(vocab, config)
        self.split = split
        self.fit_fraction = fit_fraction
        self.cooc = CategoryCoOccurrence()
        self.mixture = CollaborativeMixture()
        self._weight = (config or InterestConfig()).weight
        self._fit_from = split - math.ceil(fit_fraction * split)
        self._learned = 0
        self._fit_data: tuple[list, list, list] = ([], [], [])

    def _q(self, context: dict[str, float] | None) -> np.ndarray | None:
        if not context:
            return None
        q = self.cooc.predict_proba_one({"context": context})
        return self.vocab.to_dense(q) if q else None

    def predict(self, event: dict) -> np.ndarray:
        p = super().predict(event)
        user = self._users.get(event["user_id"])
        q = self._q(user.predict_proba_one({})) if user is not None else None
        if q is None:
            return p
        w = self.mixture.weight(user.n_events)
        return (1.0 - w) * p + w * q

    def learn(self, event: dict) -> None:
        user = self._users.get(event["user_id"])
        context = user.predict_proba_one({}) if user is not None else None
        if context and self._fit_from <= self._learned < self.split:
            q = self._q(context)
            if q is not None:
                t = self.vocab.encode(event["categories"])
                p = super().predict(event)
                self._fit_data[0].append(p[t].tolist())
                self._fit_data[1].append(q[t].tolist())
                self._fit_data[2].append(user.n_events)
        if context:
            x = {"context": context, "weight": self._weight(event)}
            self.cooc.learn_one(x, event["categories"])
        super().learn(event)
        self._learned += 1
        if self._learned == self.split and self._fit_data[0]:
            self.mixture = CollaborativeMixture.fit(*self._fit_data)
            self._fit_data = ([], [], [])

    @property
    def note(self) -> str:
        weights = ", ".join(f"{n}: {self.mixture.weight(n):.2f}" for n in (1, 2, 5, 10, 20, 50))
        return f"fitted collaborative weight by the user's events: {weights}"
