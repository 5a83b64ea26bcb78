"""Baselines, checked against the exact definitions in shared/data/README.md."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river import naive_bayes

from models.evaluation.baselines import (
    DecayedHistogram,
    DenseMultinomialNB,
    MarkovOne,
    Popularity,
    Predictor,
    RiverClassifier,
)
from models.evaluation.vocabulary import Vocabulary

pytestmark = pytest.mark.unit

V = Vocabulary(["a", "b", "c"])


def ev(user: str, *cats: str, event_type: str = "view") -> dict:
    return {"user_id": user, "categories": list(cats), "event_type": event_type, "ts": 0.0}


def pop_of(counts: list[float], n: float) -> np.ndarray:
    return (np.array(counts) + 0.001) / (n + 0.001 * len(counts))


@pytest.mark.parametrize("cls", [Popularity, MarkovOne, DecayedHistogram, RiverClassifier])
def test_every_baseline_follows_the_protocol_and_predicts_a_distribution(cls):
    model = cls(V)
    assert isinstance(model, Predictor)
    for e in [ev("u", "a"), ev("v", "b", "c"), ev("u", "c"), ev("u", "a")]:
        p = model.predict({"user_id": e["user_id"], "ts": 0.0})
        assert p.shape == (3,) and p.min() >= 0 and p.sum() == pytest.approx(1.0)
        model.learn(e)


def test_popularity_splits_an_item_over_its_categories():
    pop = Popularity(V)
    pop.learn(ev("u", "a"))
    pop.learn(ev("v", "a", "b"))
    expected = pop_of([1.5, 0.5, 0.0], 2)
    np.testing.assert_allclose(pop.predict({"user_id": "w"}), expected)


def test_markov_one_follows_the_previous_event_first_category():
    m = MarkovOne(V)
    m.learn(ev("u", "b", "a"))  # first category is b (as listed, not as sorted)
    m.learn(ev("u", "c"))  # b -> c
    m.learn(ev("v", "b"))
    pop = pop_of([0.5, 1.5, 1.0], 3)
    t = np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(m.predict({"user_id": "v"}), (t + pop) / (1 + 1))
    np.testing.assert_allclose(m.predict({"user_id": "new"}), pop)  # first event: pop
    np.testing.assert_allclose(m.predict({"user_id": "u"}), pop)  # c never led anywhere


def test_markov_one_counts_transitions_of_all_users_with_splits():
    m = MarkovOne(V)
    for e in [ev("u", "a"), ev("u", "b", "c"), ev("v", "a"), ev("v", "b"), ev("w", "a")]:
        m.learn(e)
    pop = pop_of([3.0, 1.5, 0.5], 5)
    t = np.array([0.0, 1.5, 0.5])  # a -> (b, c) / 2, a -> b
    np.testing.assert_allclose(m.predict({"user_id": "w"}), (t + pop) / (2 + 1))


def test_histogram_decays_before_adding_and_not_before_predicting():
    h = DecayedHistogram(V)
    d = 0.5 ** (1 / 20)
    for e in [ev("u", "a"), ev("u", "b", "c"), ev("v", "c")]:
        h.learn(e)
    hist = np.array([d, 0.5, 0.5])  # a decayed once, then (b, c) added
    pop = pop_of([1.0, 0.5, 1.5], 3)
    np.testing.assert_allclose(
        h.predict({"user_id": "u"}), (hist + 5 * pop) / (hist.sum() + 5), rtol=1e-12
    )
    h.learn(ev("u", "a"))
    hist = hist * d + np.array([1.0, 0.0, 0.0])
    pop = pop_of([2.0, 0.5, 1.5], 4)
    np.testing.assert_allclose(
        h.predict({"user_id": "u"}), (hist + 5 * pop) / (hist.sum() + 5), rtol=1e-12
    )
    np.testing.assert_allclose(h.predict({"user_id": "new"}), pop)


def test_dense_naive_bayes_equals_rivers_posterior():
    rng = random.Random(0)
    vocab = Vocabulary("abcdefgh")
    ours = DenseMultinomialNB(vocab, alpha=0.3)
    river = naive_bayes.MultinomialNB(alpha=0.3)
    for _ in range(300):
        x = {f"f{rng.randrange(12)}": float(rng.randint(1, 3)) for _ in range(rng.randint(1, 4))}
        y = rng.choice("abcdef")  # g, h never seen
        ours.learn_one(x, y)
        river.learn_one(x, y)
    for x in [{"f1": 1.0}, {"f2": 2.0, "f11": 1.0}, {"unseen": 1.0}, {}]:
        dense = ours.predict_dense(x)
        expected = river.predict_proba_one(x)
        np.testing.assert_allclose(dense, vocab.to_dense(expected), rtol=1e-9, atol=1e-12)
        assert dense[vocab.index["g"]] == 0.0
    np.testing.assert_allclose(
        vocab.to_dense(ours.predict_proba_one({"f3": 1.0})),
        ours.predict_dense({"f3": 1.0}),
        rtol=1e-9,
    )


def test_river_classifier_learns_a_sequence_pattern_and_keeps_mass_everywhere():
    clf = RiverClassifier(V)
    for c in "abc" * 20:
        clf.learn(ev("u", c))
    p = clf.predict({"user_id": "u"})
    assert V.names[int(p.argmax())] == "a"  # after c comes a
    assert p.min() > 0  # popularity mix
    assert clf.features("u")["last=c"] == 1.0
    assert clf.features("nobody") == {"cold": 1.0}
