"""Training of the sequence model from an event log (temporal split, early stopping).

Split (DESIGN.md §Evaluation): events in time order; only the first ``floor(0.8 n)`` are
training data. The last ~10% of that training period is the validation tail: its events are
targets for early stopping only (the model is fitted on the first 90%), and the fusion weights
are fitted on it too (``models.fusion``) when the online estimator is importable. The last 20%
is never read here.

Samples: per user, sliding windows of ``L`` events over their fit-period events with the next
event as target at every position; each target is owned by one window (the one giving it the
longest context).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.sequence import (
    OOV,
    EncodedSequence,
    SequenceConfig,
    SequenceEncoder,
    SequenceModel,
    collate,
    event_categories,
    save_checkpoint,
)

TRAIN_FRACTION = 0.8
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (frozen; stored in the checkpoint's metadata).

    Examples
    --------
    >>> TrainConfig(epochs=3).epochs, TrainConfig().train_fraction
    (3, 0.8)
    """

    epochs: int = 10  # the cosine schedule spans these; early stopping usually ends sooner
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    grad_clip: float = 1.0
    patience: int = 2  # epochs without a better validation loss before stopping
    train_fraction: float = TRAIN_FRACTION
    val_fraction: float = VAL_FRACTION  # tail of the training period
    stride: int | None = None  # window stride; default max_len // 2
    min_count: int = 1  # categories seen fewer times in the fit period are OOV
    seed: int = 0
    max_seconds: float | None = None  # stop after the epoch that crosses this budget
    fit_fusion: bool = True


@dataclass
class TrainResult:
    """What :func:`train` returns (and saved, when given a path)."""

    model: SequenceModel
    encoder: SequenceEncoder
    metadata: dict[str, Any]
    extra: dict[str, Any]
    version: str | None = None


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_points(
    n: int, train_fraction: float = TRAIN_FRACTION, val_fraction: float = VAL_FRACTION
):
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


