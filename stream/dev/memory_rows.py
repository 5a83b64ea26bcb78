"""The memory rows of ``make bench`` (and ``compare --memory``): users arrive in settled
waves, and the worker's RSS after each wave gives the bytes a tracked user costs."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from kafka.admin import KafkaAdminClient

from stream.dev.bench_topics import committed_total, make_events, produce
from stream.dev.localrun import WorkerProcess, free_port

SETTLE_S = 7.0  # after a wave: a commit window, a dashboard tick and a heap trim (5 s timers)
# The 50-event row: users with a full history, arriving in this many waves, from this seed.
HISTORY_WAVES = 8
HISTORY_SEED = 4


def settled_waves(
    bootstrap: str, env: dict, waves: list[list], log_path: Path
) -> tuple[int, list[int]]:
    """One worker; each wave of events is produced only after the previous one is consumed
    and committed and the worker has idled ``SETTLE_S``: its RSS then holds the tracked users,
    not the batches in flight. Returns the idle RSS and the RSS after each wave."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    group, topic = env["INTEREST_APP_ID"], env["INTEREST_EVENTS_TOPIC"]
    proc = WorkerProcess({**env, "INTEREST_WEB_PORT": str(free_port())}, log_path).start(300)
    try:
        time.sleep(SETTLE_S)
        idle_rss, rss, done = proc.rss_bytes(), [], 0
        for events in waves:
            produce(bootstrap, topic, events)
            done += len(events)
            deadline = time.monotonic() + 1200
            while committed_total(admin, group, topic) < done:
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not finish a wave within 20 minutes")
                time.sleep(0.1)
            time.sleep(SETTLE_S)
            rss.append(proc.rss_bytes())
    finally:
        proc.stop()
        admin.close()
    return idle_rss, rss


def memory_waves(
    users: int, per_user: int, n_waves: int, seed: int
) -> tuple[list[int], list[list]]:
    """The memory rows' input: ``per_user`` events for each of ``users`` in ``n_waves`` waves
    of users (each wave's times after the last's); the user count after each wave (from 0)
    and the waves."""
    bounds = [users * k // n_waves for k in range(n_waves + 1)]
    waves = [
        make_events(a, b, per_user, seed, 1_760_000_000.0 + w * 1e5)
        for w, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    return bounds, waves


def memory_figures(bounds: list[int], idle_rss: int, rss: list[int]) -> dict:
    """RSS per user overall and at the margin, over the second half of the waves (bounded
    caches and client buffers are full by then), from ``settled_waves``' readings.

    >>> f = memory_figures([0, 10, 20, 30, 40], 1000, [3000, 4000, 4500, 5000])
    >>> f["bytes_per_user"], f["marginal_bytes_per_user"]
    (100.0, 50.0)
    """
    half = (len(bounds) - 1) // 2
    return {
        "users": bounds[-1],
        "waves": len(bounds) - 1,
        "idle_rss": idle_rss,
        "rss_at_users": dict(zip(bounds[1:], rss, strict=True)),
        "bytes_per_user": (rss[-1] - idle_rss) / bounds[-1],
        "marginal_bytes_per_user": (rss[-1] - rss[half - 1]) / (bounds[-1] - bounds[half]),
    }
