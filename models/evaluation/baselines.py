"""Baseline next-category predictors of the evaluation protocol (see ``shared/data/README.md``).

Every predictor follows the small protocol the replay harness
(``models.evaluation.evaluate``) drives: ``predict(event) -> np.ndarray`` (a probability vector
over a :class:`~models.evaluation.vocabulary.Vocabulary`, computed from earlier events only)
and ``learn(event) -> None``. Every event counts with weight 1 and an item with ``k``
categories adds ``1/k`` to each.

- :class:`Popularity`: ``p = (n_c + 0.001) / (N + 0.001 C)`` over all earlier events.
- :class:`MarkovOne`: counts ``t`` of the categories that followed the previous event's first
  category (all users); ``p = (t_c + pop_c) / (Σt + 1)``; a user's first event gets ``pop``.
- :class:`DecayedHistogram`: the user's counts, multiplied by ``0.5^(1/20)`` before each of
  their events is added; ``p = (h_c + 5 pop_c) / (Σh + 5)``.
- :class:`RiverClassifier`: River's ``MultinomialNB`` on the user's recent categories and
  previous event type, mixed with 1% popularity for classes it has not seen yet.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from typing import Protocol, runtime_checkable

import numpy as np
from river import naive_bayes

from models.evaluation.vocabulary import Vocabulary


@runtime_checkable
class Predictor(Protocol):
    """What the replay harness drives: ``predict`` before ``learn``, one event at a time.

    Examples
    --------
    >>> v = Vocabulary(["a", "b"])
    >>> isinstance(MarkovOne(v), Predictor), isinstance(v, Predictor)  # name, predict, learn?
    (True, False)
    >>> pop = Popularity(v)
    >>> for c in "aab":  # predict from the earlier events only, then learn the event
    ...     print(pop.predict({"user_id": "u", "ts": 0.0}).round(2).tolist(), end=" ")
    ...     pop.learn({"user_id": "u", "categories": [c]})
    [0.5, 0.5] [1.0, 0.0] [1.0, 0.0]
    """

    name: str

    def predict(self, event: dict) -> np.ndarray:
        """Probabilities over the vocabulary for ``event``'s categories, from earlier events."""
        ...

    def learn(self, event: dict) -> None:
        """Take ``event`` into the state."""
        ...


def _shares(vocab: Vocabulary, event: dict) -> tuple[np.ndarray, float]:
    idx = vocab.encode(event["categories"])
    return idx, 1.0 / len(idx)


class Popularity:
    """Smoothed popularity of the categories over all earlier events.

    Parameters
    ----------
    vocab
        The dense category index.
    smoothing
        Pseudo-count added to every category (0.001 in the reference protocol).

    Examples
    --------
    >>> pop = Popularity(Vocabulary(["a", "b"]))
    >>> pop.learn({"user_id": "u", "categories": ["a"]})
    >>> pop.learn({"user_id": "u", "categories": ["a", "b"]})
    >>> pop.predict({"user_id": "v"}).round(3).tolist()  # (1.5 + 0.001) / (2 + 0.002)
    [0.75, 0.25]
    """

    name = "popularity"

    def __init__(self, vocab: Vocabulary, smoothing: float = 0.001):
        self.vocab = vocab
        self.smoothing = smoothing
        self._counts = np.zeros(len(vocab))
        self._n = 0.0

    def proba(self) -> np.ndarray:
        """The current popularity distribution ``pop``."""
        s = self.smoothing
        return (self._counts + s) / (self._n + s * len(self._counts))

    def predict(self, event: dict) -> np.ndarray:
        return self.proba()

    def learn(self, event: dict) -> None:
        idx, share = _shares(self.vocab, event)
        np.add.at(self._counts, idx, share)
        self._n += 1.0


