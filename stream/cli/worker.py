"""``interest-tracker worker``: run a Faust worker of the app (Faust's options pass through)."""

from __future__ import annotations

import argparse
import sys

from stream.cli.common import check_broker
from stream.settings import Settings

NAME = "worker"
REPORTS_AS = "interest-tracker"
HELP = "run a Faust worker (Faust's worker options pass through)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loglevel", "-l", default="info", help="log level (default info)")
    p.add_argument("faust_args", nargs=argparse.REMAINDER, help="options for Faust's worker")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    check_broker(settings)
    from stream.app import create_app
    from stream.topics import ensure_topics

    ensure_topics(settings)
    app, _ = create_app(settings)
    sys.argv = ["interest-tracker worker", "worker", "--loglevel", args.loglevel, *args.faust_args]
    app.main()
    return 0
