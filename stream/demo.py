"""``make stream-demo``: broker, worker, a paced replay of taobao-head and a live subscriber.

Each run uses its own topics (``demo-<stamp>.*``) so runs never mix. Ctrl-C stops the
producer, the worker and (if this demo started it) the local broker; nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stream.localrun import (
    BrokerError,
    WorkerProcess,
    start_local_broker,
    stop_local_broker,
)
from stream.settings import REPO_ROOT, Settings


def _stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stream-demo", description=__doc__)
    parser.add_argument("--data", required=True, help="taobao UserBehavior.csv to replay")
    parser.add_argument("--rate", type=float, default=400.0, help="events per second (400)")
    parser.add_argument("--limit", type=int, default=0, help="stop the replay after N events")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"interest-tracker demo: error: no such file: {args.data}", file=sys.stderr)
        return 1

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops the demo as cleanly as Ctrl-C
    env = dict(os.environ)
    started_broker = False
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    else:
        try:
            bootstrap, started_broker = start_local_broker(env)
        except BrokerError as exc:
            print(f"interest-tracker demo: error: {exc}", file=sys.stderr)
            return 1
    run = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        INTEREST_EVENTS_TOPIC=f"{run}.events",
        INTEREST_SNAPSHOTS_TOPIC=f"{run}.snapshots",
        INTEREST_DLQ_TOPIC=f"{run}.dlq",
        INTEREST_APP_ID=run,
        INTEREST_STATE_DIR=str(REPO_ROOT / ".interest-state" / run),
    )
    settings = Settings.from_env(env)
    logs = REPO_ROOT / ".interest-state" / run
    logs.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "stream.cli"]
    worker = WorkerProcess(env, logs / "worker.log")
    producer = None
    try:
        print(f"demo {run}: broker {bootstrap}; starting the worker (log: {worker.log_path})")
        worker.start()
        url = f"http://{settings.web_host}:{settings.web_port}/"
        print(f"worker ready; live dashboard: {url}")
        produce = [
            *cli,
            "produce",
            "--data",
            args.data,
            "--format",
            "taobao",
            "--rate",
            str(args.rate),
            "--restamp",
        ]
        if args.limit:
            produce += ["--limit", str(args.limit)]
        producer = subprocess.Popen(produce, env=env, start_new_session=True)
        print(
            f"replaying {args.data} at {args.rate:.0f} events/s; live snapshots follow "
            "(Ctrl-C stops everything)\n"
        )
        from stream.cli import format_snapshot
        from stream.clients import iterate_snapshots

        first = True
        while True:  # follow until the replay is over and the worker has gone quiet
            for snap in iterate_snapshots(settings, timeout_s=10.0, from_beginning=first):
                print(format_snapshot(snap), flush=True)
            first = False
            if producer.poll() is not None:
                break
        print("\nreplay finished")
    except KeyboardInterrupt:
        print("\nstopping the demo…")
    finally:
        _stop(producer)
        worker.stop()
        if started_broker:
            stop_local_broker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
