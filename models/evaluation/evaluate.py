"""The offline replay harness behind ``interest-tracker evaluate`` (DESIGN.md §Evaluation).

Events are replayed in stable time order. The first ``floor(0.8 n)`` are warm-up (learned
only); every later event is predicted from the state built on all earlier events, scored, and
then learned. A row is one :class:`~models.baselines.Predictor` replayed on its own; its
``predict`` sees only ``{"user_id", "ts"}`` of the event it must predict, never its item,
categories or type.

Per row: ``nll``, ``hit@1/5/10`` over all scored events, over warm users' events (the user
has at least 5 earlier events) and over the cold slice (each user's first 5 events),
``kl_future`` = ``KL(q_future ‖ p)`` with ``q_future`` the user's category mix over their
next 20 events (the predicted one included), Steck's
``miscalibration`` ``KL(q_future ‖ 0.99 p + 0.01 q_future)``, and ``seconds`` (wall time of the
whole replay of the row, scoring included).

The ``transformer`` and ``fused`` rows come from ``models.sequence`` / ``models.fusion`` through
:func:`sequence_rows`, imported lazily; without a checkpoint or those modules they are left
out with a note, never faked.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models import metrics
from models.baselines import DecayedHistogram, MarkovOne, Popularity, Predictor, RiverClassifier
from models.metrics import Vocabulary

WARMUP_FRACTION = 0.8
WARM_MIN_EVENTS = 5
FUTURE_HORIZON = 20
HIT_KS = (1, 5, 10)
ROW_ORDER = (
    "popularity",
    "markov-1",
    "user-histogram",
    "river-classifier",
    "online",
    "collaborative",
    "transformer",
    "fused",
)
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
    ``fusion_params``, ...) are the inner predictor's.

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


class OnlinePredictor:
    """The project's online estimator (``models.online``) behind the predictor protocol.

    One ``UserInterest`` per user, smoothed toward a ``PopulationInterest`` prior; a user's
    first event gets the population distribution. The prior is the population's over the
    whole vocabulary with ``population_smoothing`` pseudo-events per category (as the
    popularity baseline's +0.001), and both are computed as dense vectors
    (``predict_dense``): the same numbers as ``predict_proba_one(x, prior)``, without a dict
    over every category per event.

    Parameters
    ----------
    vocab
        The dense category index.
    config
        An ``models.online.InterestConfig``; the default settings when omitted.

    Examples
    --------
    >>> v = Vocabulary(["a", "b"])
    >>> online = OnlinePredictor(v)
    >>> for i, c in enumerate("aab"):
    ...     online.learn({"user_id": "u", "categories": [c], "event_type": "view", "ts": float(i)})
    >>> p = online.predict({"user_id": "u", "ts": 3.0})
    >>> bool(p[0] > p[1]), round(float(p.sum()), 6)
    (True, 1.0)
    """

    name = "online"

    def __init__(self, vocab: Vocabulary, config=None):
        from models import online

        self.vocab = vocab
        self.config = config
        self._online = online
        self._population = online.PopulationInterest(config)
        self._users: dict = {}

    def predict(self, event: dict) -> np.ndarray:
        prior = self._population.predict_dense(self.vocab.index)
        user = self._users.get(event["user_id"])
        return prior if user is None else user.predict_dense(prior, self.vocab.index)

    def learn(self, event: dict) -> None:
        user = self._users.get(event["user_id"])
        if user is None:
            user = self._users[event["user_id"]] = self._online.UserInterest(self.config)
        user.learn_one(event)
        self._population.learn_one(event)


class CollaborativePredictor(OnlinePredictor):
    """The online estimate mixed with the collaborative prior (``models.collaborative``).

    ``p = (1 - w) p_online + w q``: ``q`` from category co-occurrence given the user's own
    distribution, ``w`` fading with the user's event count, fitted on the last
    ``fit_fraction`` of the warm-up (each event predicted before it is learned there) when
    the warm-up ends, i.e. on the ``split``-th learned event.

    Examples
    --------
    >>> v = Vocabulary(["a", "b", "c"])
    >>> evs = [{"user_id": u, "categories": [c], "event_type": "view", "ts": float(i)}
    ...        for i, (u, c) in enumerate(zip("uuvvwwxx", "abababab"))]
    >>> collab = CollaborativePredictor(v, split=8, fit_fraction=0.5)
    >>> for e in evs:
    ...     collab.learn(e)
    >>> collab.learn({"user_id": "y", "categories": ["a"], "event_type": "view", "ts": 9.0})
    >>> p = collab.predict({"user_id": "y", "ts": 10.0})  # after a, users went on to b
    >>> bool(p[1] > OnlinePredictor.predict(collab, {"user_id": "y", "ts": 10.0})[1])
    True
    """

    name = "collaborative"

    def __init__(self, vocab: Vocabulary, split: int, config=None, fit_fraction: float = 0.25):
        from models.collaborative import CategoryCoOccurrence, CollaborativeMixture

        super().__init__(vocab, config)
        self.split = split
        self.fit_fraction = fit_fraction
        self.cooc = CategoryCoOccurrence()
        self.mixture = CollaborativeMixture()
        self._mixture_cls = CollaborativeMixture
        self._weight = (config or self._online.InterestConfig()).weight
        self._fit_from = split - math.ceil(fit_fraction * split)
        self._learned = 0
        self._fit_data: tuple[list, list, list] = ([], [], [])

    def _q(self, context: dict[str, float] | None) -> np.ndarray | None:
        if not context:
            return None
        q = self.cooc.predict_proba_one({"context": context})
        return self.vocab.to_dense(q) if q else None

    def predict(self, event: dict) -> np.ndarray:
        p = super().predict(event)
        user = self._users.get(event["user_id"])
        q = self._q(user.predict_proba_one({})) if user is not None else None
        if q is None:
            return p
        w = self.mixture.weight(user.n_events)
        return (1.0 - w) * p + w * q

    def learn(self, event: dict) -> None:
        user = self._users.get(event["user_id"])
        context = user.predict_proba_one({}) if user is not None else None
        if context and self._fit_from <= self._learned < self.split:
            q = self._q(context)
            if q is not None:
                t = self.vocab.encode(event["categories"])
                p = super().predict(event)
                self._fit_data[0].append(p[t].tolist())
                self._fit_data[1].append(q[t].tolist())
                self._fit_data[2].append(user.n_events)
        if context:
            x = {"context": context, "weight": self._weight(event)}
            self.cooc.learn_one(x, event["categories"])
        super().learn(event)
        self._learned += 1
        if self._learned == self.split and self._fit_data[0]:
            self.mixture = self._mixture_cls.fit(*self._fit_data)
            self._fit_data = ([], [], [])

    @property
    def note(self) -> str:
        weights = ", ".join(f"{n}: {self.mixture.weight(n):.2f}" for n in (1, 2, 5, 10, 20, 50))
        return f"fitted collaborative weight by the user's events: {weights}"


def baseline_predictors(vocab: Vocabulary) -> list[Predictor]:
    """The four baselines of the table, in row order."""
    return [Popularity(vocab), MarkovOne(vocab), DecayedHistogram(vocab), RiverClassifier(vocab)]


def online_predictor(vocab: Vocabulary, notes: list[str]) -> Predictor | None:
    """The ``online`` row's predictor; ``None``, with a note, when ``models.online`` is absent."""
    try:
        return OnlinePredictor(vocab)
    except ImportError as exc:
        notes.append(f"online: omitted (models.online unavailable: {exc})")
        return None


def sequence_rows(
    ctx: ReplayContext,
    checkpoint: str | Path | None,
    notes: list[str],
    progress: bool = False,
    wanted: Iterable[str] = ("transformer", "fused"),
) -> list[Row]:
    """Hook for the ``transformer`` and ``fused`` rows (lazy imports, optional checkpoint).

    The contract, kept small so either side can adapt:

    - ``models.sequence.evaluation_predictor(checkpoint, categories) -> Predictor``: the
      Transformer alone, as a predictor whose vectors follow ``categories`` (= ``ctx.vocab.names``,
      sorted names) and whose ``predict`` gets ``{"user_id", "ts"}`` only. Its predictions
      must depend only on the user's own past events: the harness batches them through its
      ``predict_many(queries) -> [n, C]`` when it has one (:class:`PrefetchedPredictor`).
    - ``models.fusion.evaluation_predictor(sequence, online, categories) -> Predictor``: the
      fused estimate, given a fresh Transformer predictor and a fresh online predictor.

    A missing checkpoint, module or function leaves the rows out, with the reason in ``notes``;
    a checkpoint that does not load raises ``ValueError`` with the reason.
    """
    wanted = set(wanted)
    if checkpoint is None:
        notes.append("transformer, fused: omitted (no --checkpoint given)")
        return []
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    try:
        from models import sequence
    except ImportError as exc:
        notes.append(f"transformer, fused: omitted (models.sequence unavailable: {exc})")
        return []
    make_seq = getattr(sequence, "evaluation_predictor", None)
    if make_seq is None:
        notes.append(
            "transformer, fused: omitted (models.sequence has no "
            "evaluation_predictor(checkpoint, categories))"
        )
        return []
    names = ctx.vocab.names

    def load() -> PrefetchedPredictor:
        try:
            return PrefetchedPredictor(make_seq(checkpoint, names))
        except Exception as exc:  # a stale or foreign checkpoint: one line, not a traceback
            raise ValueError(f"cannot load checkpoint {checkpoint}: {exc}") from exc

    rows = []
    if "transformer" in wanted:
        seq = load()
        rows.append(_replay_noted(seq, ctx, notes, progress, "transformer", seq.prefetch))
    if "fused" not in wanted:
        return rows
    try:
        from models import fusion
    except ImportError as exc:
        notes.append(f"fused: omitted (models.fusion unavailable: {exc})")
        return rows
    make_fused = getattr(fusion, "evaluation_predictor", None)
    if make_fused is None:
        notes.append(
            "fused: omitted (models.fusion has no "
            "evaluation_predictor(sequence, online, categories))"
        )
        return rows
    seq = load()
    fused = make_fused(seq, OnlinePredictor(ctx.vocab), names)
    rows.append(_replay_noted(fused, ctx, notes, progress, "fused", seq.prefetch))
    return rows


def _replay_noted(
    predictor: Predictor,
    ctx: ReplayContext,
    notes: list[str],
    progress: bool = False,
    name: str | None = None,
    prefetch: Callable[[list[dict]], None] | None = None,
) -> Row:
    """:func:`replay`, under ``name``, passing on the predictor's ``note`` (if any) to ``notes``."""
    row = replay(predictor, ctx, progress, prefetch)
    row.name = name or row.name
    note = getattr(predictor, "note", "")
    if note:
        notes.append(f"{row.name}: {note}")
    return row


@dataclass
class Report:
    """The evaluation of one dataset: rows in table order and notes on what was left out."""

    dataset: str
    events: int
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    scored: int = 0

    def to_json(self) -> dict:
        """``{"dataset", "events", "rows": [{"name", *JSON_KEYS}]}``."""
        return {
            "dataset": self.dataset,
            "events": self.events,
            "rows": [r.to_json() for r in self.rows],
        }

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def markdown(self) -> str:
        """The table, with a header line naming the data and the scored events."""
        head = (
            f"**{self.dataset}**: {self.events:,} events, {self.scored:,} scored "
            f"(last {1 - WARMUP_FRACTION:.0%}), {self.rows[0].n_warm if self.rows else 0:,} "
            f"from warm users (>= {WARM_MIN_EVENTS} earlier events), "
            f"{self.rows[0].n_cold if self.rows else 0:,} cold (a user's first {WARM_MIN_EVENTS})"
            "\n\n"
        )
        return head + markdown_table(self.rows)


TABLE_COLUMNS = (
    "nll",
    "hit@1",
    "hit@5",
    "hit@10",
    "nll_warm",
    "hit@1_warm",
    "hit@5_warm",
    "hit@10_warm",
    "nll_cold",
    "hit@1_cold",
    "hit@5_cold",
    "kl_future",
    "miscalibration",
    "seconds",
)


def markdown_table(rows: Sequence[Row]) -> str:
    """Rows as a Markdown table (3 decimals; seconds with 1).

    Examples
    --------
    >>> print(markdown_table([Row("x", {"nll": 1.23456, "seconds": 2.0})]).splitlines()[2])
    | x | 1.235 | - | - | - | - | - | - | - | - | - | - | - | - | 2.0 |
    """
    lines = [
        "| row | " + " | ".join(TABLE_COLUMNS) + " |",
        "|---|" + "---:|" * len(TABLE_COLUMNS),
    ]
    for r in rows:
        cells = []
        for k in TABLE_COLUMNS:
            v = r.values.get(k)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("-")
            else:
                cells.append(f"{v:.1f}" if k == "seconds" else f"{v:.3f}")
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate(
    events: list[dict],
    dataset: str = "events",
    checkpoint: str | Path | None = None,
    rows: Iterable[str] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Replay ``events`` (already in time order) through every row; a :class:`Report`.

    ``rows`` restricts the evaluation to some row names (all by default).

    Examples
    --------
    >>> evs = [{"user_id": u, "categories": [c], "event_type": "view", "ts": float(i)}
    ...        for i, (u, c) in enumerate(zip("uvuvuvuvuv", "abababcaba"))]
    >>> rep = evaluate(evs, "toy", rows=["popularity", "markov-1"])
    >>> [r.name for r in rep.rows], rep.scored, rep.notes
    (['popularity', 'markov-1'], 2, [])
    """
    if not events:
        raise ValueError("no events to evaluate")
    wanted = set(ROW_ORDER if rows is None else rows)
    unknown = wanted - set(ROW_ORDER)
    if unknown:
        raise ValueError(f"unknown rows: {', '.join(sorted(unknown))}")
    ctx = ReplayContext.build(events)
    if ctx.n_scored == 0:
        raise ValueError("too few events: nothing left after the 80% warm-up")
    notes: list[str] = []
    predictors = [p for p in baseline_predictors(ctx.vocab) if p.name in wanted]
    if "online" in wanted:
        online = online_predictor(ctx.vocab, notes)
        if online is not None:
            predictors.append(online)
    if "collaborative" in wanted:
        predictors.append(CollaborativePredictor(ctx.vocab, ctx.split))
    out = []
    for predictor in predictors:
        out.append(_replay_noted(predictor, ctx, notes, progress))
        if log is not None:
            log(f"{out[-1].name}: {out[-1].values['seconds']:.1f}s")
    if wanted & {"transformer", "fused"}:
        out.extend(sequence_rows(ctx, checkpoint, notes, progress, wanted))
    return Report(dataset, len(events), out, notes, scored=ctx.n_scored)
