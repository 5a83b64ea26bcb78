"""Item-level evaluation: leave-last-out, full ranking over all items, HR@10 / NDCG@10.

The protocol under which SASRec, BERT4Rec and HSTU publish MovieLens numbers: each user's last
event (in stable time order) is held out, the rest of every user's history is training data,
and the held-out item is ranked among *all* items of the file. Items of the user's own training
history are masked (except the held-out item itself); ties go to the item whose id sorts
first as a string. ``HR@k`` = held-out item ranked within the top ``k``; ``NDCG@k`` =
``1 / log2(rank + 2)`` when it is (0-based rank), else 0. Users with fewer than 2 events are
not evaluated.

``MRR`` = mean of ``1 / (rank + 1)`` over the full ranking.

Rows: ``popularity`` (training-event counts) and ``transition`` (item-to-item: how often each
item followed the user's last training item in all users' training sequences, popularity
breaking ties) always; ``transformer`` through the lazily imported hook
:func:`transformer_item_rows` when a checkpoint is given and ``models.sequence`` provides
``item_scorer``. Scoring is batched, so a million events run in minutes on a CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.evaluation.hooks import sequence_hook
from models.evaluation.report import JsonReport

K = 10
ITEM_JSON_KEYS = ("hr@10", "ndcg@10", "mrr", "users", "seconds")


@dataclass
class ItemSplit:
    """Leave-last-out split of an event log over a sorted item index.

    ``histories[u]`` are user ``u``'s training item indices (oldest first), ``targets[u]`` the
    held-out item index, ``positions[u]`` the positions in ``events`` of the user's training
    events (what a sequence model reads).

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i} for u, i in
    ...        [("x", "b"), ("y", "a"), ("x", "c"), ("y", "b"), ("z", "a")]]
    >>> s = ItemSplit.build(evs)
    >>> s.items, s.users, [h.tolist() for h in s.histories], s.targets.tolist()
    (['a', 'b', 'c'], ['x', 'y'], [[1], [0]], [2, 1])
    """

    items: list[str]
    users: list
    histories: list[np.ndarray]
    targets: np.ndarray
    events: Sequence[dict] = ()
    positions: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def build(cls, events: Sequence[dict], min_events: int = 2) -> ItemSplit:
        items = sorted({str(e["item_id"]) for e in events})
        index = {it: i for i, it in enumerate(items)}
        seqs: dict[object, list[int]] = {}
        for pos, e in enumerate(events):
            seqs.setdefault(e["user_id"], []).append(pos)
        users, histories, targets, positions = [], [], [], []
        for user, seq in seqs.items():
            if len(seq) < min_events:
                continue
            users.append(user)
            its = [index[str(events[p]["item_id"])] for p in seq]
            histories.append(np.asarray(its[:-1], dtype=np.int64))
            targets.append(its[-1])
            positions.append(np.asarray(seq[:-1], dtype=np.int64))
        return cls(items, users, histories, np.asarray(targets, dtype=np.int64), events, positions)

    @property
    def n_events(self) -> int:
        return sum(len(h) for h in self.histories) + len(self.targets)


def rank_dense(
    scores: np.ndarray, targets: np.ndarray, histories: Sequence[np.ndarray]
) -> np.ndarray:
    """0-based ranks of ``targets`` in each row of ``scores`` [B, n_items], history masked.

    Examples
    --------
    >>> s = np.array([[0.1, 0.9, 0.5, 0.5], [0.3, 0.2, 0.1, 0.0]])
    >>> rank_dense(s, np.array([3, 2]), [np.array([1]), np.array([0, 2])]).tolist()
    [1, 1]
    >>> rank_dense(np.array([[0.5, np.nan]]), np.array([1]), [np.array([0])]).tolist()  # last
    [2]
    """
    s = np.array(scores, dtype=float)  # copy: the mask is written in place
    rows = np.arange(len(s))
    for r, (h, t) in enumerate(zip(histories, targets.tolist(), strict=True)):
        h = h[h != t]
        s[r, h] = -np.inf
    st = s[rows, targets][:, None]
    before = np.arange(s.shape[1])[None, :] < targets[:, None]
    ranks = (s > st).sum(axis=1) + ((s == st) & before).sum(axis=1)
    return np.where(np.isnan(st[:, 0]), s.shape[1], ranks)  # NaN compares false: rank it last


def popularity_ranks(split: ItemSplit) -> np.ndarray:
    """Ranks of the held-out items under training-event popularity, in O(history) per user.

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i} for u, i in
    ...        [("x", "a"), ("y", "a"), ("x", "b"), ("y", "c"), ("z", "c"), ("z", "b")]]
    >>> popularity_ranks(ItemSplit.build(evs)).tolist()  # counts a 2, c 1, b 0
    [1, 0, 1]
    """
    counts = np.zeros(len(split.items))
    for h in split.histories:
        np.add.at(counts, h, 1.0)
    order = np.lexsort((np.arange(len(counts)), -counts))  # by count desc, then index
    pos = np.empty(len(counts), dtype=np.int64)
    pos[order] = np.arange(len(counts))
    ranks = np.empty(len(split.targets), dtype=np.int64)
    for u, (h, t) in enumerate(zip(split.histories, split.targets.tolist(), strict=True)):
        ahead = np.unique(h[h != t])
        ranks[u] = pos[t] - int(np.count_nonzero(pos[ahead] < pos[t]))
    return ranks


def hr_ndcg(ranks: np.ndarray, k: int = K) -> tuple[float, float]:
    """``HR@k`` and ``NDCG@k`` of 0-based ranks.

    Examples
    --------
    >>> hr, ndcg = hr_ndcg(np.array([0, 1, 20]), k=10)
    >>> round(hr, 4), round(ndcg, 4)  # (1 + 1/log2(3) + 0) / 3
    (0.6667, 0.5436)
    """
    hit = ranks < k
    gains = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(hit.mean()), float(gains.mean())


def mrr(ranks: np.ndarray) -> float:
    """Mean reciprocal rank of 0-based ranks.

    Examples
    --------
    >>> mrr(np.array([0, 1, 3]))  # (1 + 1/2 + 1/4) / 3
    0.5833333333333334
    """
    return float((1.0 / (np.asarray(ranks, dtype=float) + 1.0)).mean())


@dataclass
class ItemRow:
    """One row of the item-level table.

    Examples
    --------
    >>> row = ItemRow.from_ranks("popularity", np.array([0, 3, 12]), seconds=0.0)
    >>> row.to_json()  # rank 12 misses the top 10: HR 2/3, NDCG (1 + 1/log2(5)) / 3
    {'name': 'popularity', 'hr@10': 0.6667, 'ndcg@10': 0.4769, 'mrr': 0.4423, 'users': 3,
     'seconds': 0.0}
    """

    name: str
    hr: float
    ndcg: float
    users: int
    seconds: float
    mrr: float = float("nan")

    @classmethod
    def from_ranks(cls, name: str, ranks: np.ndarray, seconds: float) -> ItemRow:
        hr, ndcg = hr_ndcg(ranks)
        return cls(name, hr, ndcg, len(ranks), seconds, mrr(ranks))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "hr@10": self.hr,
            "ndcg@10": self.ndcg,
            "mrr": self.mrr,
            "users": self.users,
            "seconds": self.seconds,
        }


def popularity_row(split: ItemSplit) -> ItemRow:
    """The ``popularity`` row."""
    start = time.perf_counter()
    ranks = popularity_ranks(split)
    return ItemRow.from_ranks("popularity", ranks, time.perf_counter() - start)


def transition_scorer(split: ItemSplit) -> Callable[[Sequence[int]], np.ndarray]:
    """``score(last_items) -> (B, n_items)``: item-to-item transition counts from the last
    item, plus popularity scaled below 1 (so it only breaks ties among equal counts).

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i} for u, i in
    ...        [("x", "a"), ("x", "b"), ("x", "c"), ("y", "a"), ("y", "b"), ("y", "d")]]
    >>> score = transition_scorer(ItemSplit.build(evs))
    >>> score([0]).round(2).tolist()  # after a: b twice; a and b equally popular
    [[0.67, 2.67, 0.0, 0.0]]
    """
    n = len(split.items)
    pop = np.zeros(n)
    nxt: dict[int, dict[int, int]] = {}
    for h in split.histories:
        np.add.at(pop, h, 1.0)
        for a, b in zip(h[:-1].tolist(), h[1:].tolist(), strict=True):
            row = nxt.setdefault(a, {})
            row[b] = row.get(b, 0) + 1
    base = pop / (pop.max() + 1.0) if n else pop

    def score(last_items: Sequence[int]) -> np.ndarray:
        out = np.tile(base, (len(last_items), 1))
        for r, a in enumerate(last_items):
            for b, c in nxt.get(int(a), {}).items():
                out[r, b] += c
        return out

    return score


def transition_row(split: ItemSplit, batch_size: int = 256) -> ItemRow:
    """The ``transition`` row: item-to-item transition counts from the last training item."""
    start = time.perf_counter()
    score = transition_scorer(split)
    ranks = np.empty(len(split.targets), dtype=np.int64)
    for lo in range(0, len(split.targets), batch_size):
        hi = min(lo + batch_size, len(split.targets))
        hists = split.histories[lo:hi]
        last = [int(h[-1]) if len(h) else -1 for h in hists]
        s = score(last)
        ranks[lo:hi] = rank_dense(s, split.targets[lo:hi], hists)
    return ItemRow.from_ranks("transition", ranks, time.perf_counter() - start)


def scorer_ranks(
    score: Callable[[list[list[dict]]], np.ndarray],
    split: ItemSplit,
    batch_size: int = 256,
    max_history: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Ranks of the held-out items under a batched scorer of histories.

    ``score(histories)`` gets a batch of histories (each a list of the user's training event
    dicts, oldest first, the last ``max_history`` when given) and returns scores
    ``[batch, len(split.items)]`` in the order of ``split.items``.

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i} for u, i in
    ...        [("x", "a"), ("y", "a"), ("x", "b"), ("y", "c")]]
    >>> split = ItemSplit.build(evs)
    >>> last_seen = lambda hs: np.array([[h[-1]["item_id"] == it for it in "abc"] for h in hs])
    >>> scorer_ranks(last_seen, split, batch_size=1).tolist()  # a masked; b, c tie: b first
    [0, 1]
    """
    ranks = np.empty(len(split.targets), dtype=np.int64)
    n_items = len(split.items)
    events = split.events
    for lo in tqdm(
        range(0, len(split.targets), batch_size), desc="item ranking", disable=not progress
    ):
        hi = min(lo + batch_size, len(split.targets))
        batch = [
            [events[p] for p in pos[-max_history:].tolist()]
            if max_history
            else [events[p] for p in pos.tolist()]
            for pos in split.positions[lo:hi]
        ]
        scores = np.asarray(score(batch), dtype=float)
        if scores.shape != (hi - lo, n_items):
            raise ValueError(f"scorer returned {scores.shape}, expected ({hi - lo}, {n_items})")
        ranks[lo:hi] = rank_dense(scores, split.targets[lo:hi], split.histories[lo:hi])
    return ranks


