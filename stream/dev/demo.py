"""``make stream-demo``: broker, worker, a paced replay of real events and a live terminal view.

The view (``stream.dev.demo_view``) shows the replay's progress and rate, the most active users
with their top interests as bars, the users whose interests just shifted, the dead letters
and the dashboard's URL. ``--plain`` (or a stdout that is not a terminal) prints one line per
snapshot instead, for logs and CI, and ends when the replay is over. Every run uses its own
topics (``demo-<stamp>.*``); a few malformed messages are mixed in (``--bad-every``) so the
DLQ has something to show. Ctrl-C stops the producer, the worker and (if this demo started
it) the local broker; nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

from stream.dev.demo_view import DemoState, parse_metrics, render
from stream.dev.localrun import (
    BrokerError,
    WorkerProcess,
    free_port,
    isolated_env,
    start_local_broker,
    stop_local_broker,
)
from stream.settings import REPO_ROOT, Settings

# name -> (events file, format, items file), relative to the data directory
DATASETS = {
    "taobao": ("taobao-head/UserBehavior.csv", "taobao", None),
    "movielens": ("ml-latest-small/ratings.csv", "movielens", "ml-latest-small/movies.csv"),
}
BAD_PAYLOADS = (
    b'{"user_id": "demo", "note": "JSON without its content-type header"}',
    b"\x85\xa7user_id\xa4demo",  # msgpack cut short
)


def _fail(msg: str) -> int:
    print(f"interest-tracker demo: error: {msg}", file=sys.stderr)
    return 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream-demo", description=__doc__)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="taobao")
    parser.add_argument("--data-dir", default="../shared/data", help="where the datasets are")
    parser.add_argument("--data", help="an event file instead of --dataset (with --format)")
    parser.add_argument("--format", default="taobao", help="format of --data (default taobao)")
    parser.add_argument("--items", help="MovieLens movies.csv for --data")
    parser.add_argument("--rate", type=float, default=400.0, help="events per second (400)")
    parser.add_argument("--limit", type=int, default=0, help="stop the replay after N events")
    parser.add_argument("--bad-every", type=int, default=250, help="a malformed message every N")
    parser.add_argument("--plain", action="store_true", help="line output (logs and CI)")
    return parser.parse_args(argv)


def source(args: argparse.Namespace) -> tuple[Path, str, Path | None]:
    if args.data:
        return Path(args.data), args.format, Path(args.items) if args.items else None
    events, fmt, items = DATASETS[args.dataset]
    root = Path(args.data_dir)
    return root / events, fmt, root / items if items else None


def replay(events, settings, state: DemoState, rate: float, bad_every: int, stop) -> None:
    """The producer thread: paced, restamped to the wall clock, with a few bad messages."""
    from stream.clients import Producer

    start = time.monotonic()
    with Producer(settings) as producer:
        for i, event in enumerate(events):
            if stop.is_set():
                return
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            event = {**event, "ts": time.time()}
            event.pop("truth", None)
            producer.send(event)
            state.sent += 1
            if bad_every and i % bad_every == bad_every - 1:
                producer.send(event, raw=BAD_PAYLOADS[state.bad_sent % len(BAD_PAYLOADS)])
                state.bad_sent += 1
    state.done = True


def follow_snapshots(settings: Settings, state: DemoState, stop, on_snapshot=None) -> None:
    """The subscriber thread: every snapshot into ``state`` (and ``on_snapshot``)."""
    from stream.clients import snapshot_consumer
    from stream.codec import decode_snapshot

    consumer = snapshot_consumer(settings)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                for msg in records:
                    key = msg.key.decode(errors="replace") if msg.key else ""
                    snap = (
                        {"user_id": key, "deleted": True}
                        if msg.value is None
                        else decode_snapshot(msg.value)
                    )
                    state.add(snap)
                    if on_snapshot:
                        on_snapshot(snap)
    finally:
        consumer.close()


def poll_metrics(url: str, state: DemoState, token: str | None) -> None:
    request = urllib.request.Request(url + "metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            state.worker, state.dlq_by_reason = parse_metrics(resp.read().decode())
    except OSError:
        pass  # the worker is busy or restarting: keep the last figures


def run_live(state: DemoState, url: str, token: str | None, stop) -> None:
    from rich.console import Console
    from rich.live import Live

    with Live(render(state), console=Console(), refresh_per_second=4, screen=False) as live:
        while not stop.is_set():
            poll_metrics(url, state, token)
            live.update(render(state))
            stop.wait(0.5)


def run_plain(state: DemoState, url: str, token: str | None, stop, give_up_s: float = 300) -> None:
    """Until the worker has read every message sent and the snapshots have been quiet for 3 s
    (or ``give_up_s`` after the replay ended, on a machine too slow to catch up)."""
    quiet_since, seen, done_at = time.monotonic(), state.snapshots, None
    while not stop.is_set():
        stop.wait(2)
        poll_metrics(url, state, token)
        now = time.monotonic()
        read = state.worker.get("interest_events_total", 0)
        print(
            f"-- replay {state.sent:,}/{state.total:,}, worker read {read:,.0f}, "
            f"snapshots {state.snapshots:,}, DLQ {state.dlq}",
            flush=True,
        )
        if state.snapshots != seen:
            seen, quiet_since = state.snapshots, now
        if not state.done:
            continue
        done_at = done_at or now
        if read >= state.sent + state.bad_sent and now - quiet_since > 3:
            print("replay finished")
            return
        if now - done_at > give_up_s:
            print(f"replay finished; the worker is still behind after {give_up_s:.0f}s")
            return


def demo_env(bootstrap: str) -> tuple[str, dict[str, str]]:
    run = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    env = isolated_env(bootstrap, run, REPO_ROOT / ".interest-state" / run)
    if "INTEREST_WEB_PORT" not in env and not port_free(Settings.web_port):
        env["INTEREST_WEB_PORT"] = str(free_port())  # another worker has the default port
    return run, env


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path, fmt, items = source(args)
    for needed in filter(None, (path, items)):
        if not needed.is_file():
            return _fail(f"no such file: {needed}")
    from models.data.loaders import load_events

    events = load_events(path, fmt, items)[: args.limit or None]
    plain = args.plain or not sys.stdout.isatty()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops the demo as cleanly as Ctrl-C
    started_broker = False
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        try:
            bootstrap, started_broker = start_local_broker(os.environ)
        except BrokerError as exc:
            return _fail(str(exc))
    run, env = demo_env(bootstrap)
    settings = Settings.from_env(env)
    worker = WorkerProcess(env, Path(settings.state_dir) / "worker.log")
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        print(f"demo {run}: broker {bootstrap}; starting the worker (log: {worker.log_path})")
        worker.start()
        url = f"http://{settings.web_host}:{settings.web_port}/"
        print(f"worker ready; live dashboard: {url}", flush=True)
        state = DemoState(total=len(events), label=f"{path.name} ({fmt})", url=url)
        on_snapshot = None
        if plain:
            from stream.cli.subscribe import format_snapshot

            def on_snapshot(snap):
                print(format_snapshot(snap), flush=True)

        threads = [
            threading.Thread(
                target=replay,
                args=(events, settings, state, args.rate, args.bad_every, stop),
                daemon=True,
            ),
            threading.Thread(
                target=follow_snapshots, args=(settings, state, stop, on_snapshot), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        token = env.get("INTEREST_WEB_TOKEN")
        (run_plain if plain else run_live)(state, url, token, stop)
    except KeyboardInterrupt:
        print("\nstopping the demo…", flush=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        worker.stop()
        if started_broker:
            stop_local_broker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
