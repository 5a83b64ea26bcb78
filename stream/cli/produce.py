"""``interest-tracker produce``: publish events from a file or the synthetic generator."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from stream.cli.common import CommandError, check_broker, positive, seed
from stream.settings import Settings

NAME = "produce"
REPORTS_AS = "interest-tracker"
HELP = "publish events from a file or a synthetic generator"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("source")
    src.add_argument("--data", metavar="FILE", help="event file to replay in event-time order")
    src.add_argument("--format", choices=("taobao", "movielens", "generic"), default="generic")
    src.add_argument("--items", metavar="FILE", help="MovieLens movies.csv (genres)")
    src.add_argument("--synthetic", action="store_true", help="generate drifting synthetic users")
    src.add_argument(
        "--users", type=positive(int), default=1000, help="synthetic users (default 1000)"
    )
    src.add_argument(
        "--categories", type=positive(int), default=50, help="synthetic categories (default 50)"
    )
    src.add_argument("--seed", type=seed, default=0)
    src.add_argument("--with-truth", action="store_true", help="keep synthetic ground truth")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=positive(float), help="events per second")
    pace.add_argument("--speedup", type=positive(float), help="replay N times faster than real")
    p.add_argument("--limit", type=positive(int), help="stop after N events")
    p.add_argument("--restamp", action="store_true", help="set ts to the wall clock at send")
    p.add_argument("--topic", help="events topic (default $INTEREST_EVENTS_TOPIC)")
    p.add_argument(
        "--progress", type=positive(int), help="print progress every N events (default: never)"
    )


def paced(events: Iterable[dict], rate: float | None, speedup: float | None) -> Iterable[dict]:
    """``events`` at ``rate`` a second, or ``speedup`` times faster than their event time."""
    start = time.monotonic()
    first_ts = None
    for i, e in enumerate(events):
        if rate:
            target = start + i / rate
        elif speedup:
            first_ts = e["ts"] if first_ts is None else first_ts
            target = start + (e["ts"] - first_ts) / speedup
        else:
            target = 0
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield e


def _events(args: argparse.Namespace) -> Iterable[dict]:
    from models.data.loaders import load_events
    from models.data.synthetic import SyntheticConfig, synthetic_events

    if args.synthetic:
        try:
            cfg = SyntheticConfig(users=args.users, categories=args.categories, seed=args.seed)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return synthetic_events(cfg, args.limit or 10_000)
    try:
        events = load_events(args.data, args.format, args.items)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.data} as {args.format}: {exc}") from None
    return events[: args.limit] if args.limit else events


def run(args: argparse.Namespace) -> int:
    from stream.clients import DeliveryFailed, Producer

    if bool(args.data) == bool(args.synthetic):
        raise CommandError("give exactly one of --data FILE or --synthetic")
    if args.data and not Path(args.data).is_file():
        raise CommandError(f"no such file: {args.data}")
    settings = Settings.from_env()
    check_broker(settings)
    events = _events(args)
    started = time.monotonic()
    n = 0
    try:
        with Producer(settings, topic=args.topic) as producer:
            for e in paced(events, args.rate, args.speedup):
                if args.restamp:
                    e = {**e, "ts": time.time()}
                if not args.with_truth:
                    e.pop("truth", None)
                producer.send(e)
                n += 1
                if args.progress and n % args.progress == 0:
                    print(f"produced {n} events", file=sys.stderr)
    except DeliveryFailed as exc:
        raise CommandError(str(exc)) from None
    secs = time.monotonic() - started
    print(f"produced {n} events to {producer.topic} in {secs:.1f}s ({n / max(secs, 1e-9):,.0f}/s)")
    return 0
