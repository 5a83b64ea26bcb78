"""``interest-tracker train``: fit the sequence model on an event file, write one checkpoint.

Train the SASRec-style sequence model and write one checkpoint (config, vocabularies, weights,
fitted fusion weights). --split time: the first 80% of the events in time order, early stopping
on the last 10% of that period. --split leave-last-out: every user's last event is never read,
the one before it validates (the SASRec / BERT4Rec / HSTU protocol).

Defaults that are not given come from ``models.sequence.train.recipe_configs`` for the chosen
objective.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stream.cli.common import (
    CommandError,
    add_event_file_arguments,
    check_event_files,
    check_out_path,
    require_positive,
    seed,
)

CONFIGS = ("tiny", "small", "base", "large")
OBJECTIVES = ("category", "item", "joint")
SPLITS = ("time", "leave-last-out")
PRECISIONS = ("auto", "fp32", "bf16")
EXCLUDE_SEEN = ("auto", "on", "off")


NAME = "train"
HELP = "train the sequence model (Transformer) on an event file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_event_file_arguments(p, "to train on")
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
        "--max-len",
        type=int,
        default=None,
        metavar="L",
        help="events of history (50; item: 200)",
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32 - 1 (default: 0)")
    p.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if present)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="windows per step (default: 64)")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: 2e-3)",
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
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model on CUDA (default: eager; see docs/RESULTS.md)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="training precision: auto = bf16 autocast on CUDA, and for the item objective on "
        "CPUs with native bf16 (AVX512-BF16/AMX), else fp32; validation and serving run "
        "unchanged (default: auto)",
    )
    p.add_argument(
        "--exclude-seen",
        choices=EXCLUDE_SEEN,
        default="auto",
        help="leave a user's earlier items out of the item softmax, as the item-level "
        "evaluation ranks: auto = with the full softmax where under 1%% of training targets "
        "repeat an item of their window (ratings; not views) (default: auto)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")


def _check(args: argparse.Namespace) -> None:
    check_event_files(args)
    check_out_path(args.out, "--out")


def run(args: argparse.Namespace) -> int:
    """Check the arguments and inputs, train, save; 0 on success (errors: ``stream.cli.common``)."""
    require_positive(args, "epochs", "max_len", "batch_size", "min_item_count", "max_item_vocab")
    require_positive(args, "lr", "max_seconds", kind=float)
    _check(args)
    data, out = Path(args.data), Path(args.out)

    import torch

    from models.data.loaders import load_events
    from models.sequence.train import DEFAULT_MAX_SECONDS, recipe_configs, train

    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError as exc:
        raise CommandError(f"bad --device {args.device!r}: {exc}") from None
    if device is not None and device.type not in ("cpu", "cuda"):
        raise CommandError(f"--device must be cpu or cuda (cuda:N), not {args.device!r}")
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda requested but no CUDA device is available")
    try:
        events = load_events(data, args.format, args.items)
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {data} as {args.format}: {exc}") from None
    config, train_config = recipe_configs(
        args.config,
        args.objective,
        max_len=args.max_len,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_seconds=DEFAULT_MAX_SECONDS if args.max_seconds is None else args.max_seconds,
        seed=args.seed,
        split=args.split,
        min_item_count=args.min_item_count,
        max_item_vocab=args.max_item_vocab,
        compile=args.compile,
        precision=args.precision,
        exclude_seen=args.exclude_seen,
    )
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        result = train(
            events, config, train_config, device=device, out=out, progress=not args.quiet, log=log
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc}") from None
    m = result.metadata
    best = m["best_val_loss"]
    what = "validation NDCG@10" if best < 0 else "validation loss"
    print(
        f"wrote {out} (version {result.version}): {m['objective']} objective, "
        f"{m['split']} split, {m['epochs']} epochs, best epoch {m['best_epoch']}, "
        f"{what} {abs(best):.4f}, {m['tokens_per_s']:,.0f} tokens/s, "
        f"{m['precision']}, {m['seconds']:.0f}s, fusion {m['fusion']}"
        + (", the user's earlier items left out of the item softmax" if m["exclude_seen"] else "")
    )
    return 0
