"""What is published is what is evaluated: a subscriber scores frozen snapshots of taobao-head.

The first 80% of taobao-head (by time) go through a real worker (one partition, so the
population prior is the whole log's). Each user's last snapshot then predicts the user's later
events the way the README tells a subscriber to read it (``_other`` spread over the unnamed
categories in proportion to the population snapshot). The snapshots must equal the offline
estimator's for the same events and population state, and beat a decayed histogram with a
popularity prior cut to the same top k.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from models.data.loaders import load_events
from models.evaluation.baselines import DecayedHistogram
from models.evaluation.vocabulary import Vocabulary
from models.online import PopulationInterest
from models.priors.population import PopulationPrior, score_snapshots
from models.schema import POPULATION_PREFIX
from models.tracker import TrackerConfig, build_snapshot, prior_depth, replay, top_k
from stream.codec import decode_snapshot

pytestmark = pytest.mark.kafka


def read_finals(
    consumer: KafkaConsumer, counts: dict[str, int], n_total: int, timeout: float = 420
):
    """Each user's latest snapshot once it covers all their events, and the population snapshot
    once it covers all events, from ``consumer`` (of the snapshot topic)."""
    latest: dict[str, dict] = {}
    done: set[str] = set()
    population: dict | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in consumer:
            snap = decode_snapshot(msg.value)
            if msg.key.decode().startswith(POPULATION_PREFIX):
                if snap.get("n_events") == n_total:
                    population = snap
                continue
            latest[snap["user_id"]] = snap
            if snap["n_events"] == counts[snap["user_id"]]:
                done.add(snap["user_id"])
        if population is not None and len(done) == len(counts):
            break
    assert population is not None, "no population snapshot covering every event"
    assert len(done) == len(counts), f"{len(counts) - len(done)} users without a final snapshot"
    return latest, population


def offline_snapshots(head: list[dict], finals: dict[str, dict], cfg: TrackerConfig) -> dict:
    """Each user's snapshot rebuilt offline: their events, and the population state the worker
    smoothed with (``sources.online.prior.n_events`` events of the partition, in order)."""
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in head:
        by_user[e["user_id"]].append(e)
    wanted: dict[int, list[str]] = defaultdict(list)
    for uid, snap in finals.items():
        wanted[snap["sources"]["online"]["prior"]["n_events"]].append(uid)
    pop = PopulationInterest(cfg.interest)
    seen: dict[str, int] = defaultdict(int)  # each user's events so far, as the worker counts
    out = {}
    for n, e in enumerate([None, *head]):
        if e is not None:
            pop.learn_one(e, user_events=seen[e["user_id"]])
            seen[e["user_id"]] += 1
        if n in wanted:
            prior = PopulationPrior.from_population(pop, prior_depth(cfg))
            for uid in wanted[n]:
                record = replay(by_user[uid], cfg)
                out[uid] = build_snapshot(uid, record, cfg, prior=prior)["distribution"]
    return out


def histogram_snapshots(events: list[dict], head: list[dict], k: int) -> dict[str, dict]:
    """The decayed histogram with a popularity prior, frozen after ``head``, cut to top k."""
    vocab = Vocabulary.from_events(events)
    hist = DecayedHistogram(vocab)
    for e in head:
        hist.learn(e)
    out = {}
    for uid in {e["user_id"] for e in head}:
        p = hist.predict({"user_id": uid, "ts": head[-1]["ts"]})
        out[uid] = top_k(dict(zip(vocab.names, p.tolist(), strict=True)), k)
    return out


def test_subscriber_scores_snapshots_as_evaluate_and_beats_the_histogram(
    shared_data: Path, make_settings, make_worker, make_producer, make_consumer
):
    events = load_events(shared_data / "taobao-head" / "UserBehavior.csv", "taobao")
    split = math.floor(0.8 * len(events))
    head, later = events[:split], events[split:]
    counts: dict[str, int] = defaultdict(int)
    for e in head:
        counts[e["user_id"]] += 1
    env, settings = make_settings(INTEREST_PARTITIONS="1")
    with make_worker(env):
        with make_producer(settings) as producer:
            for e in head:
                producer.send(e)
        consumer = make_consumer(settings, timeout_s=1.0)
        finals, population = read_finals(consumer, counts, len(head))
    cfg = TrackerConfig(interest=settings.interest, top_k=settings.top_k)
    published = {u: s["distribution"] for u, s in finals.items()}
    offline = offline_snapshots(head, finals, cfg)
    wrong = [
        u
        for u, d in published.items()
        if d.keys() != offline[u].keys() or any(abs(d[c] - offline[u][c]) > 1e-9 for c in d)
    ]
    assert wrong == [], (
        f"{len(wrong)} published snapshots differ from the offline estimator's; e.g. "
        f"{wrong[0]}: {finals[wrong[0]]} vs {offline[wrong[0]]}"
        if wrong
        else ""
    )

    pop, n_cats = population["distribution"], population["n_categories"]
    got = score_snapshots(published, pop, n_cats, later)
    want = score_snapshots(offline, pop, n_cats, later)
    own = score_snapshots({u: s["own"] for u, s in finals.items()}, pop, n_cats, later)
    hist = score_snapshots(histogram_snapshots(events, head, settings.top_k), pop, n_cats, later)
    print(
        f"\nsubscriber: NLL {got.nll:.3f} Hit@1 {got.hits}/{got.n_users} over {got.n_events}"
        f" later events; offline {want.nll:.3f} {want.hits}/{want.n_users};"
        f" own distribution {own.nll:.3f} {own.hits}/{own.n_users};"
        f" decayed histogram top-{settings.top_k}: NLL {hist.nll:.3f} {hist.hits}/{hist.n_users}"
    )
    assert got.nll == pytest.approx(want.nll, abs=1e-9) and got.hits == want.hits
    assert got.n_events == hist.n_events and got.n_users == hist.n_users
    assert got.nll < min(hist.nll, own.nll)
    # Hit@1 on each user's next event: smoothing must not hurt the ranking (the histogram's
    # Hit@1 is printed, not asserted: ours is below it on this log, see the README's Results).
    assert got.hits >= own.hits
