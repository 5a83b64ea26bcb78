"""Soak: one worker for a long run at half its measured maximum rate.

``python -m stream.dev.soak`` (``make soak``; ``SOAK_S`` seconds, default 1200) starts the local
broker and a worker, measures the worker's maximum rate on a burst, then runs
``interest-tracker produce`` at half of it, ``interest-tracker subscribe`` following the
snapshots, and polls the dashboard (``/``, ``/population``, ``/metrics``) every 2 s. It prints
the worker's RSS once warm and at the end (goal: growth <= 5%), the maximum consumer lag, and
the DLQ records (goal: 0, every event is valid); it exits 1 when a goal is missed.

| variable | default | meaning |
|---|---|---|
| ``SOAK_S`` | ``1200`` | seconds at the soak rate (the warm-up included) |
| ``SOAK_RATE`` | half the measured maximum | events/s |
| ``SOAK_USERS`` | ``500`` | synthetic users |
| ``SOAK_WARMUP_S`` | ``180`` | seconds before the "once warm" RSS reading (below) |
| ``SOAK_BURST`` | ``20000`` | events of the burst that measures the maximum rate |

"Warm" means every bounded structure is full: the users' 50-event histories, the dashboard's
snapshot cache and its 60-second change log, the producer's and the fetcher's buffers. On this
machine they settle within the second minute (the series the script prints shows it), so the
warm reading starts after three. The RSS is read every minute; "once warm" is the median of
the first three readings after the warm-up and "at end" the median of the last three (the
allocator swings by a few percent from one minute to the next). The growth over the second
half of the run is printed too: about 0 for a plateau, about half the total for a leak.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from stream.dev.localrun import WorkerProcess, start_local_broker, stop_local_broker, worker_env
from stream.settings import Settings
from stream.topics import ensure_topics

MAX_RSS_GROWTH = 0.05
SERIES_EVERY_S = 60.0


class Offsets:
    """End offsets of a topic and the worker group's committed offsets on it.

    ``lag`` is the events topic's end offsets minus the worker group's commits on it, summed
    over the partitions. Its clients bootstrap when it is built (with no broker that takes
    30 s and fails), so the example stops at the run's settings it reads: the events topic and
    the group (``app_id``) of the run's own environment.

    Examples
    --------
    >>> from tempfile import gettempdir
    >>> from stream.dev.localrun import worker_env
    >>> settings = Settings.from_env(worker_env("127.0.0.1:1", "soak-doc", Path(gettempdir())))
    >>> settings.events_topic, settings.app_id
    ('soak-doc.events', 'soak-doc.app')
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        sec = settings.kafka_client_config()
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, **sec)
        self.admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, **sec)

    def end(self, topic: str) -> int:
        tps = [TopicPartition(topic, p) for p in range(self.settings.partitions)]
        return sum(self.consumer.end_offsets(tps).values())

    def committed(self) -> int:
        offsets = self.admin.list_group_offsets({self.settings.app_id: None})
        return sum(
            m.offset
            for tp, m in offsets.get(self.settings.app_id, {}).items()
            if tp.topic == self.settings.events_topic and m.offset > 0
        )

    def lag(self) -> int:
        return self.end(self.settings.events_topic) - self.committed()

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


