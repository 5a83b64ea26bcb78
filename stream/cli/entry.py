"""The ``interest-tracker`` entry point: one parser with every sub-command module's parser."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stream.cli import (
    catalog,
    evaluate,
    forget,
    plot,
    prior,
    produce,
    subscribe,
    train,
    worker,
)
from stream.cli.common import EXIT_INTERRUPTED, add_command, one_line_usage_errors

COMMANDS = (worker, produce, subscribe, forget, evaluate, train, plot, catalog, prior)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``interest-tracker`` and all its sub-commands."""
    parser = one_line_usage_errors(
        argparse.ArgumentParser(
            prog="interest-tracker",
            description="Streaming per-user interest distributions over item categories.",
        )
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        add_command(sub, module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``interest-tracker``; the exit status follows :mod:`stream.cli.common`'s policy."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
