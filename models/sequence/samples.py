"""Training samples from an event log: the temporal split, leave-last-out, windows, batches.

Per user, sliding windows of ``L`` events over their fit-period events with the next event as
target at every position; each target is owned by one window (the one giving it the longest
context).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.evaluation.replay import WARMUP_FRACTION
from models.sequence.encoding import EncodedSequence, SequenceEncoder, event_categories

TRAIN_FRACTION = WARMUP_FRACTION  # trained on what the evaluation protocol warms up on
VAL_FRACTION = 0.1


def split_points(
    n: int, train_fraction: float = TRAIN_FRACTION, val_fraction: float = VAL_FRACTION
) -> tuple[int, int]:
    """``(n_fit, n_train)``: events ``[0, n_fit)`` are fitted, ``[n_fit, n_train)`` validate.

    Examples
    --------
    >>> split_points(1000)
    (720, 800)
    """
    n_train = math.floor(train_fraction * n)
    n_fit = n_train - math.floor(val_fraction * n_train)
    return n_fit, n_train


def _windows(n: int, max_len: int, stride: int) -> list[tuple[int, int, int]]:
    """``(start, stop, own_from)`` windows covering ``n`` positions; targets before
    ``start + own_from`` belong to an earlier window.

    Examples
    --------
    >>> _windows(5, 4, 2)
    [(0, 4, 0), (1, 5, 3)]
    """
    if n <= max_len:
        return [(0, n, 0)]
    starts = list(range(0, n - max_len + 1, stride))
    if starts[-1] != n - max_len:
        starts.append(n - max_len)
    out, covered = [], 0
    for s in starts:
        out.append((s, s + max_len, max(0, covered - s)))
        covered = s + max_len
    return out


def _blank_targets(seq: EncodedSequence, own_from: int, keep: Sequence[bool] | None = None):
    """Targets before ``own_from`` (and where ``keep`` is False) removed."""
    tc = list(seq.target_categories)
    ti = list(seq.target_items)
    for t in range(len(seq)):
        if t < own_from or (keep is not None and not keep[t]):
            tc[t] = ()
            ti[t] = 0
    return EncodedSequence(seq.items, seq.categories, seq.event_types, seq.gaps, tc, ti, seq.oov)


def build_samples(
    events: Sequence[Mapping[str, Any]],
    encoder: SequenceEncoder,
    n_fit: int,
    n_train: int,
    stride: int,
) -> tuple[list[EncodedSequence], list[EncodedSequence]]:
    """Training windows (targets in ``[0, n_fit)``) and validation windows (targets in
    ``[n_fit, n_train)``, context from any earlier event)."""
    by_user: dict[Any, list[int]] = {}
    for i in range(n_train):
        by_user.setdefault(events[i]["user_id"], []).append(i)
    L = encoder.max_len
    train, val = [], []
    for idx in by_user.values():
        seq = encoder.encode([events[i] for i in idx], targets=True)
        # target of position t is event idx[t + 1]
        is_fit = [t + 1 < len(idx) and idx[t + 1] < n_fit for t in range(len(idx))]
        is_val = [t + 1 < len(idx) and idx[t + 1] >= n_fit for t in range(len(idx))]
        n_fit_user = sum(1 for i in idx if i < n_fit)
        if n_fit_user >= 2:
            for s, e, own in _windows(n_fit_user, L, stride):
                train.append(_blank_targets(seq.window(s, e), own, is_fit[s:e]))
        if any(is_val):
            first = is_val.index(True)
            for s, e, own in _windows(len(idx), L, stride):
                if e <= first:
                    continue
                w = _blank_targets(seq.window(s, e), own, is_val[s:e])
                if any(w.target_items):
                    val.append(w)
    return train, val


def leave_last_out(events: Sequence[Mapping[str, Any]]) -> dict[Any, tuple[list, int, int]]:
    """Per user ``(train, val, test)``: positions in ``events`` of the training events, of the
    validation event and of the test event (``-1`` where there is none).

    A user's last event is the test item (users with 2 or more events, as
    :class:`models.evaluation.item_eval.ItemSplit` holds out), the one before it the validation item
    (users with 3 or more), the rest training.

    Examples
    --------
    >>> evs = [{"user_id": u} for u in "xxxxyyz"]
    >>> leave_last_out(evs)
    {'x': ([0, 1], 2, 3), 'y': ([4], -1, 5), 'z': ([6], -1, -1)}
    """
    by_user: dict[Any, list[int]] = {}
    for i, e in enumerate(events):
        by_user.setdefault(e["user_id"], []).append(i)
    out = {}
    for u, idx in by_user.items():
        test = idx[-1] if len(idx) >= 2 else -1
        val = idx[-2] if len(idx) >= 3 else -1
        n_train = len(idx) - (test >= 0) - (val >= 0)
        out[u] = (idx[:n_train], val, test)
    return out


def build_leave_last_out_samples(
    events: Sequence[Mapping[str, Any]],
    encoder: SequenceEncoder,
    stride: int,
    splits: Mapping[Any, tuple[list, int, int]] | None = None,
) -> tuple[list[EncodedSequence], list[EncodedSequence]]:
    """Training windows over each user's training events, and one validation window per user
    (the last ``L`` training events, target = the validation item at the last position).
    Test events are never encoded."""
    splits = leave_last_out(events) if splits is None else splits
    L = encoder.max_len
    train, val = [], []
    for tr, v, _ in splits.values():
        prefix = tr + ([v] if v >= 0 else [])
        if len(prefix) < 2:
            continue
        seq = encoder.encode([events[i] for i in prefix], targets=True)
        n = len(tr)
        if n >= 2:
            for s, e, own in _windows(n, L, stride):
                keep = [t + 1 < n for t in range(s, e)]
                train.append(_blank_targets(seq.window(s, e), own, keep))
        if v >= 0:
            w = seq.window(max(0, n - L), n)
            val.append(_blank_targets(w, len(w) - 1))
    return train, val


def category_prior(
    events: Sequence[Mapping[str, Any]], encoder: SequenceEncoder, smoothing: float = 0.5
) -> list[float]:
    """Smoothed category frequencies over the model vocabulary (for empty histories)."""
    counts = np.full(encoder.n_categories, smoothing)
    counts[0] = 0.0
    for e in events:
        cats = event_categories(e)
        for c in cats:
            counts[encoder.category_index(c)] += 1.0 / len(cats)
    return (counts / counts.sum()).tolist()


def shuffled_batches(
    samples: list, batch_size: int, rng: random.Random | None, by_length: bool = False
) -> list[list]:
    """Batches in shuffled order; ``by_length``: within shuffled chunks of 32 batches the
    samples are sorted by length first, so a batch pads little and order stays random."""
    order = list(range(len(samples)))
    if rng is not None:
        rng.shuffle(order)
    if by_length:
        chunk = 32 * batch_size
        order = [
            i
            for c in range(0, len(order), chunk)
            for i in sorted(order[c : c + chunk], key=lambda j: len(samples[j]))
        ]
    batches = [
        [samples[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)
    ]
    if by_length and rng is not None:
        rng.shuffle(batches)
    return batches
