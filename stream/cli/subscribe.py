"""``interest-tracker subscribe``: follow the snapshot topic, one line (or JSON) a snapshot."""

from __future__ import annotations

import argparse
import json

from models.schema import OTHER
from stream.cli.common import check_broker, positive
from stream.settings import Settings

NAME = "subscribe"
REPORTS_AS = "interest-tracker"
HELP = "follow the snapshot topic and print top categories"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", help="only this user id")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    p.add_argument("--latest", action="store_true", help="only new snapshots (not from start)")
    p.add_argument("--timeout", type=positive(float), help="stop after N s without a snapshot")
    p.add_argument("--limit", type=int, help="stop after N snapshots")
    p.add_argument("--topic", help="snapshot topic (default $INTEREST_SNAPSHOTS_TOPIC)")


def format_snapshot(snap: dict, width: int = 5) -> str:
    """One compact line: user, version, events, top categories with probabilities.

    A partition's population snapshot has no version:

    >>> format_snapshot({"user_id": "__population__/p0", "n_events": 9, "distribution": {"a": 1.0}})
    '__population__/p0 v-     n=9     a:1.00'
    """
    if snap.get("deleted"):
        return f"{snap['user_id']:<16} (forgotten)"
    dist = snap["distribution"]
    top = [(c, p) for c, p in dist.items() if c != OTHER][:width]
    cats = "  ".join(f"{c}:{p:.2f}" for c, p in top)
    drift = " DRIFT" if snap.get("drift") else ""
    version, n = snap.get("version", "-"), snap.get("n_events", "-")
    return f"{snap['user_id']:<16} v{version:<5} n={n:<5} {cats}{drift}"


def run(args: argparse.Namespace) -> int:
    from stream.clients import iterate_snapshots

    settings = Settings.from_env()
    check_broker(settings)
    if not args.json:
        print(f"{'user':<16} {'ver':<6} {'events':<7} top categories")
    snapshots = iterate_snapshots(
        settings,
        user=args.user,
        from_beginning=not args.latest,
        timeout_s=args.timeout,
        topic=args.topic,
    )
    for count, snap in enumerate(snapshots):
        if args.json:
            print(json.dumps(snap, default=str), flush=True)
        else:
            print(format_snapshot(snap), flush=True)
        if args.limit and count + 1 >= args.limit:
            break
    return 0
