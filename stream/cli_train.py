"""``interest-tracker train``: fit the sequence model on an event file, write one checkpoint.

Two splits: ``time`` reads only the first 80% of the events (by time), the last ~10% of those
being the validation tail for early stopping and the fusion weights; ``leave-last-out`` never
reads each user's last event and validates on the one before it. Defaults that are not given
come from ``models.sequence.train.RECIPES`` for the chosen objective.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

CONFIGS = ("tiny", "small", "base", "large")
OBJECTIVES = ("category", "item", "joint")
SPLITS = ("time", "leave-last-out")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` on an ``argparse`` subparsers object; ``func(args) -> int``."""
    from models.data.loaders import FORMATS

    p = subparsers.add_parser(
        "train",
        help="train the sequence model (Transformer) on an event file",
        description=(
            "Train the SASRec-style sequence model and write one checkpoint (config, "
            "vocabularies, weights, fitted fusion weights). --split time: the first 80%% of "
            "the events in time order, early stopping on the last 10%% of that period. "
            "--split leave-last-out: every user's last event is never read, the one before "
            "it validates (the SASRec / BERT4Rec / HSTU protocol)."
        ),
    )
    p.add_argument("--data", required=True, metavar="FILE", help="event file to train on")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="generic",
        help="file format (default: generic CSV/Parquet with user_id,item_id,category,...)",
    )
    p.add_argument(
        "--items",
        metavar="FILE",
        help="item file for --format movielens (default: movies.csv beside the ratings)",
    )
    p.add_argument("--out", required=True, metavar="CHECKPOINT", help="checkpoint file to write")
    p.add_argument("--config", choices=CONFIGS, default="small", help="model size (default: small)")
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="category",
        help="next category, next item (full softmax over the catalog) or both (default: category)",
    )
    p.add_argument(
        "--split", choices=SPLITS, default="time", help="training/validation split (default: time)"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="maximum epochs (default: 10; item: 200)"
    )
    p.add_argument(
        "--max-len", type=int, default=None, metavar="L", help="events of history (50; item: 200)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if present)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="windows per step (default: 64)")
    p.add_argument(
        "--lr", type=float, default=None, help="peak learning rate (default: 2e-3; item: 1e-3)"
    )
    p.add_argument(
        "--min-item-count",
        type=int,
        default=1,
        help="items seen fewer times in the training data share the OOV row (default: 1)",
    )
    p.add_argument(
        "--max-item-vocab",
        type=int,
        default=1_000_000,
        help="hash item ids into buckets when the catalog has more items (default: 1000000)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop after the epoch that crosses this time budget (default: 2400)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(func=run)
    return p


def _fail(message: str) -> int:
    print(f"interest-tracker train: error: {message}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace) -> str | None:
    data = Path(args.data)
    if not data.is_file():
        return f"data file not found: {data}"
    if args.items is not None and not Path(args.items).is_file():
        return f"items file not found: {args.items}"
    movies_beside = data.with_name("movies.csv").is_file()
    if args.format == "movielens" and args.items is None and not movies_beside:
        return "--format movielens needs --items (no movies.csv beside the ratings)"
    for name in ("epochs", "max_len", "batch_size", "min_item_count", "max_item_vocab"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1"
    if args.lr is not None and args.lr <= 0:
        return "--lr must be positive"
    if args.max_seconds is not None and args.max_seconds <= 0:
        return "--max-seconds must be positive"
    if Path(args.out).is_dir():
        return f"--out is a directory: {args.out}"
    return None


def run(args: argparse.Namespace) -> int:
    """Validate the arguments, train, save; 0 on success, 2 with a one-line reason otherwise."""
    problem = _check(args)
    if problem is not None:
        return _fail(problem)
    data, out = Path(args.data), Path(args.out)

    import torch

    from models.data.loaders import load_events
    from models.sequence import SequenceConfig
    from models.sequence.train import DEFAULT_MAX_SECONDS, RECIPES, TrainConfig, train

    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError as exc:
        return _fail(f"bad --device {args.device!r}: {exc}")
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        return _fail("--device cuda requested but no CUDA device is available")
    try:
        events = load_events(data, args.format, args.items)
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read {data} as {args.format}: {exc}")
    recipe = RECIPES[args.objective]

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return recipe[name] if value is None else value

    max_len = pick("max_len")
    config = SequenceConfig.for_objective(args.config, args.objective, max_len=max_len)
    train_config = TrainConfig(
        stride=max(1, int(max_len * recipe["stride"])),
        epochs=pick("epochs"),
        batch_size=pick("batch_size"),
        lr=pick("lr"),
        patience=recipe["patience"],
        weight_decay=recipe["weight_decay"],
        seed=args.seed,
        max_seconds=DEFAULT_MAX_SECONDS if args.max_seconds is None else args.max_seconds,
        split=args.split,
        min_item_count=args.min_item_count,
        max_item_vocab=args.max_item_vocab,
    )
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        result = train(
            events, config, train_config, device=device, out=out, progress=not args.quiet, log=log
        )
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc}")
    m = result.metadata
    best = m["best_val_loss"]
    what = "validation NDCG@10" if best < 0 else "validation loss"
    print(
        f"wrote {out} (version {result.version}): {m['objective']} objective, "
        f"{m['split']} split, {m['epochs']} epochs, best epoch {m['best_epoch']}, "
        f"{what} {abs(best):.4f}, {m['tokens_per_s']:,.0f} tokens/s, "
        f"{m['seconds']:.0f}s, fusion {m['fusion']}"
    )
    return 0
