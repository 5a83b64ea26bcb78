"""Replaying one predictor over an event log: the protocol's scoring loop and its metrics.

Events are replayed in stable time order. The first ``floor(0.8 n)`` are warm-up (learned
only); every later event is predicted from the state built on all earlier events, scored, and
then learned. A predictor's ``predict`` sees only ``{"user_id", "ts"}`` of the event it must
predict, never its item, categories or type.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from models.evaluation import metrics
from models.evaluation.baselines import (
    Predictor,
)
from models.evaluation.vocabulary import Vocabulary

WARMUP_FRACTION = 0.8
WARM_MIN_EVENTS = 5
FUTURE_HORIZON = 20
HIT_KS = (1, 5, 10)
JSON_KEYS = (
    "nll",
    "hit@1",
    "hit@5",
    "hit@10",
    "nll_warm",
    "kl_future",
    "miscalibration",
    "seconds",
    "hit@1_warm",
    "nll_cold",
    "hit@1_cold",
)


@dataclass
class Row:
    """One line of the evaluation table (metric name -> value, plus counts).

    Examples
    --------
    >>> r = Row("popularity", {"nll": 1.0, "hit@1": 0.5}, n=10)
    >>> r.to_json()["nll"], r.to_json()["hit@5"], r.to_json()["name"]
    (1.0, None, 'popularity')
    >>> Row("x", {"nll_warm": float("nan")}).to_json()["nll_warm"] is None  # no warm users
    True
    """

    name: str
    values: dict[str, float] = field(default_factory=dict)
    n: int = 0
    n_warm: int = 0
    n_cold: int = 0

    def to_json(self) -> dict:
        """The row as written to the JSON report: ``name`` and exactly the ``JSON_KEYS``."""
        return {"name": self.name, **{k: _finite(self.values.get(k)) for k in JSON_KEYS}}


def _finite(v: float | None) -> float | None:
    """``None`` for a missing or NaN value (JSON has no NaN)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


