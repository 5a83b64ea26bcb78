"""Fusion of the online and sequence estimates: fitting, combining, persistence."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.fused_snapshot import fused_snapshot, fused_top
from models.fusion import (
    OTHER,
    FusedPredictor,
    FusionParams,
    checkpoint_key,
    evaluation_predictor,
    fit,
    fit_target_probs,
    history_bucket,
)
from models.online import PopulationInterest, UserInterest
from models.online.masses import top_k
from models.priors.population import PopulationPrior
from models.tracker import TrackerConfig, UserRecord, apply_event, published_estimate

pytestmark = pytest.mark.unit


def complementary(n: int = 2000, seed: int = 0):
    """Sequence right for long histories, online right for short ones (both hedged)."""
    rng = np.random.default_rng(seed)
    C = 4
    n_hist = rng.integers(0, 60, n)
    target = rng.integers(0, C, n)
    online, sequence = [], []
    for h, t in zip(n_hist, target, strict=True):
        good = np.full(C, 0.1 / (C - 1))
        good[t] = 0.9
        wrong = (t + 1 + rng.integers(0, C - 1)) % C
        bad = np.full(C, 0.1 / (C - 1))
        bad[wrong] = 0.9
        seq_good = rng.random() < (0.85 if h >= 10 else 0.2)
        onl_good = rng.random() < (0.3 if h >= 10 else 0.85)
        sequence.append(good if seq_good else bad)
        online.append(good if onl_good else bad)
    return online, sequence, n_hist, [[int(t)] for t in target]


def test_fit_beats_either_part_on_complementary_estimates():
    online, sequence, n_hist, targets = complementary()
    params = fit(online, sequence, n_hist, np.zeros(len(n_hist)), targets)
    assert params.nll_fused < params.nll_online - 0.1
    assert params.nll_fused < params.nll_sequence - 0.1
    assert params.sequence_weight(2) < 0.5 < params.sequence_weight(40)
    # and it generalises: a fresh sample from the same process
    o2, s2, h2, t2 = complementary(seed=1)
    fused = [params.combine_dense(o, s, h) for o, s, h in zip(o2, s2, h2, strict=True)]

    def nll(ps):
        return -np.mean([np.log(p[t[0]]) for p, t in zip(ps, t2, strict=True)])

    assert nll(fused) < min(nll(o2), nll(s2))


def test_fit_on_dicts_matches_dense():
    online, sequence, n_hist, targets = complementary(400)
    names = ["a", "b", "c", "d"]

    def as_dict(v):
        return {names[i]: float(p) for i, p in enumerate(v)}

    dense = fit(online, sequence, n_hist, np.zeros(400), targets)
    sparse = fit(
        [as_dict(v) for v in online],
        [as_dict(v) for v in sequence],
        n_hist,
        np.zeros(400),
        [[names[t[0]]] for t in targets],
    )
    np.testing.assert_allclose(dense.logits, sparse.logits, atol=1e-9)


def test_staleness_weight_is_learned():
    rng = np.random.default_rng(0)
    n = 3000
    age = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(600, 86400, n))
    po, ps = [], []
    for a in age:
        fresh = a == 0.0
        ps.append([0.8 if fresh else 0.05])  # stale sequence scores miss the recent shift
        po.append([0.3])
    params = fit_target_probs(po, ps, np.full(n, 30), age)
    assert params.age_slope < 0
    assert params.sequence_weight(30, 0.0) > 0.5 > params.sequence_weight(30, 3600.0)


def test_combine_sums_to_one_and_reports_weights():
    params = FusionParams(logits=(0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0), age_slope=-0.1)
    online = {"a": 0.5, "b": 0.3, OTHER: 0.2}
    sequence = {"a": 0.1, "c": 0.7, OTHER: 0.2}
    dist, w = params.combine(online, sequence, n_history=12, age_s=30.0)
    assert sum(dist.values()) == pytest.approx(1.0)
    assert w["online"] + w["sequence"] == pytest.approx(1.0)
    assert set(dist) == {"a", "b", "c", OTHER}
    assert FusionParams().combine(online, None, 5) == (online, {"online": 1.0, "sequence": 0.0})


def test_params_round_trip_dict_and_json(tmp_path):
    online, sequence, n_hist, targets = complementary(300)
    params = fit(online, sequence, n_hist, np.full(300, 10.0), targets)
    assert FusionParams.from_dict(params.to_dict()) == params
    path = tmp_path / "fusion.json"
    params.save_json(path)
    assert FusionParams.load_json(path) == params
    with pytest.raises(ValueError):
        FusionParams(logits=(0.0,))


def test_history_buckets():
    assert [history_bucket(n) for n in (0, 1, 2, 4, 5, 9, 10, 19, 20, 49, 50)] == [
        0,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
        6,
    ]


def test_fused_predictor_uses_stored_params():
    class Const:
        def __init__(self, p, fusion_params=None):
            self.p = np.array(p)
            self.checkpoint_extra = {"fusion": fusion_params} if fusion_params else {}
            self.learned = 0

        def predict(self, event):
            return self.p

        def learn(self, event):
            self.learned += 1

    stored = FusionParams(logits=(-10.0, -10.0, 10.0, 10.0, 10.0, 10.0, 10.0)).to_dict()
    seq, onl = Const([1.0, 0.0], stored), Const([0.0, 1.0])
    fused = evaluation_predictor(seq, onl, ["a", "b"])
    assert isinstance(fused, FusedPredictor) and fused.note == ""
    ev = {"user_id": "u", "ts": 0.0}
    assert fused.predict(ev)[1] > 0.99  # no history: online
    for _ in range(3):
        fused.learn(ev)
    assert fused.predict(ev)[0] > 0.99 and seq.learned == onl.learned == 3


def test_fused_predictor_takes_the_fit_for_its_base():
    class Seq:
        def __init__(self, fits):
            self.checkpoint_extra = fits

        def predict(self, event):
            return np.array([1.0, 0.0])

        def learn(self, event):
            pass

    class Base:
        def __init__(self, name):
            self.name = name

        def predict(self, event):
            return np.array([0.0, 1.0])

        def learn(self, event):
            pass

    heavy = FusionParams(logits=(10.0,) * 7).to_dict()
    light = FusionParams(logits=(-10.0,) * 7).to_dict()
    seq = Seq({"fusion": heavy, "fusion_collaborative": light})
    ev = {"user_id": "u", "ts": 0.0}
    assert evaluation_predictor(seq, Base("online"), ["a", "b"]).predict(ev)[0] > 0.99
    assert evaluation_predictor(seq, Base("collaborative"), ["a", "b"]).predict(ev)[1] > 0.99
    older = Seq({"fusion": heavy})  # a checkpoint from before the per-base fits
    assert evaluation_predictor(older, Base("collaborative"), ["a", "b"]).predict(ev)[0] > 0.99
    assert evaluation_predictor(Seq({}), Base("online"), ["a", "b"]).note.startswith("fusion")
    with pytest.raises(ValueError, match="unknown fusion base"):
        checkpoint_key("content")


CATEGORIES = [f"c{i}" for i in range(12)]


@settings(max_examples=300, deadline=None)
@given(
    population=st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=40),
    events=st.lists(st.sampled_from(CATEGORIES), max_size=8),
    sequence=st.dictionaries(
        st.sampled_from([*CATEGORIES, "unseen", OTHER]),
        st.sampled_from([0.0, 0.05, 0.1, 0.25]),  # ties included
        min_size=1,
    ),
    w=st.sampled_from([0.0, 0.3, 0.5, 0.999]),
    depth=st.integers(1, 12),
    k=st.integers(1, 6),
)
def test_fused_top_equals_the_whole_estimate_combined(population, events, sequence, w, depth, k):
    """``fused_top`` is the top k of the whole published estimate fused with ``combine``'s
    arithmetic, bit for bit: sequence categories tracked or not, in the prior's ranked ones or
    not, unknown to the prior, probabilities tied, users without events."""
    pop, user = PopulationInterest(), UserInterest()
    for i, c in enumerate(population):
        pop.learn_one({"categories": [c], "event_type": "view", "ts": float(i)})
    for i, c in enumerate(events):
        user.learn_one({"categories": [c], "event_type": "cart", "ts": float(i)})
    prior = PopulationPrior.from_population(pop, depth)
    online = user.predict_candidates(prior.probs, prior.ranked)  # published_estimate's
    whole = {c: (1.0 - w) * p for c, p in online.items()}
    for c, q in sequence.items():  # FusionParams.combine at weight w
        whole[c] = whole.get(c, 0.0) + w * q
    assert fused_top(user, prior, sequence, w, k) == top_k(whole, k)


def test_fused_snapshot_with_a_prior_publishes_the_fused_top_k():
    """The fused snapshot's distribution is the top k of the whole fused estimate."""
    pop = PopulationInterest()
    for i, c in enumerate("aabbbcdeeef"):
        pop.learn_one({"categories": [c], "event_type": "view", "ts": float(i)})
    record = UserRecord()
    for i, c in enumerate("ffa"):
        apply_event(
            record,
            {"item_id": f"i{i}", "categories": [c], "event_type": "view", "ts": float(i)},
            TrackerConfig(top_k=3),
        )
    prior = PopulationPrior.from_population(pop)
    params = FusionParams()
    scored = ({"e": 0.6, "a": 0.2, OTHER: 0.2}, time.time(), "v1", [])
    snap = fused_snapshot("u", record, TrackerConfig(top_k=3), scored, {"online": params}, prior)
    w = snap["sources"]["sequence"]["weight"]
    online = published_estimate(record.interest, prior, TrackerConfig(top_k=3))
    expected = top_k(params.combine(online, scored[0], record.n_events)[0], 3)
    assert set(snap["distribution"]) == set(expected) and 0.0 < w < 1.0
    assert all(abs(snap["distribution"][c] - p) < 1e-12 for c, p in expected.items())