class MarkovOne:
    """First-order Markov chain from the previous event's first category, popularity-smoothed.

    Parameters
    ----------
    vocab
        The dense category index.
    smoothing
        Popularity pseudo-count (see :class:`Popularity`).

    Examples
    --------
    >>> m = MarkovOne(Vocabulary(["a", "b"]))
    >>> for c in ["a", "b", "a", "b"]:
    ...     m.learn({"user_id": "u", "categories": [c]})
    >>> m.predict({"user_id": "u", "categories": ["a"]}).round(3).tolist()  # last was b
    [0.75, 0.25]
    >>> m.predict({"user_id": "new", "categories": ["a"]}).round(3).tolist()  # popularity
    [0.5, 0.5]
    """

    name = "markov-1"

    def __init__(self, vocab: Vocabulary, smoothing: float = 0.001):
        self.vocab = vocab
        self.smoothing = smoothing
        self._pop = Popularity(vocab, smoothing)
        self._last: dict = {}
        self._rows: dict[int, dict[int, float]] = {}
        self._totals: dict[int, float] = {}

    def predict(self, event: dict) -> np.ndarray:
        pop = self._pop.proba()
        row = self._rows.get(self._last.get(event["user_id"], -1))
        if row is None:
            return pop
        pop[np.fromiter(row.keys(), dtype=np.int64, count=len(row))] += np.fromiter(
            row.values(), dtype=float, count=len(row)
        )
        return pop / (self._totals[self._last[event["user_id"]]] + 1.0)

    def learn(self, event: dict) -> None:
        idx, share = _shares(self.vocab, event)
        self._pop.learn(event)
        user = event["user_id"]
        prev = self._last.get(user)
        if prev is not None:
            row = self._rows.setdefault(prev, {})
            for c in idx.tolist():
                row[c] = row.get(c, 0.0) + share
            self._totals[prev] = self._totals.get(prev, 0.0) + 1.0
        self._last[user] = int(idx[0])


class DecayedHistogram:
    """Each user's exponentially decayed category counts, smoothed toward popularity.

    Parameters
    ----------
    vocab
        The dense category index.
    half_life
        Half-life in the user's own events (the counts are multiplied by ``0.5^(1/half_life)``
        before each of the user's events is added).
    prior_strength
        Weight of the popularity prior, in events.
    smoothing
        Popularity pseudo-count (see :class:`Popularity`).

    Examples
    --------
    >>> h = DecayedHistogram(Vocabulary(["a", "b"]), half_life=1.0, prior_strength=1.0)
    >>> h.learn({"user_id": "u", "categories": ["a"]})
    >>> h.learn({"user_id": "u", "categories": ["b"]})
    >>> h.predict({"user_id": "u", "categories": ["a"]}).round(4).tolist()  # h = (0.5, 1)
    [0.4, 0.6]
    """

    name = "user-histogram"

    def __init__(
        self,
        vocab: Vocabulary,
        half_life: float = 20.0,
        prior_strength: float = 5.0,
        smoothing: float = 0.001,
    ):
        self.vocab = vocab
        self.half_life = half_life
        self.prior_strength = prior_strength
        self.smoothing = smoothing
        self._pop = Popularity(vocab, smoothing)
        self._decay = 0.5 ** (1.0 / half_life)
        self._hist: dict = {}
        self._totals: dict = {}

    def predict(self, event: dict) -> np.ndarray:
        a = self.prior_strength
        p = a * self._pop.proba()
        h = self._hist.get(event["user_id"])
        if not h:
            return p / a
        p[np.fromiter(h.keys(), dtype=np.int64, count=len(h))] += np.fromiter(
            h.values(), dtype=float, count=len(h)
        )
        return p / (self._totals[event["user_id"]] + a)

    def learn(self, event: dict) -> None:
        idx, share = _shares(self.vocab, event)
        self._pop.learn(event)
        user = event["user_id"]
        h = self._hist.setdefault(user, {})
        d = self._decay
        for c in h:
            h[c] *= d
        for c in idx.tolist():
            h[c] = h.get(c, 0.0) + share
        self._totals[user] = self._totals.get(user, 0.0) * d + 1.0