def _batches(samples: list, batch_size: int, rng: random.Random | None) -> list[list]:
    order = list(range(len(samples)))
    if rng is not None:
        rng.shuffle(order)
    return [
        [samples[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)
    ]


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


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
    for batch in _batches(samples, batch_size, None):
        x, y = collate(batch, device=device)
        with _autocast(device):
            losses = model.losses(x, y)
        k = int((y["categories"] != 0).any(-1).sum())
        tot["category"] += float(losses["category"]) * k
        tot["item"] += float(losses["item"]) * k
        n += k
    return {k: v / max(1, n) for k, v in tot.items()}


def _param_groups(model: SequenceModel, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def train(
    events: Sequence[Mapping[str, Any]],
    config: SequenceConfig,
    train_config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train on the first 80% of ``events`` (time-ordered), stop early on the 72-80% tail.

    ``config.n_categories`` is replaced by the vocabulary's size. Saves a checkpoint to ``out``
    when given. Returns the best model (eval mode), its encoder and the training metadata.

    Examples
    --------
    >>> evs = [{"user_id": u, "item_id": i % 7, "categories": ["abc"[i % 3]],
    ...         "event_type": "view", "ts": float(i)} for i in range(300) for u in ("x",)]
    >>> res = train(evs, SequenceConfig.tiny(max_len=16), TrainConfig(epochs=2, seed=0),
    ...             device="cpu", progress=False)
    >>> res.metadata["epochs"], res.metadata["n_train_events"], res.metadata["n_val_events"]
    (2, 216, 24)
    """
    tc = train_config or TrainConfig()
    start_time = time.perf_counter()
    seed_everything(tc.seed)
    device = torch.device(device) if device is not None else _default_device()
    events = list(events)
    if any(events[i]["ts"] > events[i + 1]["ts"] for i in range(len(events) - 1)):
        events.sort(key=lambda e: e["ts"])
    n_fit, n_train = split_points(len(events), tc.train_fraction, tc.val_fraction)
    if n_fit < 2:
        raise ValueError(f"too few events to train on: {len(events)}")
    # vocabulary: the whole training period (tail-only categories are still copyable)
    encoder = SequenceEncoder.from_events(events[:n_train], config, min_count=tc.min_count)
    config = config.with_vocab(encoder.n_categories)
    stride = tc.stride or max(1, config.max_len // 2)
    train_samples, val_samples = build_samples(events, encoder, n_fit, n_train, stride)
    if not train_samples:
        raise ValueError("no training windows: every user has fewer than 2 events")

    model = SequenceModel(config).to(device)
    optim = torch.optim.AdamW(
        _param_groups(model, tc.weight_decay),
        lr=tc.lr,
        betas=(0.9, 0.98),
        fused=device.type == "cuda",
    )
    steps_per_epoch = math.ceil(len(train_samples) / tc.batch_size)
    total_steps = max(1, steps_per_epoch * tc.epochs)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < tc.warmup_steps:
            return tc.lr * (step + 1) / tc.warmup_steps
        frac = min(1.0, (step - tc.warmup_steps) / max(1, total_steps - tc.warmup_steps))
        return tc.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    rng = random.Random(tc.seed)
    best = {"loss": math.inf, "epoch": 0, "state": None, "item": math.inf}
    history: list[dict[str, float]] = []
    step, epoch, bad_epochs = 0, 0, 0
    for epoch in range(1, tc.epochs + 1):
        model.train()
        batches = _batches(train_samples, tc.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
        running, n_seen = 0.0, 0
        for batch in bar:
            x, y = collate(batch, device=device)
            for g in optim.param_groups:
                g["lr"] = lr_at(step)
            with _autocast(device):
                _, loss = model(x, y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optim.step()
            step += 1
            running += loss.item()
            n_seen += 1
            bar.set_postfix(loss=f"{running / n_seen:.3f}")
        bar.close()
        val = evaluate_loss(model, val_samples, device) if val_samples else {"category": math.nan}
        record = {
            "epoch": epoch,
            "train_loss": running / max(1, n_seen),
            "val_category": val["category"],
        }
        record["val_item"] = val.get("item", math.nan)
        history.append(record)
        if log is not None:
            log(
                f"epoch {epoch}: train loss {record['train_loss']:.4f}, "
                f"val category NLL {record['val_category']:.4f}, val item {record['val_item']:.4f}"
            )
        if not val_samples or val["category"] < best["loss"] - 1e-4:
            best.update(loss=val["category"], epoch=epoch, item=val.get("item", math.nan))
            best["state"] = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
        if bad_epochs >= tc.patience:
            break
        if tc.max_seconds is not None and time.perf_counter() - start_time > tc.max_seconds:
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()

    extra: dict[str, Any] = {"category_prior": category_prior(events[:n_fit], encoder)}
    fusion_note = "not fitted"
    metadata = {
        "epochs": epoch,
        "best_epoch": best["epoch"],
        "best_val_loss": float(best["loss"]),
        "best_val_item_loss": float(best["item"]),
        "seconds": time.perf_counter() - start_time,
        "n_events": len(events),
        "n_train_events": n_fit,
        "n_val_events": n_train - n_fit,
        "n_train_windows": len(train_samples),
        "n_val_windows": len(val_samples),
        "n_parameters": model.num_parameters(),
        "train_config": {k: v for k, v in asdict(tc).items() if v is not None},
        "device": str(device),
        "torch": str(torch.__version__),
        "fusion": fusion_note,
        "history": history,
    }
    if out is not None:  # the model is safe on disk before the (optional) fusion fit
        save_checkpoint(out, model, encoder, metadata, extra)
    if tc.fit_fusion and n_train > n_fit:
        try:
            params = fit_fusion_on_tail(model, encoder, events, n_fit, n_train, device, tc.seed)
        except ImportError as exc:  # models.online missing: leave fusion unfitted
            fusion_note = f"not fitted: {exc}"
        else:
            extra["fusion"] = params.to_dict()
            fusion_note = "fitted"
    metadata["fusion"] = fusion_note
    metadata["seconds"] = time.perf_counter() - start_time
    version = None
    if out is not None:
        version = save_checkpoint(out, model, encoder, metadata, extra)
    return TrainResult(model, encoder, metadata, extra, version)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
):
    """Fit :class:`models.fusion.FusionParams` on the validation tail ``[n_fit, n_train)``.

    The online estimator (``models.online``, as the stream runs it) is replayed over the whole
    training period; at each tail event both estimates are taken before learning it. To teach
    the staleness weight, a ``stale_fraction`` of tail events use the sequence estimate made
    1..``max_stale_events`` events earlier for the same user, with its age in seconds.
    """
    from models import fusion, online  # lazy: fusion fitting is optional
    from models.scorer import SequenceScorer

    scorer = SequenceScorer(model, encoder, device=device, num_threads=torch.get_num_threads())
    population = online.PopulationInterest()
    users: dict[Any, Any] = {}
    histories: dict[Any, list] = {}
    counts: dict[Any, int] = {}
    onl_probs, rows_hist, rows_ctx, rows_targets, rows_ts, rows_user = [], [], [], [], [], []
    L = encoder.max_len
    for i in range(n_train):
        e = events[i]
        u = e["user_id"]
        if i >= n_fit:
            prior = population.predict_proba_one()
            est = users.get(u)
            p_on = dict(prior) if est is None else est.predict_proba_one(e, prior=prior)
            onl_probs.append([fusion.target_prob(p_on, c) for c in event_categories(e)])
            rows_hist.append(counts.get(u, 0))
            rows_ctx.append(list(histories.get(u, [])))
            rows_targets.append(event_categories(e))
            rows_ts.append(float(e["ts"]))
            rows_user.append(u)
        est = users.get(u)
        if est is None:
            est = users[u] = online.UserInterest()
        est.learn_one(e)
        population.learn_one(e)
        h = histories.setdefault(u, [])
        h.append(encoder.encode_event(e))
        if len(h) > L + 1:
            del h[0]
        counts[u] = counts.get(u, 0) + 1
    seq_arrays = scorer.score_array(rows_ctx)
    n_known = len(encoder.vocab) - 2
    n_oov = max(1, len({c for e in events[:n_train] for c in event_categories(e)}) - n_known)

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
    return fusion.fit_target_probs(onl_probs, seq_used, rows_hist, ages)
