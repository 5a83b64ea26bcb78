"""The online estimators: River's checks, decay by event time, bounds, drift, exact state."""

from __future__ import annotations

import math
import random

import pytest
from river import checks

from models.data.synthetic import SyntheticConfig, synthetic_events
from models.online import (
    InterestConfig,
    PopulationInterest,
    UserInterest,
)
from models.online.population import merged_distribution
from models.schema import OTHER
from models.tracker import (
    TrackerConfig,
    UserRecord,
    apply_event,
    build_snapshot,
    replay,
    top_k,
)

pytestmark = pytest.mark.unit


def ev(cat, ts, et="view", **kw):
    return {"categories": [cat] if isinstance(cat, str) else cat, "event_type": et, "ts": ts, **kw}


@pytest.mark.parametrize("model", [UserInterest(), PopulationInterest()])
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
    cfg = InterestConfig(
        short_half_life=100.0,
        long_half_life=100.0,
        short_event_half_life=0.0,
        long_event_half_life=0.0,
        other_strength=1e-9,
    )
    u = UserInterest(cfg)
    u.learn_one(ev("a", 0.0))
    u.learn_one(ev("b", 100.0))  # a's mass has halved: a = 0.5, b = 1
    p = u.predict_proba_one({})
    assert p["a"] == pytest.approx(0.5 / 1.5) and p["b"] == pytest.approx(1 / 1.5)


def test_late_event_counts_as_if_it_had_arrived_in_order():
    # event-time decay only: the per-event decay counts events in arrival order
    cfg = InterestConfig(
        short_half_life=50.0, long_half_life=500.0, short_event_half_life=0, long_event_half_life=0
    )
    in_order, late = UserInterest(cfg), UserInterest(cfg)
    for e in (ev("a", 0.0), ev("b", 30.0), ev("c", 60.0)):
        in_order.learn_one(e)
    for e in (ev("a", 0.0), ev("c", 60.0), ev("b", 30.0)):
        late.learn_one(e)
    p, q = in_order.predict_proba_one({}), late.predict_proba_one({})
    assert all(p[c] == pytest.approx(q[c], rel=1e-12) for c in p)


def test_event_type_weights_and_multi_category_split():
    cfg = InterestConfig(other_strength=1e-9, short_event_half_life=0, long_event_half_life=0)
    u = UserInterest(cfg)
    u.learn_one(ev(["x", "y"], 0.0, "purchase"))  # 2 split 1 / 1
    u.learn_one(ev("z", 0.0, "view"))  # 1
    u.learn_one(ev("z", 0.0, "view", weight=1.5))  # explicit weight wins
    p = u.predict_proba_one({})
    assert p["x"] == pytest.approx(1 / 4.5) and p["z"] == pytest.approx(2.5 / 4.5)


def test_late_event_is_decayed_by_its_own_event_time_with_per_event_decay_on():
    cfg = InterestConfig(short_half_life=50.0, long_half_life=50.0, other_strength=1e-9)
    late = UserInterest(cfg)
    for e in (ev("a", 0.0), ev("c", 100.0), ev("b", 50.0)):  # b arrives last but is older
        late.learn_one(e)
    p = late.predict_proba_one({})
    assert p["b"] < p["c"] and late.last_ts == 100.0


def test_per_event_decay_halves_a_burst_every_half_life_of_events():
    cfg = InterestConfig(
        short_event_half_life=4.0, long_event_half_life=4.0, other_strength=1e-9, max_categories=8
    )
    u = UserInterest(cfg)
    u.learn_one(ev("a", 0.0))
    for _ in range(4):  # same event time: only the per-event decay acts
        u.learn_one(ev("b", 0.0))
    p = u.predict_proba_one({})
    b = sum(2 ** (-k / 4) for k in range(4))
    assert p["a"] == pytest.approx(0.5 / (0.5 + b))


def test_dense_prediction_equals_the_dict_one():
    rng = random.Random(7)
    names = [f"c{i}" for i in range(60)]
    index = {c: i for i, c in enumerate(names)}
    pop = PopulationInterest()
    u = UserInterest(InterestConfig(max_categories=6))
    for i in range(400):
        e = ev(
            [rng.choice(names[:30]), rng.choice(names)],
            float(i * 300),
            rng.choice(["view", "cart"]),
        )
        pop.learn_one(e)
        if i % 3 == 0:
            u.learn_one(e)
    prior = pop.predict_dense(index)
    assert prior.min() > 0 and prior.sum() == pytest.approx(1.0)
    p = u.predict_proba_one({}, prior=dict(zip(names, prior.tolist(), strict=True)))
    dense = u.predict_dense(prior, index)
    assert dense == pytest.approx([p[c] for c in names], abs=1e-12)
    assert dense.sum() == pytest.approx(1.0)


