"""The online estimators: River's checks, decay by event time, bounds, drift, exact state."""

from __future__ import annotations

import math
import random

import pytest
from river import checks

from models.online import (
    OTHER,
    InterestConfig,
    NextCategoryClassifier,
    PopulationInterest,
    UserInterest,
)
from models.synthetic import SyntheticConfig, synthetic_events
from models.tracker import TrackerConfig, apply_event, build_snapshot, replay, top_k

pytestmark = pytest.mark.unit


def ev(cat, ts, et="view", **kw):
    return {"categories": [cat] if isinstance(cat, str) else cat, "event_type": et, "ts": ts, **kw}


@pytest.mark.parametrize("model", [UserInterest(), PopulationInterest(), NextCategoryClassifier()])
def test_river_estimator_checks(model):
    checks.check_estimator(model)


def test_distribution_sums_to_one_and_unseen_categories_are_never_zero():
    u = UserInterest()
    for i in range(30):
        u.learn_one(ev("a" if i % 3 else "b", float(i)))
    prior = {"a": 0.1, "b": 0.1, "c": 0.8}
    p = u.predict_proba_one({}, prior=prior)
    assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-12)
    assert 0 < p["c"] < p["b"] < p["a"]
    own = u.predict_proba_one({})
    assert math.isclose(sum(own.values()), 1.0) and own[OTHER] > 0


def test_decay_follows_event_time_with_the_configured_half_life():
    cfg = InterestConfig(short_half_life=100.0, long_half_life=100.0, prior_strength=1e-9)
    u = UserInterest(cfg)
    u.learn_one(ev("a", 0.0))
    u.learn_one(ev("b", 100.0))  # a's mass has halved: a = 0.5, b = 1
    p = u.predict_proba_one({})
    assert p["a"] == pytest.approx(0.5 / 1.5) and p["b"] == pytest.approx(1 / 1.5)


def test_late_event_counts_as_if_it_had_arrived_in_order():
    cfg = InterestConfig(short_half_life=50.0, long_half_life=500.0)
    in_order, late = UserInterest(cfg), UserInterest(cfg)
    for e in (ev("a", 0.0), ev("b", 30.0), ev("c", 60.0)):
        in_order.learn_one(e)
    for e in (ev("a", 0.0), ev("c", 60.0), ev("b", 30.0)):
        late.learn_one(e)
    p, q = in_order.predict_proba_one({}), late.predict_proba_one({})
    assert all(p[c] == pytest.approx(q[c], rel=1e-12) for c in p)


def test_event_type_weights_and_multi_category_split():
    u = UserInterest(InterestConfig(prior_strength=1e-9))
    u.learn_one(ev(["x", "y"], 0.0, "purchase"))  # 5 split 2.5 / 2.5
    u.learn_one(ev("z", 0.0, "view"))  # 1
    u.learn_one(ev("z", 0.0, "view", weight=1.5))  # explicit weight wins
    p = u.predict_proba_one({})
    assert p["x"] == pytest.approx(2.5 / 7.5) and p["z"] == pytest.approx(2.5 / 7.5)


def test_state_is_bounded_whatever_the_number_of_categories():
    cfg = InterestConfig(max_categories=8)
    u = UserInterest(cfg)
    for i in range(2000):
        u.learn_one(ev(f"c{i}", float(i)))
    state = u.state()
    assert len(state["s"]) <= 8 and len(state["l"]) <= 8
    assert math.isclose(sum(u.predict_proba_one({}).values()), 1.0)


def test_state_round_trip_continues_exactly():
    rng = random.Random(3)
    events = [ev(f"c{rng.randrange(40)}", float(i * 17)) for i in range(300)]
    whole = UserInterest()
    for e in events:
        whole.learn_one(e)
    resumed = UserInterest()
    for e in events[:150]:
        resumed.learn_one(e)
    resumed = UserInterest.from_state(resumed.state())
    for e in events[150:]:
        resumed.learn_one(e)
    assert resumed.state() == whole.state()


def test_drift_is_flagged_after_an_interest_shift_and_short_term_takes_over():
    u = UserInterest()
    flags = []
    for i in range(200):
        u.learn_one(ev("old" if i < 100 else "new", float(i * 60)))
        flags.append(u.drift_detected)
        if i == 99:
            assert u.short_weight() == u._cfg.short_weight
    first = flags.index(True)
    assert 100 <= first < 110, first
    assert not any(flags[:100])
    short, long_ = u.horizons()
    assert short["new"] > long_["new"]


def test_population_prior_tracks_recent_popularity():
    pop = PopulationInterest(InterestConfig(population_half_life=10.0))
    for i in range(50):
        pop.learn_one(ev("early", float(i)))
    for i in range(50, 60):
        pop.learn_one(ev("late", float(i)))
    p = pop.predict_proba_one({})
    assert p["late"] > p["early"]


def test_online_estimate_beats_a_uniform_guess_on_synthetic_truth():
    cfg = SyntheticConfig(users=50, categories=30, drift_probability=0.0, seed=5)
    users: dict[str, UserInterest] = {}
    errors, uniform = [], []
    for e in synthetic_events(cfg, 5000):
        u = users.setdefault(e["user_id"], UserInterest())
        if u.n_events >= 20:
            p = u.predict_proba_one({})
            truth = e["truth"]
            errors.append(sum(abs(p.get(c, 0) - truth.get(c, 0)) for c in set(p) | set(truth)))
            uniform.append(sum(abs(1 / 30 - truth.get(c, 0)) for c in range(30)) + 1)
        u.learn_one(e)
    assert sum(errors) / len(errors) < 0.5 * sum(uniform) / len(uniform)


def test_tracker_snapshot_matches_the_estimator():
    cfg = TrackerConfig(top_k=3, history=5)
    events = [dict(ev(c, float(i)), item_id=f"i{i}") for i, c in enumerate("aabbbcd")]
    record = replay(events, cfg)
    u = UserInterest()
    for e in events:
        u.learn_one(e)
    snap = build_snapshot("u", record, cfg)
    assert snap["distribution"] == top_k(u.predict_proba_one({}), 3)
    assert math.isclose(sum(snap["distribution"].values()), 1.0)
    assert snap["version"] == snap["n_events"] == 7 and len(record["h"]) == 5
    assert snap["explain"][0]["moved"] >= snap["explain"][-1]["moved"]


def test_apply_event_records_history_in_order():
    cfg = TrackerConfig(history=3)
    record = {"u": None, "h": []}
    for i in range(5):
        apply_event(record, dict(ev("a", float(i)), item_id=str(i)), cfg)
    assert [h[0] for h in record["h"]] == ["2", "3", "4"]