@dataclass
class ReplayContext:
    """Everything the rows share: events in replay order, the vocabulary and the split.

    ``targets[i]`` are event ``i``'s category indices, ``prior[i]`` how many earlier events
    its user has, ``futures[i]`` its ``q_future`` (sparse indices and values) for scored events.

    Examples
    --------
    >>> evs = [{"user_id": "u", "categories": [c], "ts": float(i)} for i, c in enumerate("abab")]
    >>> ctx = ReplayContext.build(evs, warmup=0.5)
    >>> ctx.split, ctx.vocab.names, ctx.prior.tolist()
    (2, ['a', 'b'], [0, 1, 2, 3])
    >>> ctx.futures[2][1].tolist()  # next events of u from event 2: a, b
    [0.5, 0.5]
    """

    events: list[dict]
    vocab: Vocabulary
    split: int
    targets: list[np.ndarray]
    prior: np.ndarray
    futures: dict[int, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def build(
        cls,
        events: list[dict],
        warmup: float = WARMUP_FRACTION,
        horizon: int = FUTURE_HORIZON,
        vocab: Vocabulary | None = None,
    ) -> ReplayContext:
        vocab = vocab or Vocabulary.from_events(events)
        split = math.floor(warmup * len(events))
        targets = [vocab.encode(e["categories"]) for e in events]
        prior = np.zeros(len(events), dtype=np.int64)
        by_user: dict[object, list[int]] = {}
        for i, e in enumerate(events):
            seq = by_user.setdefault(e["user_id"], [])
            prior[i] = len(seq)
            seq.append(i)
        futures: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for seq in by_user.values():
            first = next((j for j, i in enumerate(seq) if i >= split), None)
            if first is None:
                continue
            mixes = metrics.future_mixes(
                [targets[i] for i in seq], range(first, len(seq)), horizon=horizon
            )
            for j, mix in mixes.items():
                futures[seq[j]] = mix
        return cls(events, vocab, split, targets, prior, futures)

    @property
    def n_scored(self) -> int:
        return len(self.events) - self.split


def replay(
    predictor: Predictor,
    ctx: ReplayContext,
    progress: bool = False,
    prefetch: Callable[[list[dict]], None] | None = None,
    chunk_size: int = 512,
) -> Row:
    """Warm-up, then predict-score-learn on every later event; one :class:`Row`.

    With ``prefetch``, ``prefetch(events)`` is called with each next chunk of scored events
    (at most ``chunk_size``) before they are predicted and learned one by one: see
    :class:`PrefetchedPredictor`, which scores a chunk in a few batches.

    Examples
    --------
    >>> evs = [{"user_id": "u", "categories": [c], "ts": float(i)} for i, c in enumerate("aaab")]
    >>> ctx = ReplayContext.build(evs, warmup=0.5)
    >>> from models.evaluation.baselines import Popularity
    >>> row = replay(Popularity(ctx.vocab), ctx)
    >>> row.n, row.values["hit@1"]  # a after a, a: hit; b after a, a, a: miss
    (2, 0.5)
    >>> round(row.values["nll"], 3)  # (-log(2.001 / 2.002) - log(0.001 / 3.002)) / 2
    4.004
    """
    name = getattr(predictor, "name", type(predictor).__name__)
    events, split = ctx.events, ctx.split
    start = time.perf_counter()
    n_total = len(events)
    bar = tqdm(total=n_total, desc=f"{name:>16}", unit="ev", disable=not progress, mininterval=0.5)
    learn = predictor.learn
    for i in range(split):
        learn(events[i])
        if progress and i % 4096 == 0:
            bar.update(i - bar.n)
    n_scored = n_total - split
    nll = np.zeros(n_scored)
    ranks = np.zeros(n_scored, dtype=np.int64)
    kl = np.zeros(n_scored)
    mis = np.zeros(n_scored)
    warm = ctx.prior[split:] >= WARM_MIN_EVENTS
    size = len(ctx.vocab)
    for j, i in enumerate(range(split, n_total)):
        e = events[i]
        if prefetch is not None and j % chunk_size == 0:
            prefetch(events[i : i + chunk_size])
        p = np.asarray(predictor.predict({"user_id": e["user_id"], "ts": e["ts"]}), dtype=float)
        if p.shape != (size,):
            raise ValueError(f"{name}: predicted shape {p.shape}, expected ({size},)")
        t = ctx.targets[i]
        nll[j] = metrics.nll(p, t)
        ranks[j] = metrics.rank(p, t)
        q_idx, q_val = ctx.futures[i]
        kl[j] = metrics.kl_divergence(q_idx, q_val, p)
        mis[j] = metrics.miscalibration(q_idx, q_val, p)
        learn(e)
        if progress and j % 1024 == 0:
            bar.update(i - bar.n)
    bar.update(n_total - bar.n)
    bar.close()
    values = _summaries(nll, ranks, warm)
    values["kl_future"] = _mean(kl)
    values["miscalibration"] = _mean(mis)
    values["seconds"] = time.perf_counter() - start
    return Row(name, values, n=n_scored, n_warm=int(warm.sum()), n_cold=int((~warm).sum()))


class PrefetchedPredictor:
    """Batched scoring of a per-user predictor (the Transformer) inside :func:`replay`.

    Valid only for a predictor whose prediction for a user depends on nothing but that user's
    own earlier events. ``prefetch(events)`` takes the next chunk of scored events and, in
    rounds, predicts the r-th event of every user in the chunk at once (``predict_many`` when
    the inner predictor has it) and then learns those events: each prediction sees exactly the
    user's events before it, as in a one-by-one replay. ``predict`` then serves the user's next
    cached vector and ``learn`` skips events already learned. Other attributes (``name``,
    ``checkpoint_extra``, ...) are the inner predictor's.

    Examples
    --------
    >>> class PerUser:
    ...     name = "count"
    ...     def __init__(self): self.n = {}
    ...     def predict(self, q): return np.array([self.n.get(q["user_id"], 0)])
    ...     def learn(self, e): self.n[e["user_id"]] = self.n.get(e["user_id"], 0) + 1
    >>> p = PrefetchedPredictor(PerUser())
    >>> p.learn({"user_id": "u", "ts": -1.0})
    >>> chunk = [{"user_id": u, "ts": float(t)} for t, u in enumerate("uvu")]
    >>> p.prefetch(chunk)  # u's second event is predicted once u's first is learned
    >>> out = []
    >>> for e in chunk:
    ...     out.append(int(p.predict(e)[0]))
    ...     p.learn(e)
    >>> out, p.inner.n, p.name
    ([1, 0, 2], {'u': 3, 'v': 1}, 'count')
    """

    def __init__(self, inner: Predictor):
        self.inner = inner
        self._cache: dict[object, deque] = {}
        self._learned: dict[object, int] = {}

    def __getattr__(self, attr: str):
        if attr == "inner":  # not yet set (e.g. while unpickling)
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def prefetch(self, events: list[dict]) -> None:
        queues: dict[object, list[dict]] = {}
        for e in events:
            queues.setdefault(e["user_id"], []).append(e)
        many = getattr(self.inner, "predict_many", None)
        self._cache = {user: deque() for user in queues}
        for r in range(max(len(q) for q in queues.values())):
            batch = [q[r] for q in queues.values() if len(q) > r]
            queries = [{"user_id": e["user_id"], "ts": e["ts"]} for e in batch]
            rows = many(queries) if many is not None else [self.inner.predict(q) for q in queries]
            for e, row in zip(batch, rows, strict=True):
                self._cache[e["user_id"]].append(row)
                self.inner.learn(e)
                self._learned[e["user_id"]] = self._learned.get(e["user_id"], 0) + 1

    def predict(self, event: dict) -> np.ndarray:
        queue = self._cache.get(event["user_id"])
        return queue.popleft() if queue else self.inner.predict(event)

    def learn(self, event: dict) -> None:
        user = event["user_id"]
        pending = self._learned.get(user, 0)
        if pending:
            self._learned[user] = pending - 1
        else:
            self.inner.learn(event)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _summaries(nll: np.ndarray, ranks: np.ndarray, warm: np.ndarray) -> dict[str, float]:
    """All events, the warm slice and the cold slice (the rest: a user's first 5 events)."""
    out = {"nll": _mean(nll)}
    for k in HIT_KS:
        out[f"hit@{k}"] = _mean(ranks < k)
    for suffix, mask in (("_warm", warm), ("_cold", ~warm)):
        out[f"nll{suffix}"] = _mean(nll[mask])
        for k in HIT_KS:
            out[f"hit@{k}{suffix}"] = _mean(ranks[mask] < k)
    return out
