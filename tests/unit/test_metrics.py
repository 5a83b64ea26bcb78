"""Metrics of the evaluation protocol, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluation import metrics
from models.evaluation.vocabulary import Vocabulary

pytestmark = pytest.mark.unit


def test_vocabulary_sorts_names_as_strings():
    v = Vocabulary(["9", "b", "10", "a", "9"])
    assert v.names == ["10", "9", "a", "b"]  # "10" < "9" as strings
    assert v.encode(["b", "10"]).tolist() == [3, 0]
    assert v.to_dense({"a": 0.5, "_other": 0.5}).tolist() == [0.0, 0.0, 0.5, 0.0]


def test_nll_averages_uniformly_over_the_item_categories():
    p = np.array([0.5, 0.25, 0.25])
    assert metrics.nll(p, np.array([0])) == pytest.approx(math.log(2))
    expected = (math.log(2) + math.log(4)) / 2
    assert metrics.nll(p, np.array([0, 1])) == pytest.approx(expected)


def test_nll_floors_probabilities_at_1e_9():
    p = np.array([1.0, 0.0])
    assert metrics.nll(p, np.array([1])) == pytest.approx(-math.log(1e-9))
    assert metrics.nll(p, np.array([0, 1])) == pytest.approx(-math.log(1e-9) / 2)


def test_ties_go_to_the_name_that_sorts_first_as_a_string():
    v = Vocabulary(["9", "10", "a"])
    p = np.full(3, 1 / 3)
    assert metrics.hit_at_k(p, v.encode(["10"]), 1)
    assert not metrics.hit_at_k(p, v.encode(["9"]), 1)
    assert metrics.hit_at_k(p, v.encode(["9"]), 2)
    assert metrics.rank(p, v.encode(["a"])) == 2


def test_hit_at_k_counts_any_of_the_item_categories():
    p = np.array([0.1, 0.5, 0.3, 0.1])
    assert metrics.rank(p, np.array([3, 2])) == 1
    assert not metrics.hit_at_k(p, np.array([0, 3]), 2)
    assert metrics.hit_at_k(p, np.array([0, 3]), 3)  # 0 ties with 3 and comes first
    assert metrics.hit_at_k(p, np.array([0, 2]), 2)


def test_kl_future_hand_computed():
    q_idx, q_val = np.array([0, 1]), np.array([0.5, 0.5])
    p = np.array([0.25, 0.75, 0.0])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert metrics.kl_divergence(q_idx, q_val, p) == pytest.approx(expected)
    assert metrics.kl_divergence(q_idx, q_val, np.array([0.5, 0.5, 0.0])) == 0.0
    # a category of q with p = 0 is floored, not infinite
    assert metrics.kl_divergence(np.array([2]), np.array([1.0]), p) == pytest.approx(
        -math.log(1e-9)
    )


def test_steck_miscalibration_hand_computed():
    q_idx, q_val = np.array([0]), np.array([1.0])
    p = np.array([0.2, 0.8])
    assert metrics.miscalibration(q_idx, q_val, p) == pytest.approx(-math.log(0.99 * 0.2 + 0.01))
    # bounded by log(1/alpha) even when p misses q entirely
    assert metrics.miscalibration(q_idx, q_val, np.array([0.0, 1.0])) == pytest.approx(
        math.log(100)
    )
    q2 = np.array([0.25, 0.75])
    assert metrics.miscalibration(np.array([0, 1]), q2, q2) == pytest.approx(0.0)


def test_future_mix_splits_items_and_stops_at_the_horizon():
    seq = [np.array([0]), np.array([1, 2]), np.array([0]), np.array([3])]
    mixes = metrics.future_mixes(seq, [0, 1, 3], horizon=3)
    idx, val = mixes[0]  # events 0, 1, 2: a, (b, c), a
    assert idx.tolist() == [0, 1, 2]
    assert val.tolist() == pytest.approx([2 / 3, 1 / 6, 1 / 6])
    idx, val = mixes[1]  # events 1, 2, 3
    assert dict(zip(idx.tolist(), val.tolist(), strict=True)) == pytest.approx(
        {0: 1 / 3, 1: 1 / 6, 2: 1 / 6, 3: 1 / 3}
    )
    idx, val = mixes[3]  # only the last event is left
    assert (idx.tolist(), val.tolist()) == ([3], [1.0])
