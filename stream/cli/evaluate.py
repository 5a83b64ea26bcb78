"""``interest-tracker evaluate``: the offline evaluation tables (DESIGN.md §Evaluation).

Replay events in time order: the first 80% warm up, every later event is predicted, scored,
then learned. Rows: popularity, markov-1, user-histogram, river-classifier, online,
collaborative, and transformer / fused with --checkpoint. With --item-level: leave-last-out
full-ranking HR@10 / NDCG@10 instead.

Registered on the main parser by :func:`add_parser`; imports ``models`` and the CLI's common
module only (no Kafka, Faust or msgpack). Prints a Markdown table on stdout, notes on rows
left out below it, and writes the JSON report with ``--json``. Bad arguments and unreadable
files give a one-line error on stderr (exit 2 and 1, see :mod:`stream.cli.common`).
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
    positive,
)

NAME = "evaluate"
HELP = "replay an event log: next-category metrics of every estimator (Markdown/JSON)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_event_file_arguments(p, "to replay")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    p.add_argument(
        "--checkpoint", metavar="FILE", help="sequence model checkpoint: transformer, fused rows"
    )
    p.add_argument(
        "--item-level",
        action="store_true",
        help="leave-last-out item ranking (HR@10, NDCG@10) instead of next-category metrics",
    )
    p.add_argument(
        "--limit", type=positive(int), metavar="N", help="only the first N events in time order"
    )
    p.add_argument(
        "--rows", metavar="NAMES", help="comma-separated subset of rows (default: all of them)"
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="progress bars and row timings on stderr (default: when stderr is a terminal)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="no progress")


def dataset_name(path: Path, fmt: str) -> str:
    """``taobao-head`` for ``taobao-head/UserBehavior.csv``; the file stem for generic files.

    Examples
    --------
    >>> dataset_name(Path("data/ml-latest-small/ratings.csv"), "movielens")
    'ml-latest-small'
    >>> dataset_name(Path("logs/events.parquet"), "generic")
    'events'
    """
    if fmt != "generic" and path.parent.name:
        return path.parent.name
    return path.stem


def _check_inputs(args: argparse.Namespace) -> str | None:
    check_event_files(args)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        return f"checkpoint not found: {args.checkpoint}"
    if args.json is not None:
        check_out_path(args.json, "--json")
    if args.rows and args.item_level:
        return "--rows chooses category-level rows; --item-level has its own (leave --rows out)"
    return None


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``; 0 on success, 1 with a one-line reason."""
    from models.data.loaders import load_events
    from models.evaluation.evaluate import ROW_ORDER, evaluate
    from models.evaluation.item_eval import evaluate_items

    problem = _check_inputs(args)
    rows = None
    if problem is None and args.rows:
        rows = [r.strip() for r in args.rows.split(",") if r.strip()]
        unknown = sorted(set(rows) - set(ROW_ORDER))
        needs_checkpoint = [r for r in rows if r in ("transformer", "fused")]
        if unknown:
            problem = f"unknown rows {', '.join(unknown)}: choose from {', '.join(ROW_ORDER)}"
        elif needs_checkpoint and args.checkpoint is None:
            problem = f"the {' and '.join(needs_checkpoint)} row needs --checkpoint"
    if problem is not None:
        raise CommandError(problem)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    data = Path(args.data)
    try:
        events = load_events(data, args.format, args.items)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        reason = f"missing column {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CommandError(f"cannot read {data} as {args.format}: {reason}") from None
    if args.limit is not None:
        events = events[: args.limit]
    name = dataset_name(data, args.format)

    def log(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr)

    try:
        if args.item_level:
            report = evaluate_items(events, name, args.checkpoint, progress=progress)
        else:
            report = evaluate(events, name, args.checkpoint, rows, progress=progress, log=log)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    sys.stdout.write(report.markdown())
    if report.notes:
        print()
        for note in report.notes:
            print(f"Note: {note}")
    if args.json:
        try:
            report.write_json(args.json)
        except OSError as exc:
            raise CommandError(f"cannot write {args.json}: {exc}") from None
    return 0
