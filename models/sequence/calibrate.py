"""What is fitted after training, on the validation targets: the item/category mix of the
scorer and the fusion weights (online or collaborative ⊕ sequence)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from models import fusion
from models.evaluation.predictors import CollaborativePredictor, OnlinePredictor
from models.evaluation.vocabulary import Vocabulary
from models.sequence.config import OOV, PAD
from models.sequence.encoding import EncodedSequence, SequenceEncoder, collate, event_categories
from models.sequence.model import SequenceModel
from models.sequence.samples import shuffled_batches
from models.sequence.scorer import SequenceScorer, item_category_probs


@torch.no_grad()
def fit_item_category_mix(
    model: SequenceModel,
    encoder: SequenceEncoder,
    samples: list[EncodedSequence],
    device: torch.device,
    batch_size: int = 128,
) -> float:
    """Weight ``a`` of the item-implied category distribution in
    ``(1 - a) · category head + a · Σ_i p(i) · categories(i)``, by grid search of the category
    NLL on the validation targets. ``1.0`` for the item objective (no category head)."""
    if model.config.objective == "item":
        return 1.0
    if not samples:
        return 0.0
    grid = np.linspace(0.0, 1.0, 21)
    nll = np.zeros(len(grid))
    weights = encoder.item_category_weights().to(device)
    model.eval()
    for batch in shuffled_batches(samples, batch_size, None):
        x, y = collate(batch, device=device)
        h, ctx = model._trunk(x)
        valid = (y["categories"] != PAD).any(-1)
        p_head = model._category_probs(h, ctx, x) if model.config.copy_head else None
        if p_head is None:
            p_head = torch.softmax(model.heads(h, ("category",))["category"].float(), -1)
        item_logits = model.heads(h[valid], ("item",))["item"].float()
        p_items = item_category_probs(item_logits, weights)  # (N, V)
        p_head = p_head[valid]
        t = y["categories"][valid]  # (N, K)
        share = (t != PAD).float() / (t != PAD).sum(-1, keepdim=True).clamp(min=1)
        for g, a in enumerate(grid):
            p = ((1 - a) * p_head + a * p_items).clamp(min=1e-9)
            nll[g] += float(-(share * torch.log(p.gather(1, t))).sum())
    return float(grid[int(np.argmin(nll))])


def fit_fusion_on_tail(
    model: SequenceModel,
    encoder: SequenceEncoder,
    events: Sequence[Mapping[str, Any]],
    n_fit: int,
    n_train: int,
    device: torch.device,
    seed: int = 0,
    stale_fraction: float = 0.5,
    max_stale_events: int = 5,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, fusion.FusionParams]:
    """Fit :class:`models.fusion.FusionParams` on the validation tail ``[n_fit, n_train)``, once
    per base estimate the sequence model is fused with: ``{"online": ..., "collaborative": ...}``.

    The bases are ``evaluate``'s ``online`` and ``collaborative`` rows, replayed over the whole
    training period (the collaborative prior's weight fitted on the events before the tail);
    at each tail event every estimate is taken before learning it. They are smoothed over the
    training period's categories, as ``evaluate`` smooths them over the log's: a prior over
    only the categories seen so far would give a category's first event probability 0 and
    the fit too much weight on the sequence model. To teach the staleness weight, a
    ``stale_fraction`` of tail events use the sequence estimate made 1..``max_stale_events``
    events earlier for the same user, with its age in seconds. ``extra`` (the checkpoint's)
    carries the item/category mix the scorer applies.
    """
    scorer = SequenceScorer(
        model,
        encoder,
        device=device,
        num_threads=torch.get_num_threads(),
        prior=(extra or {}).get("category_prior"),
        extra=extra,
    )
    vocab = Vocabulary(c for e in events[:n_train] for c in event_categories(e))
    base = CollaborativePredictor(vocab, split=n_fit)
    histories: dict[Any, list] = {}
    counts: dict[Any, int] = {}
    base_probs: dict[str, list[list[float]]] = {"online": [], "collaborative": []}
    rows_hist, rows_ctx, rows_targets, rows_ts, rows_user = [], [], [], [], []
    L = encoder.max_len
    for i in range(n_train):
        e = events[i]
        u = e["user_id"]
        if i >= n_fit:
            targets = vocab.encode(event_categories(e))
            base_probs["online"].append(OnlinePredictor.predict(base, e)[targets].tolist())
            base_probs["collaborative"].append(base.predict(e)[targets].tolist())
            rows_hist.append(counts.get(u, 0))
            rows_ctx.append(list(histories.get(u, [])))
            rows_targets.append(event_categories(e))
            rows_ts.append(float(e["ts"]))
            rows_user.append(u)
        base.learn(e)
        h = histories.setdefault(u, [])
        h.append(encoder.encode_event(e))
        if len(h) > L + 1:
            del h[0]
        counts[u] = counts.get(u, 0) + 1
    seq_arrays = scorer.score_array(rows_ctx)
    n_known = len(encoder.vocab) - 2
    n_oov = max(1, len(vocab) - n_known)

    def seq_target_probs(row: int, cats: list[str]) -> list[float]:
        """The sequence estimate of ``row`` at the categories; OOV mass spread evenly."""
        idx = [encoder.category_index(c) for c in cats]
        return [float(seq_arrays[row, k]) / (n_oov if k == OOV else 1) for k in idx]

    rng = random.Random(seed)
    last_rows: dict[Any, list[int]] = {}
    seq_used, ages = [], []
    for j, u in enumerate(rows_user):
        prev = last_rows.setdefault(u, [])
        src = j
        if prev and rng.random() < stale_fraction:
            src = prev[-rng.randint(1, min(max_stale_events, len(prev)))]
        seq_used.append(seq_target_probs(src, rows_targets[j]))
        ages.append(max(0.0, rows_ts[j] - rows_ts[src]))
        prev.append(j)
    return {
        name: fusion.fit_target_probs(probs, seq_used, rows_hist, ages)
        for name, probs in base_probs.items()
    }
