"""Content features on a hand-made catalog: LDA topics, topic tracking in the snapshot, and
categories for uncategorised items from their nearest neighbours (TF-IDF and embeddings)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from models.priors.content import ContentConfig, TopicModel, sentence_embeddings
from models.tracker import TrackerConfig, build_snapshot, replay
from stream.catalog import add_topics, fill_categories, resolve_categories

pytestmark = pytest.mark.unit

WINE = [
    "red wine from merlot grapes aged in oak barrels",
    "white wine grapes vineyard harvest and cellar",
    "sparkling wine bottle from the vineyard cellar",
    "oak barrel red wine grapes tasting",
    "vineyard tour wine tasting cellar",
]
SPORT = [
    "football match goal in the league final",
    "league table after the football match",
    "goalkeeper saves a penalty in the match",
    "football league season goal scorers",
    "the match ended with a late goal",
]


def catalog() -> list[tuple[str, dict]]:
    items = [(f"w{i}", {"title": t, "categories": ["drinks"]}) for i, t in enumerate(WINE)]
    items += [(f"s{i}", {"title": t, "categories": ["sports"]}) for i, t in enumerate(SPORT)]
    return items


def test_lda_topics_separate_the_two_themes_of_a_hand_made_catalog():
    entries = catalog()
    terms = add_topics(entries, ContentConfig(n_topics=2, seed=0))
    wine = {tuple(e["topics"]) for i, e in entries if i.startswith("w")}
    sport = {tuple(e["topics"]) for i, e in entries if i.startswith("s")}
    assert len(wine) == len(sport) == 1 and wine != sport
    (wine_topic,) = next(iter(wine))
    assert "wine" in terms[wine_topic]
    first, second = (TopicModel(ContentConfig(n_topics=2, seed=0)).fit(WINE + SPORT) for _ in "ab")
    assert first.top_terms() == second.top_terms()  # seeded: the same topics every time


def test_a_users_topic_distribution_is_tracked_and_published():
    entries = dict(catalog())
    add_topics(list(entries.items()), ContentConfig(n_topics=2, seed=0))
    wine_topic = entries["w0"]["topics"][0]
    events = []
    for i, item in enumerate(["w0", "w1", "s0", "w2", "w3"]):
        e = {"user_id": "u", "item_id": item, "categories": None, "event_type": "view"}
        events.append(resolve_categories({**e, "ts": float(i)}, entries))
    cfg = TrackerConfig()
    snap = build_snapshot("u", replay(events, cfg), cfg)
    topics = snap["topics"]
    assert max((t for t in topics if t != "_other"), key=topics.get) == wine_topic
    assert sum(topics.values()) == pytest.approx(1.0)
    assert set(snap["own"]) == {"drinks", "sports", "_other"}
    plain = build_snapshot("v", replay([{**events[0], "topics": []}], cfg), cfg)
    assert "topics" not in plain  # no content topics: no field


def test_uncategorised_items_get_their_text_neighbours_categories_by_tfidf():
    entries = catalog()
    entries += [
        ("q1", {"title": "a glass of red wine from the cellar", "categories": []}),
        ("q2", {"title": "a late goal in the football league", "categories": []}),
    ]
    assert fill_categories(entries, "tfidf", neighbours=3) == 2
    filled = dict(entries)
    assert filled["q1"]["categories"] == ["drinks"]
    assert filled["q2"]["categories"] == ["sports"]


def test_sentence_embeddings_load_offline_and_fill_categories(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any download attempt would fail
    vectors = sentence_embeddings(["a bottle of merlot", "red wine", "a football match"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    entries = catalog() + [("q", {"title": "champagne and a cheese board", "categories": []})]
    fill_categories(entries, "embeddings", neighbours=3)
    assert dict(entries)["q"]["categories"] == ["drinks"]
    assert os.environ["HF_HUB_OFFLINE"] == "1"