class DenseMultinomialNB(naive_bayes.MultinomialNB):
    """River's ``MultinomialNB`` with a vectorised ``predict_dense`` over a known vocabulary.

    ``learn_one`` is River's (plus two dense counters); ``predict_dense`` computes the same
    posterior as ``predict_proba_one`` for all classes at once, which stays fast with
    thousands of classes (River's loops over classes and re-sums the class counts per class).
    Classes never learned get probability 0.

    Parameters
    ----------
    vocab
        The classes (category names) the model may be taught.
    alpha
        Additive (Laplace/Lidstone) smoothing, as in River.

    Examples
    --------
    >>> nb = DenseMultinomialNB(Vocabulary(["a", "b", "c"]))
    >>> nb.learn_one({"x": 2, "y": 1}, "a")
    >>> nb.learn_one({"y": 3}, "b")
    >>> nb.predict_dense({"y": 1}).round(4).tolist()
    [0.4, 0.6, 0.0]
    >>> {c: round(p, 4) for c, p in nb.predict_proba_one({"y": 1}).items()}
    {'a': 0.4, 'b': 0.6}
    """

    def __init__(self, vocab: Vocabulary, alpha: float = 1.0):
        super().__init__(alpha=alpha)
        self.vocab = vocab
        self._cc = np.zeros(len(vocab))
        self._ct = np.zeros(len(vocab))
        self._n_classes = 0

    def learn_one(self, x: dict, y: str) -> None:
        super().learn_one(x, y)
        i = self.vocab.index[y]
        self._cc[i] += 1.0
        self._ct[i] += sum(x.values())

    def predict_dense(self, x: dict) -> np.ndarray:
        """Posterior over the whole vocabulary (zeros for classes never learned)."""
        seen = self._cc > 0
        out = np.zeros(len(self._cc))
        if not seen.any():
            return out
        a = self.alpha
        index = self.vocab.index
        freq_total = sum(x.values())
        ll = np.log(self._cc[seen] / self._cc.sum())
        ll -= freq_total * np.log(self._ct[seen] + a * self.n_terms)
        ll_full = np.zeros(len(self._cc))
        ll_full[seen] = ll + freq_total * math.log(a)
        for f, freq in x.items():
            counts = self.feature_counts.get(f)
            if not counts:
                continue
            idx = np.fromiter((index[c] for c in counts), dtype=np.int64, count=len(counts))
            val = np.fromiter(counts.values(), dtype=float, count=len(counts))
            ll_full[idx] += freq * (np.log(val + a) - math.log(a))
        ll = ll_full[seen]
        ll -= ll.max()
        e = np.exp(ll)
        out[seen] = e / e.sum()
        return out


class RiverClassifier:
    """A River classifier of the next category from the user's recent events.

    Features (as term counts for ``naive_bayes.MultinomialNB``): the previous event's
    categories (``last=``), the categories of the user's last ``history`` events (``recent=``,
    ``1/k`` each), the previous event's type (``after=``), or ``cold`` for a user's first
    event. An item with several categories teaches each of them as a label. The prediction is
    mixed with ``pop_mix`` of popularity so unseen classes keep some mass.

    Parameters
    ----------
    vocab
        The dense category index.
    history
        How many of the user's last events feed the ``recent=`` features.
    alpha
        Naive Bayes smoothing.
    pop_mix
        Weight of the popularity distribution in the output.

    Examples
    --------
    >>> clf = RiverClassifier(Vocabulary(["a", "b"]))
    >>> for c in ["a", "b"] * 5:
    ...     clf.learn({"user_id": "u", "categories": [c], "event_type": "view"})
    >>> p = clf.predict({"user_id": "u", "categories": ["a"], "event_type": "view"})
    >>> int(p.argmax()), round(float(p.sum()), 6)  # last was b, so a comes next
    (0, 1.0)
    """

    name = "river-classifier"

    def __init__(
        self, vocab: Vocabulary, history: int = 5, alpha: float = 0.1, pop_mix: float = 0.01
    ):
        self.vocab = vocab
        self.history = history
        self.alpha = alpha
        self.pop_mix = pop_mix
        self._nb = DenseMultinomialNB(vocab, alpha=alpha)
        self._pop = Popularity(vocab)
        self._recent: dict[object, deque] = {}
        self._last_type: dict = {}

    def features(self, user: object) -> dict[str, float]:
        """The term counts describing the state of ``user`` (a user id) before their next event."""
        recent = self._recent.get(user)
        if not recent:
            return {"cold": 1.0}
        x: Counter = Counter()
        for cats in recent:
            share = 1.0 / len(cats)
            for c in cats:
                x[f"recent={c}"] += share
        for c in recent[-1]:
            x[f"last={c}"] += 1.0
        x[f"after={self._last_type[user]}"] += 1.0
        return dict(x)

    def predict(self, event: dict) -> np.ndarray:
        pop = self._pop.proba()
        nb = self._nb.predict_dense(self.features(event["user_id"]))
        if not nb.any():
            return pop
        return (1.0 - self.pop_mix) * nb + self.pop_mix * pop

    def learn(self, event: dict) -> None:
        user = event["user_id"]
        x = self.features(user)
        for c in event["categories"]:
            self._nb.learn_one(x, c)
        self._pop.learn(event)
        self._recent.setdefault(user, deque(maxlen=self.history)).append(list(event["categories"]))
        self._last_type[user] = event.get("event_type", "view")