def _cli(env: dict, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream.cli", *args], env=env, **kw)


def measure_max_rate(env: dict, offsets: Offsets, users: int, burst: int = 20_000) -> float:
    """Events/s the worker applies while a burst of ``burst`` events arrives, timed from its
    first commit in the burst to the last (a lower bound where the producer is the slower)."""
    before = offsets.committed()
    args = ["produce", "--synthetic", "--users", str(users), "--limit", str(burst), "--restamp"]
    producer = _cli(env, *args, stdout=subprocess.DEVNULL)
    started, first, at_first = time.monotonic(), None, before
    while offsets.committed() - before < burst:
        done = offsets.committed()
        if first is None and done > before:
            first, at_first = time.monotonic(), done
        if time.monotonic() - started > 300:
            raise RuntimeError("the worker did not finish the burst within 300 s")
        time.sleep(0.2)
    producer.wait(60)
    took = time.monotonic() - (first or started)
    return (offsets.committed() - at_first) / max(took, 1e-6)


class Dashboard(threading.Thread):
    """Polls the dashboard's page and JSON/metrics endpoints; counts the answers.

    Examples
    --------
    A daemon thread polling every 2 s until ``stopping`` is set, as ``soak`` sets it at the
    end; set before its first poll, it ends without one:

    >>> dash = Dashboard(port=8123)
    >>> dash.base, dash.daemon
    ('http://127.0.0.1:8123', True)
    >>> dash.stopping.set()
    >>> dash.start(); dash.join(1)
    >>> dash.is_alive(), dash.ok, dash.failed
    (False, 0, 0)
    """

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.ok = self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(2.0):
            for path in ("/", "/population", "/metrics"):
                try:
                    with urllib.request.urlopen(self.base + path, timeout=5) as resp:
                        resp.read()
                        self.ok += 1
                except OSError:
                    self.failed += 1


def warm_and_end(series: list[tuple[float, float]], warmup: float) -> tuple[float, float]:
    """RSS once warm and at the end from ``(seconds, MiB)`` readings a minute apart: the
    median of the first three readings after ``warmup`` and of the last three (one reading
    each where the run is too short), so one swing of the allocator does not decide.

    >>> series = [(60, 100.0), (120, 110.0), (180, 108.0), (240, 112.0), (300, 109.0),
    ...           (360, 111.0), (420, 115.0), (480, 110.0)]
    >>> warm_and_end(series, 120)
    (110.0, 111.0)
    >>> warm_and_end([(60, 100.0), (120, 104.0)], 60)
    (100.0, 104.0)
    """
    warm = [mb for t, mb in series if t >= warmup] or [series[-1][1]]
    if len(warm) < 6:
        return warm[0], warm[-1]
    return statistics.median(warm[:3]), statistics.median(warm[-3:])


@dataclass
class SoakResult:
    """A soak run's figures, its report and the verdict ``main`` exits with.

    Examples
    --------
    >>> series = [(60.0, 100.0), (120.0, 101.0), (180.0, 102.0), (240.0, 103.0)]
    >>> result = SoakResult(seconds=240, max_rate=20_000, rate=10_000, rss_warm_mb=100.0,
    ...                     rss_end_mb=103.0, rss_series=series, max_lag=350, dlq=0,
    ...                     snapshots_seen=5_000, dashboard_ok=360, dashboard_failed=0)
    >>> print(result.report())
    soak: 240s at 10,000 events/s (measured maximum 20,000/s)
    RSS once warm 100.0 MiB, at end 103.0 MiB: growth +3.0% (goal <= 5%)
    RSS (MiB) every minute: 1 min 100.0, 2 min 101.0, 3 min 102.0, 4 min 103.0
    RSS growth over the second half: +1.0%
    max consumer lag 350 events
    DLQ records 0 (goal 0)
    snapshots read by the subscriber 5,000; dashboard polls 360 ok, 0 failed
    >>> from dataclasses import replace
    >>> leak = replace(result, rss_end_mb=108.0)  # +8% since warm
    >>> result.passed, leak.passed  # main exits 0 only when it passed
    (True, False)
    """

    seconds: float
    max_rate: float
    rate: float
    rss_warm_mb: float
    rss_end_mb: float
    rss_series: list[tuple[float, float]]
    max_lag: int
    dlq: int
    snapshots_seen: int
    dashboard_ok: int
    dashboard_failed: int

    @property
    def growth(self) -> float:
        return self.rss_end_mb / self.rss_warm_mb - 1

    @property
    def passed(self) -> bool:
        """Resident memory grew at most ``MAX_RSS_GROWTH`` once warm, and nothing was
        dead-lettered."""
        return self.growth <= MAX_RSS_GROWTH and self.dlq == 0

    def second_half_growth(self) -> float | None:
        """RSS growth over the second half of the series: near 0 for a plateau, about half
        the whole growth for a steady leak."""
        if len(self.rss_series) < 4:
            return None
        mid = self.rss_series[len(self.rss_series) // 2][1]
        return self.rss_series[-1][1] / mid - 1

    def report(self) -> str:
        half = self.second_half_growth()
        series = ", ".join(f"{t / 60:.0f} min {mb:.1f}" for t, mb in self.rss_series)
        return "\n".join(
            [
                f"soak: {self.seconds:.0f}s at {self.rate:,.0f} events/s "
                f"(measured maximum {self.max_rate:,.0f}/s)",
                f"RSS once warm {self.rss_warm_mb:.1f} MiB, at end {self.rss_end_mb:.1f} MiB: "
                f"growth {self.growth:+.1%} (goal <= {MAX_RSS_GROWTH:.0%})",
                f"RSS (MiB) every minute: {series}",
                "RSS growth over the second half: "
                + ("n/a (run too short)" if half is None else f"{half:+.1%}"),
                f"max consumer lag {self.max_lag:,} events",
                f"DLQ records {self.dlq} (goal 0)",
                f"snapshots read by the subscriber {self.snapshots_seen:,}; dashboard polls "
                f"{self.dashboard_ok} ok, {self.dashboard_failed} failed",
            ]
        )


def soak(
    workdir: Path, seconds: float, rate: float | None, users: int, warmup: float, burst: int
) -> SoakResult:
    bootstrap, started = start_local_broker()
    name = f"soak-{uuid.uuid4().hex[:8]}"
    env = worker_env(bootstrap, name, workdir / "state", INTEREST_MIN_INTERVAL_S="1.0")
    settings = Settings.from_env(env)
    ensure_topics(settings)
    offsets = Offsets(settings)
    worker = WorkerProcess(env, workdir / "worker.log").start(timeout=180)
    procs: list[subprocess.Popen] = []
    try:
        max_rate = measure_max_rate(env, offsets, users, burst)
        rate = rate or max_rate / 2
        print(f"maximum rate {max_rate:,.0f} events/s: soaking at {rate:,.0f}/s", flush=True)
        limit = int(rate * seconds)
        snaps = open(workdir / "snapshots.jsonl", "wb")  # noqa: SIM115 - closed below
        procs.append(_cli(env, "subscribe", "--latest", "--json", stdout=snaps))
        args = ["produce", "--synthetic", "--users", str(users), "--limit", str(limit)]
        args += ["--rate", f"{rate:.1f}", "--restamp", "--seed", "1"]
        procs.append(_cli(env, *args, stdout=subprocess.DEVNULL))
        dashboard = Dashboard(int(env["INTEREST_WEB_PORT"]))
        dashboard.start()
        max_lag, t0 = 0, time.monotonic()
        series: list[tuple[float, float]] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(5)
            max_lag = max(max_lag, offsets.lag())
            elapsed = time.monotonic() - t0
            if elapsed >= SERIES_EVERY_S * (len(series) + 1):
                series.append((elapsed, worker.rss_bytes() / 2**20))
                print(f"{elapsed:5.0f} s: RSS {series[-1][1]:.1f} MiB, lag {max_lag:,}", flush=True)
            if worker.proc.poll() is not None:
                raise RuntimeError(f"the worker died:\n{worker.tail()}")
        if not series or time.monotonic() - t0 - series[-1][0] > SERIES_EVERY_S / 2:
            series.append((time.monotonic() - t0, worker.rss_bytes() / 2**20))
        rss_warm, rss_end = warm_and_end(series, warmup)
        dashboard.stopping.set()
        procs[1].wait(60)
        deadline = time.monotonic() + 60
        while offsets.lag() > 0 and time.monotonic() < deadline:
            time.sleep(1)
        dlq = offsets.end(settings.dlq_topic)
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        snaps.close()
        return SoakResult(
            seconds=seconds,
            max_rate=max_rate,
            rate=rate,
            rss_warm_mb=rss_warm,
            rss_end_mb=rss_end,
            rss_series=series,
            max_lag=max_lag,
            dlq=dlq,
            snapshots_seen=sum(1 for _ in open(workdir / "snapshots.jsonl", "rb")),
            dashboard_ok=dashboard.ok,
            dashboard_failed=dashboard.failed,
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        worker.stop()
        offsets.close()
        if started:
            stop_local_broker()


def main() -> int:
    seconds = float(os.environ.get("SOAK_S", "1200"))
    rate = float(os.environ["SOAK_RATE"]) if os.environ.get("SOAK_RATE") else None
    users = int(os.environ.get("SOAK_USERS", "500"))
    warmup = float(os.environ.get("SOAK_WARMUP_S", "180"))
    if not 0 < warmup < seconds:
        print("soak: SOAK_WARMUP_S must be > 0 and below SOAK_S", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        burst = int(os.environ.get("SOAK_BURST", "20000"))
        result = soak(Path(tmp), seconds, rate, users, warmup, burst)
    print(result.report())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
