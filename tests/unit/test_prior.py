"""The published (prior-smoothed) snapshot, the subscriber's reading of it, and the
collaborative prior."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from models.data.synthetic import SyntheticConfig, synthetic_events
from models.online import InterestConfig, PopulationInterest, UserInterest
from models.priors.collaborative import (
    CategoryCoOccurrence,
    CollaborativeMixture,
    CollaborativePrior,
    CoOccurrenceConfig,
)
from models.priors.population import PopulationPrior, SubscriberView, score_snapshots
from models.schema import OTHER
from models.tracker import TrackerConfig, build_snapshot, prior_depth, replay, top_k

pytestmark = pytest.mark.unit


def _population(events) -> PopulationInterest:
    pop = PopulationInterest()
    for e in events:
        pop.learn_one(e)
    return pop


@pytest.fixture(scope="module")
def synthetic():
    return list(synthetic_events(SyntheticConfig(users=30, seed=3), 3000))


def test_candidates_prediction_equals_the_full_smoothed_one(synthetic):
    pop = _population(synthetic)
    prior = pop.predict_smoothed()
    rng = random.Random(0)
    users = sorted({e["user_id"] for e in synthetic})
    for uid in rng.sample(users, 10):
        u = UserInterest(InterestConfig(max_categories=4))  # a residual outside the tracked
        for e in (e for e in synthetic if e["user_id"] == uid):
            u.learn_one(e)
        full = u.predict_proba_one({}, prior=prior)
        part = u.predict_candidates(prior, list(prior)[:3])
        for c, p in part.items():
            if c != OTHER:
                assert p == pytest.approx(full[c], abs=1e-12)
        rest = sum(p for c, p in full.items() if c not in part)
        assert part[OTHER] == pytest.approx(rest, abs=1e-12)


def test_population_smoothed_prior_equals_its_dense_prediction(synthetic):
    pop = _population(synthetic)
    probs = pop.predict_smoothed()
    index = {c: i for i, c in enumerate(probs)}
    assert np.allclose(list(probs.values()), pop.predict_dense(index), atol=1e-15)
    assert sum(probs.values()) == pytest.approx(1.0)
    state = pop.state()
    assert state["n"] == len(synthetic) == PopulationInterest.from_state(state).n_events
    del state["n"]  # a state written before the count
    assert PopulationInterest.from_state(state).n_events == 0


def test_snapshot_publishes_the_top_k_of_the_smoothed_estimate(synthetic):
    cfg = TrackerConfig(top_k=5)
    pop = _population(synthetic)
    prior = PopulationPrior.from_population(pop, prior_depth(cfg))
    full_prior = pop.predict_smoothed()
    for uid in sorted({e["user_id"] for e in synthetic})[:8]:
        record = replay([e for e in synthetic if e["user_id"] == uid], cfg)
        snap = build_snapshot(uid, record, cfg, prior=prior)
        user = record.interest
        want = top_k(user.predict_proba_one({}, prior=full_prior), cfg.top_k)
        assert snap["distribution"].keys() == want.keys()
        assert all(snap["distribution"][c] == pytest.approx(want[c], abs=1e-12) for c in want)
        assert snap["own"] == top_k(user.predict_proba_one({}), cfg.top_k)
        assert snap["sources"]["online"]["prior"] == {"n_events": len(synthetic), "ts": pop.last_ts}
    with pytest.raises(ValueError, match="too few"):
        build_snapshot("u", record, cfg, prior=PopulationPrior.from_population(pop, depth=3))


def test_subscriber_recovers_every_unshown_category_when_all_tracked_ones_are_named(synthetic):
    cfg = TrackerConfig(interest=InterestConfig(max_categories=6), top_k=35)
    pop = _population(synthetic)
    prior = PopulationPrior.from_population(pop, prior_depth(cfg))
    uid = synthetic[-1]["user_id"]
    record = replay([e for e in synthetic if e["user_id"] == uid], cfg)
    snap = build_snapshot(uid, record, cfg, prior=prior)
    tracked = set(record.interest.state()["s"]) | set(record.interest.state()["l"])
    assert tracked <= set(snap["distribution"])  # what makes the reading exact
    popsnap = prior.population_snapshot(top=45)  # the 5 least popular only in its _other
    view = SubscriberView(snap["distribution"], popsnap["distribution"], popsnap["n_categories"])
    full = record.interest.predict_proba_one({}, prior=pop.predict_smoothed())
    spread = [c for c in full if c not in snap["distribution"] and c in popsnap["distribution"]]
    assert len(spread) >= 10
    for c in spread:  # exact where the population snapshot names the category
        assert view.prob(c) == pytest.approx(full[c], rel=1e-9)
    assert sum(view.prob(c) for c in full) == pytest.approx(1.0, abs=1e-9)


def test_scoring_counts_every_later_event_and_each_users_next_one():
    later = [
        {"user_id": "u", "categories": ["a"]},
        {"user_id": "v", "categories": ["b", "c"]},
        {"user_id": "u", "categories": ["b"]},
        {"user_id": "x", "categories": ["a"]},  # no snapshot: not scored
    ]
    dists = {"u": {"a": 0.5, "b": 0.25, OTHER: 0.25}, "v": {"c": 0.5, OTHER: 0.5}}
    s = score_snapshots(dists, {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}, 4, later)
    # v: b gets 0.5 * 0.25 / 0.75; u: a hit, v: c hit
    want = -(math.log(0.5) + (math.log(0.5 / 3) + math.log(0.5)) / 2 + math.log(0.25)) / 3
    assert s.nll == pytest.approx(want) and (s.hits, s.n_users, s.n_events) == (2, 2, 3)


def test_co_occurrence_rows_stay_bounded_and_round_trip():
    co = CategoryCoOccurrence(CoOccurrenceConfig(max_row=3, context=2))
    rng = random.Random(1)
    for _ in range(500):
        ctx = {f"c{rng.randrange(10)}": rng.random() for _ in range(4)}
        co.learn_one({"context": ctx}, [f"c{rng.randrange(10)}"])
    rows = co.state()["rows"]
    assert rows and all(len(r) <= 2 * 3 for r in rows.values())
    q = co.predict_proba_one({"context": {"c1": 0.7, "c2": 0.3}})
    assert sum(q.values()) == pytest.approx(1.0)
    back = CategoryCoOccurrence.from_state(co.state(), co.config)
    assert back.predict_proba_one({"context": {"c1": 0.7, "c2": 0.3}}) == pytest.approx(q)


def test_collaborative_weight_is_fitted_and_fades_with_the_users_evidence():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 100, 4000)
    # the collaborative estimate is right for new users, less and less often later
    collab_right = rng.random(4000) < 1 / (1 + np.exp(-(2.0 - 1.2 * np.log1p(n))))
    good, bad = 0.8, 0.05
    online = [[bad if r else good] for r in collab_right]
    collab = [[good if r else bad] for r in collab_right]
    mix = CollaborativeMixture.fit(online, collab, n.tolist())
    assert mix.params.age_slope < 0  # b: the fade
    assert mix.weight(1) > 0.5 > mix.weight(5) > mix.weight(50) and mix.weight(50) < 0.2
    assert mix.params.nll_fused < min(mix.params.nll_online, mix.params.nll_sequence)
    assert CollaborativeMixture.from_dict(mix.to_dict()) == mix


def test_trained_prior_is_saved_loaded_and_mixed_into_the_snapshot(tmp_path, synthetic, capsys):
    from stream.cli.entry import main

    path = tmp_path / "events.csv"
    rows = ["user_id,item_id,category,event_type,ts"]
    rows += [
        f"{e['user_id']},{e['item_id']},{e['categories'][0]},view,{e['ts']}" for e in synthetic
    ]
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "prior.json"
    assert main(["prior", "--data", str(path), "--out", str(out)]) == 0
    assert "fitted collaborative weight" in capsys.readouterr().out
    collab = CollaborativePrior.load(out)
    assert collab.cooccurrence.state() and collab.mixture.params.n_events > 0
    cfg = TrackerConfig()
    record = replay([e for e in synthetic if e["user_id"] == synthetic[0]["user_id"]][:3], cfg)
    plain = build_snapshot("u", record, cfg)
    mixed = build_snapshot("u", record, cfg, collaborative=collab)
    assert sum(mixed["distribution"].values()) == pytest.approx(1.0)
    own = record.interest.predict_proba_one({})
    want = top_k(collab.apply(own, own, 3), cfg.top_k)
    assert (
        mixed["distribution"] == pytest.approx(want)
        and mixed["distribution"] != plain["distribution"]
    )


def test_worker_fuses_the_sequence_model_with_the_collaborative_estimate(synthetic):
    """A worker with a collaborative prior fuses the Transformer with the estimate it would
    publish without it, using the weights fitted for that base."""
    import time
    from types import SimpleNamespace

    from models.fusion import FusionParams
    from stream.scoring import StreamScorer

    co = CategoryCoOccurrence()
    users: dict[str, UserInterest] = {}
    for e in synthetic:
        u = users.setdefault(e["user_id"], UserInterest())
        if u.n_events:
            co.learn_one({"context": u.predict_proba_one({})}, e["categories"])
        u.learn_one(e)
    mix = CollaborativeMixture(FusionParams(history_edges=(), logits=(0.0,), age_slope=0.0))
    collab = CollaborativePrior(co, mix)
    fits = {
        "fusion": FusionParams(logits=(2.0,) * 7),
        "fusion_collaborative": FusionParams(logits=(-1.0,) * 7),
    }
    checkpoint = SimpleNamespace(version="v1", extra={k: p.to_dict() for k, p in fits.items()})
    cfg = TrackerConfig()
    scorer = StreamScorer(SimpleNamespace(settings=SimpleNamespace(), cfg=cfg), checkpoint)
    record = replay([e for e in synthetic if e["user_id"] == synthetic[0]["user_id"]][:4], cfg)
    seq = ({"zz": 1.0}, time.time(), "v1", None)  # the Transformer: all on one category
    own = record.interest.own_distribution()

    plain = scorer.fused_snapshot("u", record, seq)
    mixed = scorer.fused_snapshot("u", record, seq, collaborative=collab)
    w_plain, w_mixed = (fits[k].sequence_weight(4) for k in fits)
    assert plain["sources"]["sequence"]["weight"] == pytest.approx(w_plain, abs=1e-3)
    assert mixed["sources"]["sequence"]["weight"] == pytest.approx(w_mixed, abs=1e-3)
    assert mixed["sources"]["online"]["collaborative"] is True
    assert plain["sources"]["online"]["collaborative"] is False
    base = collab.apply(own, own, 4)
    want = {c: (1 - w_mixed) * p for c, p in base.items()}
    want["zz"] = w_mixed
    assert mixed["distribution"] == pytest.approx(top_k(want, cfg.top_k), abs=1e-3)
