"""A global River classifier of a user's next category from features of their state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from river import base, naive_bayes

from models.online.masses import event_labels


class NextCategoryClassifier(base.Classifier):
    """A global River classifier of a user's next category from their state.

    Wraps ``naive_bayes.MultinomialNB`` over count features (``{"last=<category>": 1.0}``);
    negative features carry no evidence. The stream does not train it: the published estimate
    is :class:`~models.online.user.UserInterest` with the population prior.

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
        for c in event_labels({}, y):
            self._nb.learn_one(self._counts(x), c)

    def predict_proba_one(self, x: dict) -> dict[str, float]:
        return self._nb.predict_proba_one(self._counts(x))