def transformer_item_rows(
    split: ItemSplit,
    checkpoint: str | Path | None,
    notes: list[str],
    batch_size: int = 256,
    progress: bool = False,
) -> list[ItemRow]:
    """Hook for the Transformer's item head (lazy import, optional checkpoint).

    Contract: ``models.sequence.item_scorer(checkpoint, items) -> score`` where
    ``score(histories)`` takes a batch of histories (each a list of the user's training event
    dicts, oldest first) and returns scores ``[batch, len(items)]`` in the order of ``items``
    (sorted id strings); see :func:`scorer_ranks`. Without a checkpoint or the hook, the row
    is left out with a note in ``notes``.
    """
    make = sequence_hook(
        checkpoint, "item_scorer", "item_scorer(checkpoint, items)", "transformer", notes
    )
    if make is None:
        return []
    start = time.perf_counter()
    score = make(checkpoint, split.items)
    if getattr(score, "note", None):
        notes.append(score.note)
    ranks = scorer_ranks(score, split, batch_size, progress=progress)
    return [ItemRow.from_ranks("transformer", ranks, time.perf_counter() - start)]


@dataclass
class ItemReport(JsonReport):
    """The item-level evaluation of one dataset.

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i} for u, i in
    ...        [("x", "a"), ("y", "a"), ("x", "b"), ("y", "c"), ("z", "c"), ("z", "b")]]
    >>> rep = evaluate_items(evs, "toy")
    >>> print("\\n".join(rep.markdown().splitlines()[2:]))
    | row | HR@10 | NDCG@10 | MRR | users | seconds |
    |---|---:|---:|---:|---:|---:|
    | popularity | 1.0000 | 0.7540 | 0.6667 | 3 | 0.0 |
    | transition | 1.0000 | 0.7540 | 0.6667 | 3 | 0.0 |
    """

    dataset: str
    events: int
    rows: list[ItemRow]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "dataset": self.dataset,
            "events": self.events,
            "protocol": "leave-last-out, full ranking",
            "rows": [r.to_json() for r in self.rows],
        }

    def markdown(self) -> str:
        users = self.rows[0].users if self.rows else 0
        lines = [
            f"**{self.dataset}** (item level): {self.events:,} events, {users:,} users, "
            "leave-last-out, full ranking over all items, own history masked\n",
            "| row | HR@10 | NDCG@10 | MRR | users | seconds |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            hr, ndcg, rr = ("-" if math.isnan(v) else f"{v:.4f}" for v in (r.hr, r.ndcg, r.mrr))
            lines.append(f"| {r.name} | {hr} | {ndcg} | {rr} | {r.users:,} | {r.seconds:.1f} |")
        return "\n".join(lines) + "\n"


def evaluate_items(
    events: Sequence[dict],
    dataset: str = "events",
    checkpoint: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> ItemReport:
    """Leave-last-out item ranking of ``events`` (already in time order).

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i} for u, i in
    ...        [("x", "a"), ("y", "a"), ("x", "b"), ("y", "c"), ("z", "c"), ("z", "b")]]
    >>> rep = evaluate_items(evs, "toy")
    >>> [(r.name, round(r.hr, 3), r.users) for r in rep.rows]
    [('popularity', 1.0, 3), ('transition', 1.0, 3)]
    >>> rep.notes
    ['transformer: omitted (no --checkpoint given)']
    """
    split = ItemSplit.build(events)
    if not split.users:
        raise ValueError("no user has 2 or more events: nothing to hold out")
    notes: list[str] = []
    rows = [popularity_row(split), transition_row(split, batch_size)]
    rows.extend(transformer_item_rows(split, checkpoint, notes, batch_size, progress))
    return ItemReport(dataset, len(events), rows, notes)
