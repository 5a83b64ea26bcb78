"""``interest-tracker train``: fit the sequence model on an event file, write one checkpoint.

Only the first 80% of the events (by time) are read for training (DESIGN.md §Evaluation); the
last ~10% of those are the validation tail for early stopping and the fusion weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

CONFIGS = ("tiny", "small", "base")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train`` on an ``argparse`` subparsers object; ``func(args) -> int``."""
    from models.data import FORMATS

    p = subparsers.add_parser(
        "train",
        help="train the sequence model (Transformer) on an event file",
        description=(
            "Train the SASRec-style sequence model on the first 80% of an event file (time "
            "order), with early stopping on the last 10% of that period, and write one "
            "checkpoint (config, vocabulary, weights, fitted fusion weights)."
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
    p.add_argument("--epochs", type=int, default=10, help="maximum epochs (default: 10)")
    p.add_argument(
        "--max-len", type=int, default=50, metavar="L", help="events of history (default: 50)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if present)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="windows per step (default: 64)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop after the epoch that crosses this time budget",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(func=run)
    return p


def _fail(message: str) -> int:
    print(f"interest-tracker train: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Validate the arguments, train, save; 0 on success, 2 with a one-line reason otherwise."""
    data = Path(args.data)
    if not data.is_file():
        return _fail(f"data file not found: {data}")
    if args.items is not None and not Path(args.items).is_file():
        return _fail(f"items file not found: {args.items}")
    movies_beside = data.with_name("movies.csv").is_file()
    if args.format == "movielens" and args.items is None and not movies_beside:
        return _fail("--format movielens needs --items (no movies.csv beside the ratings)")
    for name in ("epochs", "max_len", "batch_size"):
        if getattr(args, name) < 1:
            return _fail(f"--{name.replace('_', '-')} must be at least 1")
    if args.lr <= 0:
        return _fail("--lr must be positive")
    out = Path(args.out)
    if out.is_dir():
        return _fail(f"--out is a directory: {out}")

    import torch

    from models.data import load_events
    from models.sequence import SequenceConfig
    from models.train import TrainConfig, train

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
    config = SequenceConfig.named(args.config, max_len=args.max_len)
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_seconds=args.max_seconds,
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
    print(
        f"wrote {out} (version {result.version}): {m['epochs']} epochs, best epoch "
        f"{m['best_epoch']}, validation category NLL {m['best_val_loss']:.4f}, "
        f"{m['seconds']:.0f}s, fusion {m['fusion']}"
    )
    return 0
