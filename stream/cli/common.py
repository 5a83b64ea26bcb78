"""What every ``interest-tracker`` sub-command shares: the error policy, the one argument
check, the broker check and how a command is registered.

The error policy, one line on stderr in every case (``<prog>: error: <reason>``):

- exit 2: the command line is wrong and nothing ran (argparse's convention: unknown command
  or option, a missing or malformed argument, a number that must be > 0 and is not);
  :class:`UsageError` when a command finds it after parsing;
- exit 1: the command ran and failed (a missing or unreadable file, an unreachable broker,
  refused credentials, bad data, a training error): :class:`CommandError`;
- exit 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import math
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from models.data.loaders import FORMATS
from stream.envvars import SettingsError
from stream.settings import Settings

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A reason to stop the command: printed on one line, exit status 1.

    >>> args = argparse.Namespace(data="no/such/events.csv", items=None, format="generic")
    >>> check_event_files(args)
    Traceback (most recent call last):
    ...
    stream.cli.common.CommandError: data file not found: no/such/events.csv
    >>> reporting(check_event_files, "demo")(args)  # stderr: "demo: error: data file not ..."
    1
    """


class UsageError(CommandError):
    """Arguments that parsed but are out of range: printed on one line, exit status 2.

    >>> args = argparse.Namespace(batch=0)
    >>> require_positive(args, "batch")
    Traceback (most recent call last):
    ...
    stream.cli.common.UsageError: argument --batch: expected a whole number > 0, got '0'
    >>> reporting(lambda a: require_positive(a, "batch"), "demo")(args)  # not 1: usage
    2
    """


def fail(prog: str, message: str, status: int = EXIT_FAILURE) -> int:
    """Print ``message`` as ``prog``'s one-line error; return the exit ``status``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status


def positive(kind: Callable[[str], float] = float) -> Callable[[str], float]:
    """An argparse ``type`` accepting numbers > 0 of ``kind`` (``float`` or ``int``).

    >>> positive(int)("3"), positive()("0.5")
    (3, 0.5)
    >>> positive(int)("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a whole number > 0, got '0'
    """
    what = "a whole number" if kind is int else "a finite number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} > 0, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected {what} > 0, got {text!r}")
        return value

    return parse


def seed(text: str) -> int:
    """argparse type of a random seed: a whole number from 0 to 2**32 - 1 (numpy's range).

    >>> seed("7")
    7
    >>> seed("-5")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a whole number from 0 to 4294967295, got '-5'
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {2**32 - 1}, got {text!r}"
        )
    return value


def add_event_file_arguments(p: argparse.ArgumentParser, purpose: str) -> None:
    """``--data FILE`` (required), ``--format`` and ``--items``: the event log to read."""
    p.add_argument("--data", metavar="FILE", required=True, help=f"event file {purpose}")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="generic",
        help="file format (default: generic, a CSV/Parquet with user_id,item_id,category,...)",
    )
    p.add_argument("--items", metavar="FILE", help="MovieLens movies.csv (default: beside --data)")


def check_event_files(args: argparse.Namespace) -> None:
    """:class:`CommandError` unless ``args.data`` is a file, and so is its item file where
    one is needed (``args.items``, or ``movies.csv`` beside MovieLens ratings)."""
    data = Path(args.data)
    if not data.is_file():
        raise CommandError(f"data file not found: {data}")
    if args.items is not None and not Path(args.items).is_file():
        raise CommandError(f"items file not found: {args.items}")
    beside = data.with_name("movies.csv")
    if args.format == "movielens" and args.items is None and not beside.is_file():
        raise CommandError(f"no --items given and no movies.csv beside {data}")


def check_out_path(path: str | Path, option: str) -> None:
    """:class:`CommandError` unless ``path`` can be written as a file: not a directory, and
    no existing part of its parent is a file (missing parents are created by the writer)."""
    target = Path(path)
    if target.is_dir():
        raise CommandError(f"{option} must name a file, not a directory: {path}")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CommandError(f"{option} {path}: {parent} is a file, not a directory")
            break


def require_positive(
    args: argparse.Namespace, *names: str, kind: Callable[[str], float] = int
) -> None:
    """:class:`UsageError` unless each option ``names`` of ``args`` is unset or > 0."""
    for name in names:
        value = getattr(args, name)
        if value is None:
            continue
        try:
            positive(kind)(str(value))
        except argparse.ArgumentTypeError as exc:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"argument {option}: {exc}") from None


def one_line_usage_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` report a bad command line on one line with exit status 2."""

    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    parser.error = error  # type: ignore[method-assign]
    return parser


def reporting(run: Command, prog: str) -> Command:
    """``run`` with :class:`CommandError` and an unreachable broker turned into exit 1."""

    @functools.wraps(run)
    def command(args: argparse.Namespace) -> int:
        try:
            return int(run(args) or 0)
        except UsageError as exc:
            return fail(prog, str(exc), EXIT_USAGE)
        except CommandError as exc:
            return fail(prog, str(exc))
        except SettingsError as exc:  # a variable of the environment, named in the message
            return fail(prog, f"bad setting: {exc}")
        except Exception as exc:  # broker errors: one line, not a traceback
            from stream.clients import BrokerUnavailable

            if isinstance(exc, BrokerUnavailable):
                return fail(prog, str(exc))
            raise

    return command


def add_command(
    subparsers: argparse._SubParsersAction, command: ModuleType
) -> argparse.ArgumentParser:
    """Register the sub-command that module ``command`` describes, under the error policy.

    The module gives ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``,
    optionally ``REPORTS_AS``, the prog its failures are reported as (default: the
    sub-command's own, ``interest-tracker NAME``); the second paragraph of its docstring, if
    any, is the description ``--help`` shows.
    """
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    description = paragraphs[1].replace("\n", " ") if len(paragraphs) > 1 else None
    parser = subparsers.add_parser(command.NAME, help=command.HELP, description=description)
    one_line_usage_errors(parser)
    command.add_arguments(parser)
    reports_as = getattr(command, "REPORTS_AS", None) or parser.prog
    parser.set_defaults(func=reporting(command.run, reports_as))
    return parser


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
