"""``interest-tracker <command>``: worker, produce, subscribe, evaluate, train, catalog.

Every command documents itself with ``--help`` and exits non-zero with a one-line reason on
bad arguments or an unreachable broker.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from stream.settings import Settings


class CommandError(Exception):
    """A reason to stop the command: printed on one line, exit status 1."""


def _fail(msg: str) -> int:
    print(f"interest-tracker: error: {msg}", file=sys.stderr)
    return 1


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    """Fail fast (one line) if no bootstrap server accepts a TCP connection, or if the first
    that does refuses our TLS trust or SASL credentials."""
    from stream.brokercheck import SecurityCheckFailed, check_security

    if not settings.bootstrap:
        raise CommandError(
            "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or start the local one with "
            "`make kafka-up`"
        )
    for server in settings.bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                pass
        except (OSError, ValueError):
            continue
        try:
            check_security(settings.security, host or "127.0.0.1", int(port), timeout)
        except SecurityCheckFailed as exc:
            raise CommandError(str(exc)) from None
        return
    raise CommandError(f"Kafka broker unreachable at {settings.bootstrap}")


# -- worker ------------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    check_broker(settings)
    from stream.app import create_app
    from stream.topics import ensure_topics

    ensure_topics(settings)
    app, _ = create_app(settings)
    sys.argv = ["interest-tracker worker", "worker", "--loglevel", args.loglevel, *args.faust_args]
    app.main()
    return 0


# -- produce -----------------------------------------------------------------------------------
def _paced(events: Iterable[dict], rate: float | None, speedup: float | None) -> Iterable[dict]:
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


def cmd_produce(args: argparse.Namespace) -> int:
    from models.data.loaders import load_events
    from models.data.synthetic import SyntheticConfig, synthetic_events
    from stream.clients import Producer

    if bool(args.data) == bool(args.synthetic):
        raise CommandError("give exactly one of --data FILE or --synthetic")
    if args.data and not Path(args.data).is_file():
        raise CommandError(f"no such file: {args.data}")
    settings = Settings.from_env()
    check_broker(settings)
    if args.synthetic:
        cfg = SyntheticConfig(users=args.users, categories=args.categories, seed=args.seed)
        events: Iterable[dict] = synthetic_events(cfg, args.limit or 10_000)
    else:
        events = load_events(args.data, args.format, args.items)
        if args.limit:
            events = events[: args.limit]
    started = time.monotonic()
    n = 0
    with Producer(settings, topic=args.topic) as producer:
        for e in _paced(events, args.rate, args.speedup):
            if args.restamp:
                e = {**e, "ts": time.time()}
            if not args.with_truth:
                e.pop("truth", None)
            producer.send(e)
            n += 1
            if args.progress and n % args.progress == 0:
                print(f"produced {n} events", file=sys.stderr)
    secs = time.monotonic() - started
    print(f"produced {n} events to {producer.topic} in {secs:.1f}s ({n / max(secs, 1e-9):,.0f}/s)")
    return 0


# -- subscribe ---------------------------------------------------------------------------------
def format_snapshot(snap: dict, width: int = 5) -> str:
    """One compact line: user, version, events, top categories with probabilities."""
    if snap.get("deleted"):
        return f"{snap['user_id']:<16} (forgotten)"
    dist = snap["distribution"]
    top = [(c, p) for c, p in dist.items() if c != "_other"][:width]
    cats = "  ".join(f"{c}:{p:.2f}" for c, p in top)
    drift = " DRIFT" if snap.get("drift") else ""
    return f"{snap['user_id']:<16} v{snap['version']:<5} n={snap['n_events']:<5} {cats}{drift}"


def cmd_subscribe(args: argparse.Namespace) -> int:
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


# -- forget ------------------------------------------------------------------------------------
def cmd_forget(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from stream.app import CONTROL_HEADER, FORGET

    settings = Settings.from_env()
    check_broker(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", **settings.kafka_client_config()
    )
    # Keyed by the raw id, the deletion reaches the user's partition, so the worker holding
    # the user; it deletes the state (a changelog tombstone) and republishes the snapshot
    # tombstone. The tombstone sent here makes the user disappear for subscribers at once.
    raw, published = args.user.encode(), settings.user_key(args.user).encode()
    producer.send(settings.events_topic, key=raw, value=b"", headers=[(CONTROL_HEADER, FORGET)])
    producer.send(settings.snapshots_topic, key=published, value=None)
    producer.flush()
    producer.close()
    print(
        f"forgot user {args.user}: state deletion sent to {settings.events_topic}, "
        f"tombstone published on {settings.snapshots_topic}"
    )
    return 0


# -- wiring ------------------------------------------------------------------------------------
def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interest-tracker",
        description="Streaming per-user interest distributions over item categories.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    w = sub.add_parser("worker", help="run a Faust worker (Faust's worker options pass through)")
    w.add_argument("--loglevel", "-l", default="info", help="log level (default info)")
    w.add_argument("faust_args", nargs=argparse.REMAINDER, help="options for Faust's worker")
    w.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="publish events from a file or a synthetic generator")
    src = p.add_argument_group("source")
    src.add_argument("--data", metavar="FILE", help="event file to replay in event-time order")
    src.add_argument("--format", choices=("taobao", "movielens", "generic"), default="generic")
    src.add_argument("--items", metavar="FILE", help="MovieLens movies.csv (genres)")
    src.add_argument("--synthetic", action="store_true", help="generate drifting synthetic users")
    src.add_argument("--users", type=int, default=1000, help="synthetic users (default 1000)")
    src.add_argument("--categories", type=int, default=50, help="synthetic categories")
    src.add_argument("--seed", type=int, default=0)
    src.add_argument("--with-truth", action="store_true", help="keep synthetic ground truth")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=_positive(float), help="events per second")
    pace.add_argument("--speedup", type=_positive(float), help="replay N times faster than real")
    p.add_argument("--limit", type=int, help="stop after N events")
    p.add_argument("--restamp", action="store_true", help="set ts to the wall clock at send")
    p.add_argument("--topic", help="events topic (default $INTEREST_EVENTS_TOPIC)")
    p.add_argument("--progress", type=int, default=0, help="print progress every N events")
    p.set_defaults(func=cmd_produce)

    s = sub.add_parser("subscribe", help="follow the snapshot topic and print top categories")
    s.add_argument("--user", help="only this user id")
    s.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    s.add_argument("--latest", action="store_true", help="only new snapshots (not from start)")
    s.add_argument("--timeout", type=_positive(float), help="stop after N s without a snapshot")
    s.add_argument("--limit", type=int, help="stop after N snapshots")
    s.add_argument("--topic", help="snapshot topic (default $INTEREST_SNAPSHOTS_TOPIC)")
    s.set_defaults(func=cmd_subscribe)

    f = sub.add_parser("forget", help="erase a user's state and snapshots (GDPR-style erasure)")
    f.add_argument("--user", required=True, help="the user id, as produced")
    f.set_defaults(func=cmd_forget)

    from stream import (  # they import this module's helpers
        cli_catalog,
        cli_evaluate,
        cli_plot,
        cli_prior,
        cli_train,
    )

    for module in (cli_evaluate, cli_train, cli_plot, cli_catalog, cli_prior):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # broker errors and the like: one line, not a traceback
        from stream.clients import BrokerUnavailable

        if isinstance(exc, BrokerUnavailable):
            return _fail(str(exc))
        raise


if __name__ == "__main__":
    sys.exit(main())
