"""Training of the sequence model from an event log (temporal or leave-last-out split).

``split="time"`` (DESIGN.md §Evaluation): events in time order; only the first
``floor(0.8 n)`` are training data. The last ~10% of that training period is the validation
tail: its events are targets for early stopping only (the model is fitted on the first 90%),
and the fusion weights are fitted on it too (``models.fusion``). The last 20% is never read here.

``split="leave-last-out"`` (the protocol of SASRec, BERT4Rec, HSTU): per user, the last event
is the test item and is never read here, the second-to-last is the validation target (early
stopping on its full-ranking NDCG@10 for the item objective), the rest is training data.

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.fusion import checkpoint_key
from models.sequence.calibrate import fit_fusion_on_tail, fit_item_category_mix
from models.sequence.checkpoint import save_checkpoint
from models.sequence.config import OOV, PAD, SequenceConfig
from models.sequence.device import PRECISIONS, autocast, pick_device, resolve_precision
from models.sequence.encoding import EncodedSequence, SequenceEncoder, collate
from models.sequence.model import SequenceModel
from models.sequence.samples import (
    TRAIN_FRACTION,
    VAL_FRACTION,
    build_leave_last_out_samples,
    build_samples,
    category_prior,
    leave_last_out,
    shuffled_batches,
    split_points,
)
from models.sequence.validation import ranking_batches, validate

SPLITS = ("time", "leave-last-out")


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
    split: str = "time"  # or "leave-last-out"
    min_item_count: int = 1  # items seen fewer times (in training data) share the OOV row
    max_item_vocab: int = 1_000_000  # above this many items: hash them into buckets instead
    full_softmax_max_items: int = 100_000  # above: sampled softmax with log-Q correction
    sampled_negatives: int = 2048  # negatives of that sampled softmax
    length_buckets: bool = True  # batch windows of similar length together (less padding)
    # torch.compile on CUDA (never on the CPU). Off by default: on an H200 (11-28, 12-04) the
    # model's data-dependent branches cost graph breaks and recompiles; the item objective's
    # step now traces as one graph, its speed there not yet measured (docs/RESULTS.md)
    compile: bool = False
    # "auto": bf16 autocast on CUDA, and on CPUs with native bf16 for CPU_BF16_OBJECTIVES
    precision: str = "auto"
    # leave a user's earlier items out of the item softmax (SequenceConfig.exclude_seen):
    # "auto" = where the full softmax trains the item head and repeats are rare in the data
    exclude_seen: str = "auto"

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.exclude_seen not in EXCLUDE_SEEN:
            raise ValueError(f"exclude_seen must be one of {', '.join(EXCLUDE_SEEN)}")


# Defaults of `interest-tracker train` per objective: the item objective follows the
# full-softmax SASRec replications (L = 200, Adam, no weight decay), with batches of 64
# instead of 128 (twice the optimiser steps in the CPU time budget) and a peak rate of 2e-3
# instead of 1e-3 (ML-1M validation 0.186 and 0.184 over two seeds against 0.181), and a
# patience of 10 epochs: with 5 a run could stop on the noisy validation NDCG before its
# cosine decay ended (ML-1M: epoch 41 of ~56, test 0.1313 against 0.1340; see
# docs/RESULTS.md).
RECIPES: dict[str, dict[str, Any]] = {
    "category": dict(
        max_len=50, batch_size=64, lr=2e-3, epochs=10, patience=2, weight_decay=0.1, stride=0.5
    ),
    "joint": dict(
        max_len=50, batch_size=64, lr=2e-3, epochs=10, patience=2, weight_decay=0.1, stride=0.5
    ),
    "item": dict(
        max_len=200, batch_size=64, lr=2e-3, epochs=200, patience=10, weight_decay=0.0, stride=1.0
    ),
}  # stride: of the training windows, as a fraction of max_len
# Objectives whose CPU training `precision="auto"` runs in bf16 (on a CPU with native bf16):
# the item recipe's full softmax over the catalog is most of its step and gains 12-30%; the
# category and joint recipes' short windows gained nothing (docs/RESULTS.md)
CPU_BF16_OBJECTIVES = ("item",)
EXCLUDE_SEEN = ("auto", "on", "off")
# "auto" leaves seen items out where fewer training targets than this repeat an item of their
# window: ratings (ML-1M: none) but not views and clicks (taobao-head: most)
MAX_REPEAT_SHARE = 0.01
DEFAULT_MAX_SECONDS = 2400.0  # the CLI's training budget: 40 minutes, then stop after the epoch


def recipe_configs(
    size: str,
    objective: str,
    *,
    max_len: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    **train_overrides: Any,
) -> tuple[SequenceConfig, TrainConfig]:
    """The model and optimisation settings of ``train --config SIZE --objective OBJECTIVE``:
    what is not given comes from :data:`RECIPES`.

    >>> cfg, tc = recipe_configs("small", "item", split="leave-last-out")
    >>> cfg.max_len, tc.stride, tc.batch_size, tc.lr, tc.patience, tc.max_seconds
    (200, 200, 64, 0.002, 10, 2400.0)
    >>> recipe_configs("tiny", "category", max_len=20)[1].stride
    10
    """
    recipe = RECIPES[objective]
    max_len = recipe["max_len"] if max_len is None else max_len
    config = SequenceConfig.for_objective(size, objective, max_len=max_len)
    train_config = TrainConfig(
        stride=max(1, int(max_len * recipe["stride"])),
        epochs=recipe["epochs"] if epochs is None else epochs,
        batch_size=recipe["batch_size"] if batch_size is None else batch_size,
        lr=recipe["lr"] if lr is None else lr,
        patience=recipe["patience"],
        weight_decay=recipe["weight_decay"],
        max_seconds=max_seconds,
        **train_overrides,
    )
    return config, train_config


@dataclass
class TrainResult:
    """What :func:`train` returns (and saved, when given a path).

    >>> evs = [{"user_id": "x", "item_id": i % 3, "categories": ["ab"[i % 2]], "ts": float(i)}
    ...        for i in range(40)]
    >>> res = train(evs, SequenceConfig.tiny(max_len=4), TrainConfig(epochs=1, fit_fusion=False),
    ...             device="cpu", progress=False)
    >>> res.encoder.vocab, res.model.training, res.version  # eval mode; no path: not saved
    (['<pad>', '<oov>', 'a', 'b'], False, None)
    """

    model: SequenceModel
    encoder: SequenceEncoder
    metadata: dict[str, Any]
    extra: dict[str, Any]
    version: str | None = None


def budgeted_epochs(
    epochs: int, done: int, train_seconds: float, prep_seconds: float, max_seconds: float
) -> int:
    """How many epochs a run will have when it stops after the epoch that crosses
    ``max_seconds``, judged from the ``done`` epochs so far (``train_seconds`` with their
    validation, after ``prep_seconds`` of data preparation); at most ``epochs``.

    The learning-rate schedule spans this many epochs, so that a run cut by its time budget
    still ends its cosine decay instead of stopping near the peak rate.

    >>> budgeted_epochs(200, 1, 150.0, 30.0, 2400.0)  # 150 s an epoch: 15 fit, the 16th crosses
    16
    >>> budgeted_epochs(10, 1, 5.0, 0.0, 2400.0)
    10
    """
    per_epoch = train_seconds / max(1, done)
    left = max(0.0, max_seconds - prep_seconds - train_seconds)
    return min(epochs, done + math.floor(left / max(per_epoch, 1e-9)) + 1)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def item_log_q(
    events: Sequence[Mapping[str, Any]], encoder: SequenceEncoder, n_rows: int
) -> torch.Tensor:
    """Log of the sampled-softmax proposal: item frequencies (+1) over the item table."""
    counts = np.ones(n_rows)
    counts[PAD] = 0.0
    for e in events:
        counts[encoder.item_index(e["item_id"])] += 1.0
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(counts / counts.sum())).float()


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
    device = pick_device(device)
    events = list(events)
    if any(events[i]["ts"] > events[i + 1]["ts"] for i in range(len(events) - 1)):
        events.sort(key=lambda e: e["ts"])
    data = _prepare_data(events, config, tc)
    encoder, config = data.encoder, data.config
    train_samples, val_samples = data.train, data.val
    if not train_samples:
        raise ValueError("no training windows: every user has fewer than 2 events")
    if not val_samples:
        held = "each user's second-to-last event" if tc.split == "leave-last-out" else "the tail"
        raise ValueError(
            f"no validation targets in {held} of {len(events)} events: too few to train and "
            "choose the best epoch on"
        )

    prep_seconds = time.perf_counter() - start_time
    model = SequenceModel(config).to(device)
    if config.item_negatives > 0:
        model.item_log_q.copy_(item_log_q(data.fit_events, encoder, config.n_item_buckets))
    optim = torch.optim.AdamW(
        _param_groups(model, tc.weight_decay),
        lr=tc.lr,
        betas=(0.9, 0.98),
        fused=device.type == "cuda",
    )
    precision = training_precision(device, tc.precision, config.objective)
    step_fn = _compiled_step(model, device, tc.compile, precision)
    steps_per_epoch = math.ceil(len(train_samples) / tc.batch_size)
    total_steps = max(1, steps_per_epoch * tc.epochs)  # re-fitted below to a time budget

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < tc.warmup_steps:
            return tc.lr * (step + 1) / tc.warmup_steps
        frac = min(1.0, (step - tc.warmup_steps) / max(1, total_steps - tc.warmup_steps))
        return tc.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    rank_val = config.objective == "item" and tc.split == "leave-last-out"
    ranking = ranking_batches(val_samples, device) if rank_val else None  # collated once
    rng = random.Random(tc.seed)
    best = {"loss": math.inf, "epoch": 0, "state": None, "item": math.inf}
    best_val_loss = math.inf
    history: list[dict[str, float]] = []
    step, epoch, bad_epochs, tokens, train_seconds = 0, 0, 0, 0, 0.0
    for epoch in range(1, tc.epochs + 1):
        model.train()
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        batches = shuffled_batches(train_samples, tc.batch_size, rng, tc.length_buckets)
        bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
        running, n_seen, epoch_tokens = 0.0, 0, 0
        for batch in bar:
            x, y = collate(batch, device=device)
            for g in optim.param_groups:
                g["lr"] = lr_at(step)
            loss = step_fn(x, y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optim.step()
            step += 1
            running += loss.item()
            n_seen += 1
            epoch_tokens += sum(len(b) for b in batch)
            bar.set_postfix(loss=f"{running / n_seen:.3f}")
        bar.close()
        epoch_seconds = time.perf_counter() - epoch_start
        epoch_cpu = time.process_time() - epoch_cpu
        tokens += epoch_tokens
        train_seconds += epoch_seconds
        record = validate(model, val_samples, device, ranking)
        record.update(
            epoch=epoch,
            train_loss=running / max(1, n_seen),
            tokens_per_s=epoch_tokens / max(1e-9, epoch_seconds),
            # per CPU-second of this process: comparable on a shared machine
            tokens_per_cpu_s=epoch_tokens / max(1e-9, epoch_cpu),
            seconds=time.perf_counter() - start_time,
        )
        history.append(record)
        if log is not None:
            log(_epoch_line(record, config.objective))
        score = _stop_score(record, config.objective, rank_val)
        # Ranked validation (one held-out item per user) is noisy: an epoch counts against
        # the patience only when neither its NDCG nor its validation loss improved, so the
        # run does not stop on noise while the model is still learning.
        loss_improved = rank_val and record["val_item"] < best_val_loss - 1e-4
        best_val_loss = min(best_val_loss, record.get("val_item", math.inf))
        if not val_samples or score < best["loss"] - 1e-4:
            best.update(loss=score, epoch=epoch, item=record.get("val_item", math.nan))
            best["state"] = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        elif loss_improved:
            bad_epochs = 0
        else:
            bad_epochs += 1
        if bad_epochs >= tc.patience:
            break
        elapsed = time.perf_counter() - start_time
        if tc.max_seconds is not None and elapsed > tc.max_seconds:
            break
        if tc.max_seconds is not None:
            fit = budgeted_epochs(
                tc.epochs, epoch, elapsed - prep_seconds, prep_seconds, tc.max_seconds
            )
            total_steps = max(step + 1, steps_per_epoch * fit)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()

    prior = category_prior(data.fit_events, encoder)
    extra: dict[str, Any] = {"category_prior": prior}
    if not encoder.hashed_items:
        extra["item_category_mix"] = fit_item_category_mix(model, encoder, val_samples, device)
    fusion_note = "not fitted"
    metadata = {
        "epochs": epoch,
        "best_epoch": best["epoch"],
        "best_val_loss": float(best["loss"]),
        "best_val_item_loss": float(best["item"]),
        "seconds": time.perf_counter() - start_time,
        "tokens_per_s": tokens / max(1e-9, train_seconds),
        "n_events": len(events),
        "n_train_events": data.n_fit,
        "n_val_events": data.n_val,
        "n_items": None if encoder.hashed_items else len(encoder.items),
        "n_train_windows": len(train_samples),
        "n_val_windows": len(val_samples),
        "n_parameters": model.num_parameters(),
        "objective": config.objective,
        "exclude_seen": config.exclude_seen,
        "split": tc.split,
        "train_config": {k: v for k, v in asdict(tc).items() if v is not None},
        "device": str(device),
        "precision": precision,
        "torch": str(torch.__version__),
        "fusion": fusion_note,
        "history": history,
    }
    if out is not None:  # the model is safe on disk before the (optional) fusion fit
        save_checkpoint(out, model, encoder, metadata, extra)
    if tc.split == "leave-last-out":
        fusion_note = "not fitted (leave-last-out split: no time tail)"
    elif tc.fit_fusion and data.n_val > 0:
        n_fit, n_train = data.n_fit, data.n_fit + data.n_val
        fits = fit_fusion_on_tail(
            model, encoder, events, n_fit, n_train, device, tc.seed, extra=extra
        )
        for base, params in fits.items():
            extra[checkpoint_key(base)] = params.to_dict()
        fusion_note = "fitted"
    metadata["fusion"] = fusion_note
    metadata["seconds"] = time.perf_counter() - start_time
    version = None
    if out is not None:
        version = save_checkpoint(out, model, encoder, metadata, extra)
    return TrainResult(model, encoder, metadata, extra, version)


@dataclass
class _Data:
    encoder: SequenceEncoder
    config: SequenceConfig
    train: list[EncodedSequence]
    val: list[EncodedSequence]
    fit_events: list  # the events whose targets are trained on (priors, frequencies)
    n_fit: int
    n_val: int


def _prepare_data(events: list, config: SequenceConfig, tc: TrainConfig) -> _Data:
    """Split, vocabularies (from training + validation events only), windows."""
    if tc.split == "time":
        n_fit, n_train = split_points(len(events), tc.train_fraction, tc.val_fraction)
        if n_fit < 2:
            raise ValueError(f"too few events to train on: {len(events)}")
        seen, fit_events = events[:n_train], events[:n_fit]
        n_val = n_train - n_fit
    else:
        splits = leave_last_out(events)
        fit_pos = sorted(i for tr, _, _ in splits.values() for i in tr)
        val_pos = sorted(v for _, v, _ in splits.values() if v >= 0)
        fit_events = [events[i] for i in fit_pos]
        seen = [events[i] for i in sorted(fit_pos + val_pos)]
        n_fit, n_val = len(fit_pos), len(val_pos)
    # vocabulary: the whole training period (tail-only categories are still copyable)
    encoder = SequenceEncoder.from_events(
        seen,
        config,
        min_count=tc.min_count,
        min_item_count=tc.min_item_count,
        max_item_vocab=tc.max_item_vocab,
    )
    config = model_config(config, encoder, tc)
    stride = tc.stride or max(1, config.max_len // 2)
    if tc.split == "time":
        train_s, val_s = build_samples(events, encoder, n_fit, n_train, stride)
    else:
        train_s, val_s = build_leave_last_out_samples(events, encoder, stride, splits)
    config = replace(config, exclude_seen=decide_exclude_seen(tc.exclude_seen, config, train_s))
    return _Data(encoder, config, train_s, val_s, fit_events, n_fit, n_val)


def repeat_share(samples: Sequence[EncodedSequence]) -> float:
    """Share of the item targets of ``samples`` that repeat an item already in their window
    (the OOV row does not count).

    >>> from models.sequence.encoding import SequenceEncoder
    >>> enc = SequenceEncoder(["a"], 0, 8, items=["x", "y", "z"])
    >>> ev = [{"item_id": i, "categories": ["a"], "event_type": "view", "ts": t}
    ...       for t, i in enumerate("xyxz")]
    >>> repeat_share([enc.encode(ev, targets=True)])  # y, x (again), z
    0.3333333333333333
    """
    repeats = targets = 0
    for s in samples:
        seen: set[int] = set()
        for item, target in zip(s.items, s.target_items, strict=False):
            seen.add(item)
            if target not in (PAD, OOV):
                targets += 1
                repeats += target in seen
    return repeats / max(1, targets)


def decide_exclude_seen(
    choice: str, config: SequenceConfig, samples: Sequence[EncodedSequence]
) -> bool:
    """Whether the item head leaves a user's earlier items out (``TrainConfig.exclude_seen``):
    only with the full softmax of the item or joint objective; ``auto`` where fewer than
    :data:`MAX_REPEAT_SHARE` of the training targets are repeats."""
    full_softmax = config.objective != "category" and config.item_negatives == 0
    if choice == "on" and not full_softmax:
        raise ValueError(
            "exclude_seen needs the item head trained by the full softmax (objective item or "
            "joint, a catalog under full_softmax_max_items)"
        )
    if choice == "off" or not full_softmax:
        return False
    return choice == "on" or repeat_share(samples) < MAX_REPEAT_SHARE


def model_config(
    config: SequenceConfig, encoder: SequenceEncoder, tc: TrainConfig
) -> SequenceConfig:
    """``config`` sized to the encoder's vocabularies; sampled softmax above
    ``tc.full_softmax_max_items`` items."""
    config = config.with_vocab(encoder.n_categories)
    config = replace(config, n_item_buckets=encoder.n_item_buckets)
    if config.item_negatives == 0 and config.n_item_buckets > tc.full_softmax_max_items:
        config = replace(config, item_negatives=tc.sampled_negatives)
    return config


def training_precision(device: torch.device, precision: str, objective: str) -> str:
    """``fp32`` or ``bf16`` for training ``objective`` (``auto``: see
    :data:`CPU_BF16_OBJECTIVES` and :func:`resolve_precision`).

    >>> training_precision(torch.device("cpu"), "auto", "category")
    'fp32'
    """
    return resolve_precision(device, precision, cpu_bf16=objective in CPU_BF16_OBJECTIVES)


def _compiled_step(
    model: SequenceModel, device: torch.device, compile: bool, precision: str
) -> Callable:
    """``step(x, y) -> loss`` at ``precision`` (``fp32`` or ``bf16``, from
    :func:`training_precision`), and with ``compile`` ``torch.compile`` of the model on CUDA
    (CPU training runs eager: compiling pays off only on accelerators). Validation and serving
    stay at their own precision."""
    fwd = model
    if compile and device.type == "cuda":
        fwd = torch.compile(model, dynamic=True)

    def step(x: Mapping[str, torch.Tensor], y: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with autocast(device, precision):
            return fwd(x, y)[1]

    return step


def _stop_score(record: Mapping[str, float], objective: str, rank_val: bool) -> float:
    """Lower is better: -NDCG@10 (item objective, leave-last-out), the item loss (item
    objective, time split), else the category NLL."""
    if rank_val:
        return -record["val_ndcg"]
    return record["val_item"] if objective == "item" else record["val_category"]


def _epoch_line(r: Mapping[str, float], objective: str) -> str:
    line = f"epoch {r['epoch']}: train loss {r['train_loss']:.4f}, "
    if objective != "item":  # the item objective trains no category head
        line += f"val category NLL {r['val_category']:.4f}, "
    line += f"val item {r['val_item']:.4f}"
    if "val_ndcg" in r:
        line += f", val NDCG@10 {r['val_ndcg']:.4f}, HR@10 {r['val_hr']:.4f}"
    line += f", {r['tokens_per_s']:,.0f} tokens/s ({r['tokens_per_cpu_s']:,.0f}/CPU-s)"
    return line + f", {r['seconds']:.0f}s"
