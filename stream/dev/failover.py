"""Failover measured: the snapshot stall after a worker is killed or restarted.

``python -m stream.dev.failover`` (``make failover``) starts the local broker, keeps a steady
stream of events flowing to every partition, and for each case prints the stall, from the
kill (or SIGTERM) to the first snapshot published for *every* partition afterwards, and the
changelog records the new owner replayed:

- ``kill -9, restart``: the only worker is killed with SIGKILL and a new one started at once;
- ``SIGTERM, restart``: the same after a clean stop;
- ``2 workers, kill -9 one``: the survivor takes over the dead worker's partitions.

The stall of a partition is measured on the snapshots themselves (their ``emitted_at``), so
it includes everything a subscriber waits for: group session expiry, rebalance, changelog
recovery and the first emit.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from models.schema import POPULATION_PREFIX
from stream.clients import Producer, snapshot_consumer
from stream.codec import decode_snapshot
from stream.dev.localrun import WorkerProcess, start_local_broker, stop_local_broker, worker_env
from stream.dev.soak import Offsets
from stream.settings import Settings
from stream.topics import ensure_topics

GOALS_S = {"kill -9, restart": 10.0, "SIGTERM, restart": 10.0, "2 workers, kill -9 one": 15.0}
_ROW = re.compile(r"\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|")


class SteadyEvents:
    """A background producer: ``rate`` events/s of wall-clock-stamped events, all partitions.

    Nothing is sent before ``preload`` or ``with``; the events are valid ones (stamped now, so
    none is late), the same sequence for the same ``seed``.

    Examples
    --------
    >>> from stream.codec import validate_event
    >>> events = SteadyEvents(Settings(bootstrap="127.0.0.1:1"), users=100, seed=7)
    >>> event = events.event()
    >>> validate_event(event) == event, abs(event["ts"] - time.time()) < 5
    (True, True)
    >>> {k: v for k, v in event.items() if k != "ts"}
    {'user_id': 'fo-41', 'item_id': 'i2471', 'categories': ['c12'], 'event_type': 'cart'}
    """

    def __init__(self, settings: Settings, rate: float = 200.0, users: int = 2000, seed: int = 0):
        self.settings, self.rate, self.users = settings, rate, users
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def event(self) -> dict:
        return {
            "user_id": f"fo-{self.rng.randrange(self.users)}",
            "item_id": f"i{self.rng.randrange(10_000)}",
            "categories": [f"c{self.rng.randrange(30)}"],
            "event_type": self.rng.choice(("view", "click", "cart")),
            "ts": time.time(),
        }

    def preload(self, n: int) -> None:
        """Send ``n`` events at once, so the tables and their changelogs have some size."""
        with Producer(self.settings) as producer:
            producer.send_many(self.event() for _ in range(n))
        self.sent += n

    def _run(self) -> None:
        tick = 0.05
        with Producer(self.settings) as producer:
            while not self._stop.is_set():
                producer.send_many(self.event() for _ in range(max(1, int(self.rate * tick))))
                producer.flush()
                self.sent += max(1, int(self.rate * tick))
                time.sleep(tick)

    def __enter__(self) -> SteadyEvents:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


class SnapshotWatch:
    """Follows the snapshot topic and remembers, per partition, when snapshots were emitted.

    Examples
    --------
    Its consumer starts with ``start``; here ``emitted`` is filled as that thread fills it, and
    the stall after ``t0`` (a kill at 100.0) is the slowest partition's first new snapshot:

    >>> watch = SnapshotWatch(Settings(bootstrap="127.0.0.1:1"))
    >>> watch.emitted.update({0: [99.0, 101.5], 1: [100.5, 103.0], 2: [98.0]})
    >>> got = watch.wait_all(100.0, partitions=3, timeout=0.1)  # partition 2: none since t0
    >>> got, max(got.values())
    ({0: 1.5, 1: 0.5}, 1.5)
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.emitted: dict[int, list[float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # From the beginning: the topic is the run's own; snapshots are filtered by time.
        consumer = snapshot_consumer(self.settings, timeout_s=0.2)
        try:
            while not self._stop.is_set():
                for msg in consumer:
                    if msg.value is None or msg.key.decode().startswith(POPULATION_PREFIX):
                        continue
                    at = decode_snapshot(msg.value)["emitted_at"]
                    with self._lock:
                        self.emitted.setdefault(msg.partition, []).append(at)
                    if self._stop.is_set():
                        break
        finally:
            consumer.close()

    def first_after(self, t0: float) -> dict[int, float]:
        """Per partition, seconds from ``t0`` to the first snapshot emitted after it."""
        with self._lock:
            return {
                p: min(a for a in ats if a > t0) - t0
                for p, ats in self.emitted.items()
                if any(a > t0 for a in ats)
            }

    def wait_all(self, t0: float, partitions: int, timeout: float) -> dict[int, float]:
        """Wait until every partition has a snapshot emitted after ``t0`` (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.first_after(t0)
            if len(got) >= partitions:
                return got
            time.sleep(0.1)
        return self.first_after(t0)

    def start(self) -> SnapshotWatch:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> SnapshotWatch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def changelog_replayed(log_text: str) -> int:
    """Changelog records a worker read in recovery, from Faust's highwater/offset log tables.

    >>> log = "\\n".join([
    ...     "[t] [1] [INFO] [^---Recovery]: Highwater for active changelog partitions:",
    ...     "| app-interest-users-changelog | 0 | 99 |", "| 〃 | 1 | 9 |",
    ...     "[t] [1] [INFO] [^---Recovery]: active offsets at start of reading:",
    ...     "| app-interest-users-changelog | 0 | 49 |", "| 〃 | 1 | -1 |",
    ... ])
    >>> changelog_replayed(log)
    60
    """
    total, highwater, current, topic = 0, {}, None, None
    for line in log_text.splitlines():
        lower = line.lower()
        if "highwater for active changelog" in lower:
            highwater, current = {}, "hw"
        elif "active offsets at start of reading" in lower:
            start: dict = {}
            current = "start"
        elif line.startswith("["):
            if current == "start":
                total += sum(max(0, hw - start.get(tp, -1)) for tp, hw in highwater.items())
            current = None
        elif current and (m := _ROW.search(line)):
            topic = topic if m.group(1) == "〃" else m.group(1)
            (highwater if current == "hw" else start)[(topic, int(m.group(2)))] = int(m.group(3))
    if current == "start":
        total += sum(max(0, hw - start.get(tp, -1)) for tp, hw in highwater.items())
    return total


@dataclass
class Result:
    """One failover case measured: the stall against its goal, as ``main`` prints and judges it.

    Examples
    --------
    >>> r = Result("kill -9, restart", stall_s=7.42, partitions_seen=4, partitions=4,
    ...            replayed=1200, ready_after_s=3.1, goal_s=GOALS_S["kill -9, restart"])
    >>> print(HEADER); print(_row(r))
    case                      stall s  goal s  replayed  ready s
    kill -9, restart             7.42      10      1200      3.1
    >>> r.met  # main() exits 1 when any case misses its goal
    True
    >>> from dataclasses import replace
    >>> replace(r, partitions_seen=3).met  # a partition that never published again: missed
    False
    """

    case: str
    stall_s: float
    partitions_seen: int
    partitions: int
    replayed: int
    ready_after_s: float | None
    goal_s: float

    @property
    def met(self) -> bool:
        """Every partition published again, the slowest within the goal."""
        return self.partitions_seen == self.partitions and self.stall_s <= self.goal_s


def _settle(watch: SnapshotWatch, settings: Settings, timeout: float = 120) -> None:
    """Wait until the worker has caught up (lag under a second of events) and snapshots flow
    on every partition, so a kill lands on a warm worker with full tables."""
    offsets = Offsets(settings)
    try:
        deadline = time.monotonic() + timeout
        while offsets.lag() > 200 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        offsets.close()
    watch.wait_all(time.time(), settings.partitions, timeout)


def _result(case, watch, t0, settings, log_path, offset, ready, gone_at=None) -> Result:
    # Count only snapshots emitted once the stopped worker is gone (a clean stop flushes some).
    gone_at = gone_at or t0
    got = {
        p: d + gone_at - t0
        for p, d in watch.wait_all(gone_at, settings.partitions, timeout=120).items()
    }
    text = log_path.read_bytes()[offset:].decode(errors="replace")
    return Result(
        case=case,
        stall_s=round(max(got.values()) if got else float("nan"), 2),
        partitions_seen=len(got),
        partitions=settings.partitions,
        replayed=changelog_replayed(text),
        ready_after_s=round(ready, 2) if ready is not None else None,
        goal_s=GOALS_S[case],
    )


def kill_and_restart(env, settings, watch, workdir: Path, sig: int, case: str) -> Result:
    log_path = workdir / f"{case.split(',')[0].replace(' ', '')}.log"
    worker = WorkerProcess(env, log_path).start()
    _settle(watch, settings)
    offset = log_path.stat().st_size
    t0 = time.time()
    worker.stop(sig=sig)
    gone_at = time.time()
    replacement = WorkerProcess(env, log_path).start(timeout=180)
    try:
        ready = replacement.ready_after
        return _result(case, watch, t0, settings, log_path, offset, ready, gone_at)
    finally:
        replacement.stop()


def two_workers_kill_one(env, settings, watch, workdir: Path) -> Result:
    env_b = {**env, "INTEREST_WEB_PORT": str(int(env["INTEREST_WEB_PORT"]) + 1)}
    env_b["INTEREST_STATE_DIR"] = str(workdir / "state-b")
    if env.get("INTEREST_GROUP_INSTANCE_ID"):
        env_b["INTEREST_GROUP_INSTANCE_ID"] = env["INTEREST_GROUP_INSTANCE_ID"] + "-b"
    survivor = WorkerProcess(env, workdir / "survivor.log").start()
    try:
        victim = WorkerProcess(env_b, workdir / "victim.log").start(timeout=180)
        time.sleep(settings.session_timeout_s)  # let the rebalance and standby recovery settle
        _settle(watch, settings)
        offset = (workdir / "survivor.log").stat().st_size
        t0 = time.time()
        victim.stop(sig=signal.SIGKILL)
        return _result(
            "2 workers, kill -9 one", watch, t0, settings, workdir / "survivor.log", offset, None
        )
    finally:
        survivor.stop()


def run(workdir: Path, rate: float, preload: int, cases: list[str]) -> list[Result]:
    bootstrap, started = start_local_broker()
    try:
        name = f"failover-{uuid.uuid4().hex[:8]}"
        env = worker_env(bootstrap, name, workdir / "state", INTEREST_MIN_INTERVAL_S="0.5")
        settings = Settings.from_env(env)
        ensure_topics(settings)
        results: list[Result] = []
        events = SteadyEvents(settings, rate=rate)
        events.preload(preload)
        with SnapshotWatch(settings) as watch, events:
            if "kill" in cases:
                kill = signal.SIGKILL
                results.append(
                    kill_and_restart(env, settings, watch, workdir, kill, "kill -9, restart")
                )
                print(_row(results[-1]), flush=True)
            if "term" in cases:
                term = signal.SIGTERM
                results.append(
                    kill_and_restart(env, settings, watch, workdir, term, "SIGTERM, restart")
                )
                print(_row(results[-1]), flush=True)
            if "two" in cases:
                results.append(two_workers_kill_one(env, settings, watch, workdir))
                print(_row(results[-1]), flush=True)
        return results
    finally:
        if started:
            stop_local_broker()


HEADER = f"{'case':<24} {'stall s':>8} {'goal s':>7} {'replayed':>9} {'ready s':>8}"


def _row(r: Result) -> str:
    seen = "" if r.partitions_seen == r.partitions else f"  ({r.partitions_seen} partitions)"
    ready = r.ready_after_s if r.ready_after_s is not None else "-"
    return f"{r.case:<24} {r.stall_s:>8.2f} {r.goal_s:>7.0f} {r.replayed:>9} {ready:>8}{seen}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.dev.failover", description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="steady events/s (50)")
    parser.add_argument("--preload", type=int, default=5_000, help="events sent first (5000)")
    parser.add_argument("--cases", default="kill,term,two", help="kill, term, two (all)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    parser.add_argument("--logs", type=Path, help="keep the worker logs in this folder")
    args = parser.parse_args(argv)
    s = Settings.from_env()
    print(
        f"session timeout {s.session_timeout_s}s, heartbeat {s.heartbeat_s}s, rebalance timeout "
        f"{s.rebalance_timeout_s}s, standby replicas {s.standby_replicas}, static membership "
        f"{'on' if s.group_instance_id else 'off'}",
        flush=True,
    )
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = run(workdir, args.rate, args.preload, args.cases.split(","))
    print(HEADER)
    for r in results:
        print(_row(r))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.met for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
