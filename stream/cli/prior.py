"""``interest-tracker prior``: train the collaborative prior on an event log for the stream.

Replay the first 80% of FILE by time (as evaluate's warm-up): learn category co-occurrence
across users and fit its fading weight on the last quarter of it; write both to OUT. A worker
started with INTEREST_COLLAB_PRIOR=OUT mixes it into every snapshot and reloads the file when
it changes.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from stream.cli.common import CommandError, add_event_file_arguments, check_out_path

NAME = "prior"
HELP = "train the collaborative prior (category co-occurrence + fitted weight)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_event_file_arguments(p, "to learn from")
    p.add_argument("--out", metavar="OUT", required=True, help="where to write the prior (JSON)")


def run(args: argparse.Namespace) -> int:
    from models.data.loaders import load_events
    from models.evaluation.predictors import CollaborativePredictor
    from models.evaluation.replay import WARMUP_FRACTION
    from models.evaluation.vocabulary import Vocabulary
    from models.priors.collaborative import CollaborativePrior

    if not Path(args.data).is_file():
        raise CommandError(f"event file not found: {args.data}")
    check_out_path(args.out, "--out")
    items = args.items
    if args.format == "movielens" and items is None:
        items = Path(args.data).with_name("movies.csv")
    try:
        events = load_events(args.data, args.format, items)
    except (ValueError, KeyError, OSError) as exc:
        raise CommandError(f"cannot read {args.data}: {exc}") from None
    split = math.floor(WARMUP_FRACTION * len(events))
    if split < 10:
        raise CommandError(f"too few events to train on: {len(events)}")
    predictor = CollaborativePredictor(Vocabulary.from_events(events), split)
    for e in events[:split]:
        predictor.learn(e)
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        CollaborativePrior(predictor.cooc, predictor.mixture).save(args.out)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}") from None
    print(f"{predictor.note}; written to {args.out}")
    return 0
