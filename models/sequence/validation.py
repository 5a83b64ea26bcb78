"""What each training epoch is judged by: the validation losses and, for the item objective
under leave-last-out, the full-ranking NDCG@10 / HR@10 of each user's validation item."""

from __future__ import annotations

import math

import torch

from models.sequence.config import PAD
from models.sequence.device import autocast
from models.sequence.encoding import EncodedSequence, collate
from models.sequence.model import SequenceModel
from models.sequence.samples import shuffled_batches


@torch.no_grad()
def evaluate_loss(
    model: SequenceModel,
    samples: list[EncodedSequence],
    device: torch.device,
    batch_size: int = 256,
) -> dict[str, float]:
    """Mean per-target category and item losses over ``samples`` (item: full softmax)."""
    model.eval()
    tot = {"category": 0.0, "item": 0.0}
    n = 0
    for batch in shuffled_batches(samples, batch_size, None):
        x, y = collate(batch, device=device)
        with autocast(device):
            losses = model.losses(x, y)
        k = int((y["categories"] != 0).any(-1).sum())
        tot["category"] += float(losses["category"]) * k
        tot["item"] += float(losses["item"]) * k
        n += k
    return {k: v / max(1, n) for k, v in tot.items()}


RankingBatch = tuple[dict[str, torch.Tensor], torch.Tensor]  # (inputs, last target items)


def ranking_batches(
    samples: list[EncodedSequence], device: torch.device, batch_size: int = 256
) -> list[RankingBatch]:
    """``samples`` collated for :func:`validation_ranking`, once for every epoch: shortest
    first, so a batch pads little (the figures do not depend on the order), padded on the left,
    each batch with its samples' last target items."""
    ordered = sorted(samples, key=len)
    batches = []
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        x, _ = collate(batch, device=device, pad_side="left")
        target = torch.tensor([s.target_items[-1] for s in batch], device=device)
        batches.append((x, target))
    return batches


@torch.no_grad()
def validation_ranking(
    model: SequenceModel, batches: list[RankingBatch], k: int = 10
) -> dict[str, float]:
    """Full-ranking ``ndcg@10`` / ``hr@10`` of each sample's LAST target item against every
    item row (padding excluded; the sample's own items masked, as
    ``models.evaluation.item_eval`` does), and ``item``: its mean cross-entropy over the item
    rows the model predicts (what :func:`evaluate_loss` gives for one target per sample). A
    model that leaves the user's items out (``exclude_seen``) cannot predict a repeat: such a
    target ranks last and is left out of the loss. One forward pass of the last position per
    sample, over ``batches`` from :func:`ranking_batches`."""
    model.eval()
    ndcg = hits = loss = 0.0
    n = n_loss = 0
    for x, target in batches:
        with autocast(target.device):
            logits = model.predict_last(x, ("item",))["item"].float()  # (B, V)
        picked = logits.gather(1, target[:, None])  # (B, 1)
        nll = torch.logsumexp(logits, 1) - picked[:, 0]
        possible = torch.isfinite(nll)
        loss += float(nll[possible].sum())
        n_loss += int(possible.sum())
        seen = x["items"].masked_fill(x["items"] == target[:, None], PAD)
        logits = logits.scatter(1, seen, float("-inf"))
        logits[:, PAD] = float("-inf")
        rank = torch.where(possible, (logits > picked).sum(1), logits.shape[1])
        hit = rank < k
        ndcg += float(torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), 0.0).sum())
        hits += float(hit.sum())
        n += len(target)
    n = max(1, n)
    return {"ndcg@10": ndcg / n, "hr@10": hits / n, "item": loss / max(1, n_loss)}


def validate(
    model: SequenceModel,
    val: list[EncodedSequence],
    device: torch.device,
    ranking: list[RankingBatch] | None = None,
) -> dict[str, float]:
    """An epoch's validation record: ``val_category`` and ``val_item`` losses; with
    ``ranking`` (the item objective under leave-last-out: ``val`` as :func:`ranking_batches`
    collated it) ``val_ndcg`` / ``val_hr`` as well, and its loss from the same pass."""
    if not val:
        return {"val_category": math.nan, "val_item": math.nan}
    if ranking is not None:  # the item objective: its loss and ranking from one pass
        figures = validation_ranking(model, ranking)
        return {
            "val_category": math.nan,
            "val_item": figures["item"],
            "val_ndcg": figures["ndcg@10"],
            "val_hr": figures["hr@10"],
        }
    losses = evaluate_loss(model, val, device)
    return {"val_category": losses["category"], "val_item": losses["item"]}