def test_state_from_before_per_event_decay_still_loads():
    off = InterestConfig(short_event_half_life=0, long_event_half_life=0)
    u = UserInterest(off)
    for i in range(10):
        u.learn_one(ev("a" if i % 2 else "b", float(i)))
    old = u.state()
    del old["nr"]  # states written before the per-event decay existed
    assert UserInterest.from_state(old, off).predict_proba_one({}) == u.predict_proba_one({})
    resumed = UserInterest.from_state(old)  # the default (per-event decay on) takes it up
    resumed.learn_one(ev("c", 11.0))
    assert math.isclose(sum(resumed.predict_proba_one({}).values()), 1.0)


def test_drift_is_flagged_after_an_interest_shift_and_short_term_takes_over():
    u = UserInterest()
    flags = []
    for i in range(200):
        u.learn_one(ev("old" if i < 100 else "new", float(i * 60)))
        flags.append(u.drift_detected)
        if i == 99:
            assert u.short_weight() == u._cfg.short_weight
        if u.drift_detected and "short" not in locals():
            short, long_ = u.horizons()  # at the detected shift
    first = flags.index(True)
    assert 100 <= first < 110, first
    assert not any(flags[:100])
    assert short["new"] > long_["new"]


def test_population_prior_tracks_recent_popularity():
    pop = PopulationInterest(InterestConfig(population_half_life=10.0))
    for i in range(50):
        pop.learn_one(ev("early", float(i)))
    for i in range(50, 60):
        pop.learn_one(ev("late", float(i)))
    p = pop.predict_proba_one({})
    assert p["late"] > p["early"]


def _two_horizon_log(burst_users: bool) -> list[tuple[dict, int]]:
    """(event, the user's earlier events): 20 days of either new users who follow each day's
    trend, or new users who pick from a stable mix while old users rate one category a day
    in bulk (which new users do not follow)."""
    rng = random.Random(0)
    out = []
    for day in range(20):
        for i in range(200):
            ts = day * 86400.0 + i * 400.0
            if burst_users:
                out.append((ev(f"burst{day}", ts), 100))  # an old user's bulk ratings
                out.append((ev(rng.choice("abc"), ts + 1), 0))  # a new user
            else:
                out.append((ev(f"trend{day}", ts), 0))
    return out


@pytest.mark.parametrize("burst_users, short_wins", [(False, True), (True, False)])
def test_population_learns_which_horizon_serves_new_users(burst_users, short_wins):
    pop = PopulationInterest()
    for e, k in _two_horizon_log(burst_users):
        pop.learn_one(e, user_events=k)
    assert (pop.short_weight() > 0.9) if short_wins else (pop.short_weight() < 0.1)
    if burst_users:  # the prior new users get: their mix, not today's bulk ratings
        p = pop.predict_smoothed()
        assert p["a"] > 0.15 and p["burst19"] < 0.1


def test_population_state_round_trips_and_older_states_load_without_a_jump():
    log = _two_horizon_log(False)
    pop = PopulationInterest()
    for e, k in log[:2000]:
        pop.learn_one(e, user_events=k)
    again = PopulationInterest.from_state(pop.state())
    for e, k in log[2000:]:
        pop.learn_one(e, user_events=k)
        again.learn_one(e, user_events=k)
    assert again.state() == pop.state() and again.predict_smoothed() == pop.predict_smoothed()
    only_long = InterestConfig(population_short_half_life=0.0)
    older = {k: v for k, v in pop.state().items() if k in PopulationInterest(only_long).state()}
    assert set(older) == {"t", "ref", "m", "r", "n"}  # as a state from before the short horizon
    migrated = PopulationInterest.from_state(older)
    long_only = PopulationInterest.from_state(older, only_long).predict_smoothed()
    assert migrated.predict_smoothed() == pytest.approx(long_only)


def test_merged_population_of_one_partition_is_its_mixed_distribution():
    """The dashboard's population view shows what the prior mixes, not the long horizon."""
    pop = PopulationInterest()
    for e, k in _two_horizon_log(False):
        pop.learn_one(e, user_events=k)
    merged = merged_distribution([pop.state()])
    assert pop.short_weight() > 0.9
    assert merged == pytest.approx(pop.predict_proba_one())
    assert merged["trend19"] > 0.3  # today's trend, as the short horizon says (long: ~0.06)


def test_only_new_users_events_score_the_horizons():
    pop = PopulationInterest()
    for e, _ in _two_horizon_log(False)[:500]:
        pop.learn_one(e, user_events=5)  # users with 5 earlier events: not cold
        pop.learn_one(e)  # and events without a count
    assert pop.state()["ls"] == [0.0, 0.0] and pop.short_weight() == 0.5


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
    assert snap["version"] == snap["n_events"] == 7 and len(record.history) == 5
    assert snap["explain"][0]["moved"] >= snap["explain"][-1]["moved"]


def test_apply_event_records_history_in_order():
    cfg = TrackerConfig(history=3)
    record = UserRecord(cfg)
    for i in range(5):
        apply_event(record, dict(ev("a", float(i)), item_id=str(i)), cfg)
    assert [h[0] for h in record.history] == ["2", "3", "4"]
