"""Measuring the worker for ``/metrics``: rate meters, a Prometheus text writer, the process's
memory, its main thread's time on and waiting for a core, and the sequence scorer's
statistics."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from collections import deque
from collections.abc import Mapping

log = logging.getLogger(__name__)


class RateMeter:
    """A per-second rate of a growing count over a sliding window.

    Examples
    --------
    >>> meter = RateMeter(window_s=10.0)
    >>> meter.sample(100, now=0.0)
    0.0
    >>> meter.sample(150, now=5.0)
    10.0
    """

    def __init__(self, window_s: float = 10.0):
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=4096)

    def sample(self, count: float, now: float | None = None) -> float:
        """Record ``count`` at ``now``; return the rate over the window."""
        now = time.monotonic() if now is None else now
        samples = self._samples
        if not samples or now > samples[-1][0]:
            samples.append((now, count))
        while len(samples) > 2 and samples[1][0] <= now - self.window_s:
            samples.popleft()
        t0, c0 = samples[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0


def _label_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MetricsText:
    """A tiny writer of the Prometheus text exposition format (version 0.0.4).

    Examples
    --------
    >>> m = MetricsText()
    >>> m.add("jobs_total", "counter", "Jobs done.", 3)
    >>> m.add("queue", "gauge", "Queued.", 2, {"name": 'a"b'})
    >>> print(m.render(), end="")
    # HELP jobs_total Jobs done.
    # TYPE jobs_total counter
    jobs_total 3
    # HELP queue Queued.
    # TYPE queue gauge
    queue{name="a\\"b"} 2
    """

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float | None,
        labels: Mapping[str, object] | None = None,
    ) -> None:
        """One sample of family ``name`` (a ``None`` value is left out, the family kept)."""
        family = self._families.setdefault(name, (kind, help_text, []))
        if value is None:
            return
        value = float(value)
        text = repr(int(value)) if value.is_integer() else repr(value)
        if labels:
            inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
            family[2].append(f"{name}{{{inner}}} {text}")
        else:
            family[2].append(f"{name} {text}")

    def render(self) -> str:
        lines = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return "\n".join(lines) + "\n"


def resident_memory_bytes() -> int | None:
    """This process's resident set size (Linux ``/proc``; None where it cannot be read)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def thread_schedstat(pid: int | None = None) -> tuple[float, float] | None:
    """Seconds the main thread of ``pid`` (by default this process) has run on a core and
    waited, runnable, for one (the scheduler's ``/proc/<pid>/task/<pid>/schedstat``); None
    where the kernel keeps no such statistics.

    >>> ran, waited = thread_schedstat()
    >>> ran > 0.0 and waited >= 0.0
    True
    """
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat", "rb") as fh:
            ran, waited = fh.read().split()[:2]
        return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return None


# Known fields of the scorer's stats (``stream.scoring.ScorerStats``): metric, type, scale.
SCORER_METRICS = {
    "batches": ("interest_scorer_batches_total", "counter", 1.0, "Scorer micro-batches run."),
    "users_scored": ("interest_scorer_users_total", "counter", 1.0, "Users scored."),
    "last_batch_size": ("interest_scorer_last_batch_size", "gauge", 1.0, "Last batch's users."),
    "last_batch_ms": ("interest_scorer_last_batch_seconds", "gauge", 1e-3, "Last batch's time."),
    "total_ms": ("interest_scorer_batch_seconds_total", "counter", 1e-3, "Time in batches."),
    "reloads": ("interest_scorer_reloads_total", "counter", 1.0, "Checkpoint reloads."),
}


def _scorer_stats(scorer: object | None) -> dict[str, float]:
    """Numeric fields of ``scorer.stats`` (a dataclass, a mapping or a callable giving one)."""
    stats = getattr(scorer, "stats", None) if scorer is not None else None
    if callable(stats):
        try:
            stats = stats()
        except Exception:  # a stats bug must not break /metrics
            log.exception("scorer.stats() failed")
            return {}
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        stats = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    if not isinstance(stats, Mapping):
        return {}
    return {
        re.sub(r"[^a-zA-Z0-9_]", "_", str(k)): float(v)
        for k, v in stats.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def add_scorer_metrics(m: MetricsText, scorer: object | None) -> None:
    """Scorer batch size and latency, when the pipeline has a scorer with stats."""
    stats = _scorer_stats(scorer)
    if not stats:
        return
    for name, value in sorted(stats.items()):
        metric, kind, scale, help_text = SCORER_METRICS.get(
            name, (f"interest_scorer_{name}", "gauge", 1.0, f"Sequence scorer: {name}.")
        )
        m.add(metric, kind, help_text, value * scale)
    batches = stats.get("batches", 0.0)
    if batches and "users_scored" in stats:
        m.add(
            "interest_scorer_mean_batch_size",
            "gauge",
            "Mean users per scorer batch.",
            stats["users_scored"] / batches,
        )
    if batches and "total_ms" in stats:
        m.add(
            "interest_scorer_mean_batch_seconds",
            "gauge",
            "Mean time per scorer batch.",
            stats["total_ms"] / 1000 / batches,
        )
    version = getattr(scorer, "version", None)
    if isinstance(version, str):
        m.add(
            "interest_scorer_info", "gauge", "Sequence checkpoint in use.", 1, {"version": version}
        )


def add_main_thread_metrics(m: MetricsText) -> None:
    """The worker's main thread (the ingest loop: batches, snapshots, commit windows): the
    seconds it has run and waited for a core. Their rates are its load: near 0.9 of a core
    the event→snapshot tail grows fast (docs/RESULTS.md, 2026-12-04)."""
    times = thread_schedstat()
    if times is None:
        return
    m.add(
        "interest_main_thread_cpu_seconds_total",
        "counter",
        "Seconds the worker's main thread (the ingest loop) ran on a core.",
        times[0],
    )
    m.add(
        "interest_main_thread_wait_seconds_total",
        "counter",
        "Seconds the worker's main thread was runnable, waiting for a core.",
        times[1],
    )
